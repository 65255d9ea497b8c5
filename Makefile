# The two commands of the README: `make deploy` (main job) and `make test` (all tests).
# `make e2e` is the slow end-to-end proof on a real lab cluster (docs/cluster.md; needs `make test`
# to have installed the tools and the bundle cache from `ansible-playbook playbooks/bundle.yml`).
.PHONY: deps test deploy run-local e2e

deps:
	scripts/install-deps.sh

test:
	scripts/test.sh

deploy:
	scripts/deploy.sh

# The CSE alone on this machine (Mosquitto + CSE on SQLite, foreground): no cluster needed.
run-local:
	scripts/run-local.sh

e2e:
	M2M_E2E=1 .venv/bin/pytest -m e2e tests/e2e/test_cluster_container.py -v -s
