"""Where the tests find the repository, this venv's Ansible and the offline bundle's Kubernetes
binaries of the pinned version (kubeadm, kubectl; present once playbooks/bundle.yml has run), and
how they run one task file of a role with the real ansible-playbook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VERSION = yaml.safe_load((ROOT / "inventory/lab/group_vars/all/versions.yml").read_text())[
    "kube_version"
]
KUBE_BIN = Path.home() / f".cache/m2mcloud/bundle/v{VERSION}/kubernetes/v{VERSION}/bin"


PLAY = """\
- name: Run one task file of a role
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Include the role's tasks
      ansible.builtin.include_role:
        name: {role}
        tasks_from: {tasks}
"""


def run_role_tasks(tmp_path: Path, role: str, tasks: str, extra: dict[str, Any]) -> tuple[int, str]:
    """One task file of roles/<role> on localhost with the real ansible-playbook: (rc, output)."""
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(role=ROOT / "roles" / role, tasks=tasks))
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(play),
         "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"@{tmp_path / 'extra.json'}"],
        env=dict(os.environ, ANSIBLE_NOCOLOR="1"),
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr
