"""Where the tests find the repository, this venv's Ansible and the offline bundle's Kubernetes
binaries of the pinned version (kubeadm, kubectl; present once playbooks/bundle.yml has run)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VERSION = yaml.safe_load((ROOT / "inventory/lab/group_vars/all/versions.yml").read_text())[
    "kube_version"
]
KUBE_BIN = Path.home() / f".cache/m2mcloud/bundle/v{VERSION}/kubernetes/v{VERSION}/bin"
