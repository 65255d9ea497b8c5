"""The shipped inventories resolve to the versions pinned in one place (inventory/lab's
versions.yml): the example for real machines must not drift to another Kubernetes release."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PINS = yaml.safe_load((ROOT / "inventory/lab/group_vars/all/versions.yml").read_text())


def hostvars(inventory: Path) -> dict[str, dict[str, object]]:
    out = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(inventory), "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return dict(json.loads(out)["_meta"]["hostvars"])


@pytest.mark.parametrize("inventory", ["inventory/example"])
def test_every_host_of_the_inventory_gets_the_pinned_versions(inventory: str) -> None:
    hosts = hostvars(ROOT / inventory)
    assert hosts, f"{inventory} lists no hosts"
    for host, variables in hosts.items():
        for name, version in PINS.items():
            assert variables.get(name) == version, (host, name, variables.get(name), version)


def test_a_site_copied_under_inventory_keeps_the_pins(tmp_path: Path) -> None:
    # README: "copy inventory/example/ to inventory/<site>/"; versions.yml is a relative link.
    site = ROOT / "inventory" / f".test-{tmp_path.name}"
    subprocess.run(["cp", "-r", str(ROOT / "inventory/example"), str(site)], check=True)
    try:
        link = site / "group_vars/all/versions.yml"
        assert link.is_symlink() and link.resolve() == (
            ROOT / "inventory/lab/group_vars/all/versions.yml"
        )
        for variables in hostvars(site).values():
            assert variables["kube_version"] == PINS["kube_version"]
    finally:
        subprocess.run(["rm", "-rf", str(site)], check=True)
