"""Where the tests find the repository, this venv's Ansible and the offline bundle's Kubernetes
binaries of the pinned version (kubeadm, kubectl; present once playbooks/bundle.yml has run), and
how they run one task file of a role with the real ansible-playbook."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
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


# --- the offline bundle in the default cache, and the real bundle playbook ------------------------

PINS = yaml.safe_load((ROOT / "inventory/lab/group_vars/all/versions.yml").read_text())
CACHED = Path.home() / f".cache/m2mcloud/bundle/v{VERSION}"


def built_bundle_or_skip() -> Path:
    """The bundle in the default cache, or a skip that says how to build one."""
    if not (BIN / "ansible-playbook").exists():
        pytest.skip("ansible-playbook is not installed in this venv")
    if os.geteuid() != 0:
        pytest.skip("the bundle build needs root (buildah, setcap)")
    if not (CACHED / "manifest.json").is_file() or not (CACHED / "SHA256SUMS").is_file():
        pytest.skip(
            f"no built bundle in {CACHED}: build it once with"
            " `ansible-playbook playbooks/bundle.yml` (about 35 min cold on 2 shared cores,"
            " seconds afterwards)"
        )
    return CACHED


def bundle_play(
    bundle: Path, work: Path, *extra: str, timeout: int = 600
) -> tuple[subprocess.CompletedProcess[str], float]:
    """playbooks/bundle.yml into `bundle` with work dir `work`: (process, seconds)."""
    started = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "playbooks/bundle.yml",
         "-e", f"airgap_bundle_dir={bundle}", "-e", f"airgap_bundle_work_dir={work}", *extra],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=timeout,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_PYTHON_INTERPRETER": sys.executable},
    )  # fmt: skip
    return proc, time.monotonic() - started


def recap(output: str) -> dict[str, int]:
    """The PLAY RECAP counts of localhost."""
    match = re.search(r"localhost\s+:\s+(.*)", output)
    assert match, output[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}
