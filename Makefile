# The two commands of the README: `make deploy` (main job) and `make test` (all tests).
.PHONY: deps test deploy

deps:
	scripts/install-deps.sh

test:
	scripts/test.sh

deploy:
	scripts/run-local.sh
