#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what it needs, lints, runs every default test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export PATH="$PWD/.venv/bin:$PATH"
# Tests run on a real PostgreSQL and Mosquitto here: a missing service fails, never skips.
export M2M_REQUIRE_SERVICES=1

echo "==> lint: ruff, mypy"
ruff check app tests bench
ruff format --check app tests bench
mypy

echo "==> lint: yamllint, ansible-lint, ansible-playbook --syntax-check"
yamllint --strict .
ansible-lint
ansible-playbook site.yml --syntax-check -i inventory/example/hosts.yml

echo "==> pytest (unit + integration + tests/ansible)"
set +e
pytest tests "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  echo "pytest collected no tests: that is a failure, not a pass" >&2
  exit 1
fi

# Molecule scenarios of the Ansible roles (podman systemd test hosts); says what it skips and why.
scripts/test-molecule.sh || rc=$((rc ? rc : 1))

# The end-to-end cluster test (issue 6, docs/cluster.md): cached bundle -> 3-node container lab ->
# site.yml's cluster part -> DNS, cross-node pods, PVC, kubectl top -> re-run changed=0 -> a node
# joins -> reset -> lab down; 12-19 min here. It needs the offline bundle, whose first build from the
# Go module proxy takes ~34 min: without it the run says so and skips (make e2e builds it).
kube_version=$(sed -n 's/^kube_version: *//p' inventory/lab/group_vars/all/versions.yml)
bundle=$HOME/.cache/m2mcloud/bundle/v$kube_version
if [[ ${M2M_SKIP_E2E:-0} == 1 ]]; then
  echo "==> e2e: SKIPPED (M2M_SKIP_E2E=1)"
elif [[ ! -f $bundle/manifest.json ]]; then
  echo "==> e2e: SKIPPED (no offline bundle at $bundle: ansible-playbook playbooks/bundle.yml, then make e2e)"
else
  echo "==> e2e: container-driver cluster (tests/e2e/test_cluster_container.py)"
  M2M_E2E=1 pytest -m e2e tests/e2e/test_cluster_container.py -v -s || rc=$((rc ? rc : 1))
  # Issue 7's proof: the platform on a lab (make deploy's path) and the flood, 1 -> >= 3 -> 1
  # replicas with no acknowledged reading lost. ~11 min. A lab of its own (prefix m2m-lab-ci, a
  # copy of inventory/lab in a temporary directory): a lab someone works on is left alone, and a
  # leftover of an interrupted run of this step is removed first (a half-stopped node of one made
  # this step fail once). The lab is removed whatever happens.
  echo "==> e2e: the platform on a lab of its own (lab.yml, site.yml, tests/e2e/test_apps.py)"
  log=$(mktemp)
  ci_lab=$(mktemp -d)
  cp inventory/lab/hosts.yml "$ci_lab/" && cp -r inventory/lab/group_vars "$ci_lab/"
  lab=(playbooks/lab.yml -i "$ci_lab" -e lab_container_prefix=m2m-lab-ci
       -e lab_container_subnet=10.89.215.0/24 -e "lab_container_inventory_dir=$ci_lab")
  if ansible-playbook "${lab[@]}" -e state=absent >"$log" 2>&1 \
      && ansible-playbook "${lab[@]}" >>"$log" 2>&1 \
      && ansible-playbook -i "$ci_lab" site.yml >>"$log" 2>&1; then
    M2M_E2E=1 M2M_E2E_INVENTORY=$ci_lab pytest -m e2e tests/e2e/test_apps.py -v -s || rc=$((rc ? rc : 1))
  else
    tail -60 "$log"
    echo "==> e2e: the lab or site.yml failed (full log above: $log)"
    rc=$((rc ? rc : 1))
  fi
  ansible-playbook "${lab[@]}" -e state=absent >>"$log" 2>&1 || echo "==> e2e: lab removal failed ($log)"
fi
exit $rc
