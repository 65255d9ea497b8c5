"""Which kubeconfig apps.yml (and loadtest.yml) use, from playbooks/vars/kubeconfig.yml:
m2mcloud_kubeconfig when the operator sets it (also in the inventory, which play vars used to
override), else K8S_AUTH_KUBECONFIG, else kube_admin_kubeconfig, else <inventory dir>/.kube/.
The real apps.yml runs its always-tagged pre-tasks; each kubeconfig is missing on purpose, so
the play stops at its first check with the path it chose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ansible.bundle_bin import BIN, ROOT


def chosen(tmp_path: Path, inventory_vars: dict[str, str], env: dict[str, str]) -> str:
    inventory = tmp_path / "site" / "hosts.yml"
    inventory.parent.mkdir()
    inventory.write_text(
        yaml.safe_dump({
            "all": {
                "vars": inventory_vars,
                "hosts": {"localhost": {
                    "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                }},
                "children": {
                    "kube_control_plane": {"hosts": {"cp1": {"ansible_host": "192.0.2.1"}}},
                },
            }
        })
    )  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if k != "K8S_AUTH_KUBECONFIG"}
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), "playbooks/apps.yml",
         "--tags", "always", "--limit", "localhost"],
        env={**clean, "ANSIBLE_NOCOLOR": "1", **env},
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    marker = "No kubeconfig at "
    assert marker in out, out
    return out.split(marker, 1)[1].split(":", 1)[0]


CASES: list[tuple[str, dict[str, Any], dict[str, str], str]] = [
    (
        "inventory var beats the environment",
        {"m2mcloud_kubeconfig": "/nx/inv.conf", "kube_admin_kubeconfig": "/nx/admin.conf"},
        {"K8S_AUTH_KUBECONFIG": "/nx/env.conf"},
        "/nx/inv.conf",
    ),
    (
        "environment beats kube_admin_kubeconfig",
        {"kube_admin_kubeconfig": "/nx/admin.conf"},
        {"K8S_AUTH_KUBECONFIG": "/nx/env.conf"},
        "/nx/env.conf",
    ),
    ("kube_admin_kubeconfig", {"kube_admin_kubeconfig": "/nx/admin.conf"}, {}, "/nx/admin.conf"),
    ("next to the inventory", {}, {}, "SITE/.kube/admin.conf"),
]


@pytest.mark.parametrize(("inventory_vars", "env", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_the_kubeconfig_apps_yml_uses(
    tmp_path: Path, inventory_vars: dict[str, str], env: dict[str, str], expected: str
) -> None:
    path = chosen(tmp_path, inventory_vars, env)
    assert path == expected.replace("SITE", str(tmp_path / "site"))
