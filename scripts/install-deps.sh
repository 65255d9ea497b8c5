#!/usr/bin/env bash
# Installs everything the tests and the local lab need on a fresh Debian 12 machine:
# Debian packages (only when missing, so a warm machine skips apt), then the project's venv.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3-venv            # the project's virtualenv
  mosquitto               # real MQTT broker for integration tests (started by the fixtures)
  mosquitto-clients
  postgresql              # real PostgreSQL for the storage tests (a private cluster per test run)
  podman                  # Molecule test hosts
  runc                    # podman's runtime for them (molecule/containers.conf: crun fails on this host)
  debootstrap             # builds the systemd test image offline
  buildah
  skopeo                  # app_images: copies the image archives to a registry (digests kept)
  rsync
  openssl                 # throw-away CA and broker certificate for the MQTT TLS test
  wrk                     # HTTP load generator of bench/cse_http_wrk.py
  openssh-client          # ssh: Ansible's connection to real nodes (and tests/deploy's unreachable host)
  qemu-system-x86         # the vm lab driver (roles/lab_vm): Debian VMs, KVM or TCG
  qemu-utils              # qemu-img: the VMs' qcow2 overlays
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "==> apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "==> creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.m2mcloud-deps
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  echo "==> pip install -e .[dev]"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
fi
# The Ansible side (ansible, ansible-lint, yamllint, molecule + podman driver, ansible-runner).
ansible_stamp=.venv/.m2mcloud-ansible-deps
if [[ ! -f $ansible_stamp || requirements/ansible.txt -nt $ansible_stamp ]]; then
  echo "==> pip install -r requirements/ansible.txt"
  .venv/bin/pip install -q -r requirements/ansible.txt
  touch "$ansible_stamp"
fi
