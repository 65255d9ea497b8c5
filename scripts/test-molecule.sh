#!/usr/bin/env bash
# The Molecule part of the test command: builds (or reuses) the systemd test image, then runs each
# scenario under molecule/ with `molecule test` (create, converge, idempotence, verify, destroy).
# Usage: scripts/test-molecule.sh [scenario...]   (default: every scenario, in a fixed order)
# Skips, saying why, only when told to (M2M_SKIP_MOLECULE=1) or when not root (the test hosts are
# privileged systemd containers: rootful podman). Anything else that goes wrong fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export CONTAINERS_CONF="$PWD/molecule/containers.conf"
# Molecule's podman driver keeps its async job files under $HOME.
export HOME=${HOME:-/root}
# Container names are global on this machine: a suffix per checkout keeps two checkouts (a fresh
# clone under test, a working tree) from destroying each other's test hosts.
M2M_TEST_ID=$(printf %s "$PWD" | sha1sum | cut -c1-8)
export M2M_TEST_ID

if [[ ${M2M_SKIP_MOLECULE:-0} == 1 ]]; then
  echo "==> molecule: SKIPPED (M2M_SKIP_MOLECULE=1)"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "==> molecule: SKIPPED (needs root for privileged systemd containers; running as $(id -un))"
  exit 0
fi

scenarios=("$@")
if ((${#scenarios[@]} == 0)); then
  scenarios=(node nfs kube_packages)
fi

start=$SECONDS
echo "==> molecule: test image"
scripts/build-test-image.sh
image_s=$((SECONDS - start))

declare -A took
for scenario in "${scenarios[@]}"; do
  echo "==> molecule test -s $scenario"
  t0=$SECONDS
  log=$(mktemp "/tmp/m2mcloud-molecule-$scenario.XXXXXX.log")
  if ! molecule test -s "$scenario" >"$log" 2>&1; then
    sed 's/\x1b\[[0-9;]*m//g' "$log" | tail -n 150 >&2
    echo "==> molecule test -s $scenario FAILED after $((SECONDS - t0)) s (full log: $log)" >&2
    exit 1
  fi
  took[$scenario]=$((SECONDS - t0))
  rm -f "$log"
  echo "    passed in ${took[$scenario]} s"
done

echo "==> molecule: image ${image_s} s$(for s in "${scenarios[@]}"; do printf ', %s %s s' "$s" "${took[$s]}"; done); total $((SECONDS - start)) s"
