"""Fixtures of the deploy API tests: the test project (tests/deploy/project, not the platform's
playbooks), inventories whose hosts are this machine (ansible_connection=local, the venv's Python
as interpreter: discovery fails here because of pyenv shims) and a private runs directory."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT = Path(__file__).resolve().parent / "project"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

needs_ansible = pytest.mark.skipif(
    not (Path(sys.executable).parent / "ansible-playbook").is_file()
    and shutil.which("ansible-playbook") is None,
    reason="ansible-playbook is not installed (make deps)",
)


def local_host() -> dict[str, Any]:
    return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}


def write_inventory(path: Path, hosts: dict[str, dict[str, Any]], **group_vars: Any) -> Path:
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts, "vars": group_vars}}))
    return path


def unreachable_host(port: int) -> dict[str, Any]:
    """SSH to a closed port of this machine: refused at once, so the run stays fast."""
    return {
        "ansible_connection": "ssh",
        "ansible_host": "127.0.0.1",
        "ansible_port": port,
        "ansible_user": "nobody",
        "ansible_ssh_common_args": "-o ConnectTimeout=3 -o StrictHostKeyChecking=no",
        "ansible_python_interpreter": "/usr/bin/python3",
    }


@pytest.fixture
def project() -> Path:
    return PROJECT


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A directory the test playbooks write into (deploy_test_dir)."""
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    """Two hosts, both this machine."""
    return write_inventory(tmp_path / "hosts.yml", {"node1": local_host(), "node2": local_host()})
