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
exit $rc
