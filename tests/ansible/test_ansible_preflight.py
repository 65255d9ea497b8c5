"""The preflight play against deliberately broken inventories, with the real ansible-playbook.

Every host here is this machine (ansible_connection=local): the inventory is what is broken, and
the play must stop with the sentence an operator can act on, not a stack trace. A correct inventory
of the same shape passes, so each failure is caused by the one thing the test breaks.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "playbooks" / "preflight.yml"
ANSIBLE_PLAYBOOK = shutil.which(
    "ansible-playbook", path=str(Path(sys.executable).parent)
) or shutil.which("ansible-playbook")

pytestmark = pytest.mark.skipif(
    ANSIBLE_PLAYBOOK is None, reason="ansible-playbook is not installed"
)


def _default_ipv4_network() -> str | None:
    """This machine's default-route network, from /proc (what Ansible's default_ipv4 reports)."""
    try:
        routes = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return None
    iface = next((f[0] for f in (r.split() for r in routes) if f[1] == "00000000"), None)
    if iface is None:
        return None
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "dev", iface],
        check=False,
        capture_output=True,
        text=True,
    )
    match = re.search(r"inet (\S+)", out.stdout)
    return str(ipaddress.ip_interface(match.group(1)).network) if match else None


def _inventory(tmp_path: Path, groups: dict[str, list[str]], **cluster_vars: Any) -> Path:
    host_vars = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    children = {group: {"hosts": {h: None for h in hosts}} for group, hosts in groups.items()}
    inventory = {"all": {"vars": {**host_vars, **cluster_vars}, "children": children}}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


def _run(inventory: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_LOCAL_TEMP": str(inventory.parent / "tmp"),
    }
    assert ANSIBLE_PLAYBOOK is not None
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(PLAYBOOK)],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def _assert_fails_with(result: subprocess.CompletedProcess[str], *sentences: str) -> None:
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    for sentence in sentences:
        assert " ".join(sentence.split()) in output, output[-3000:]


ALL_IN_ONE = {
    "kube_control_plane": ["node-a"],
    "kube_workers": ["node-a"],
    "nfs_server": ["node-a"],
}


def test_a_sound_inventory_passes(tmp_path: Path) -> None:
    result = _run(_inventory(tmp_path, ALL_IN_ONE))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"node-a\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", result.stdout)


def test_no_control_plane_node(tmp_path: Path) -> None:
    result = _run(_inventory(tmp_path, {"kube_workers": ["node-a"], "nfs_server": ["node-a"]}))
    _assert_fails_with(result, "The inventory has no host in group kube_control_plane.")


def test_nfs_storage_without_a_server(tmp_path: Path) -> None:
    result = _run(
        _inventory(tmp_path, {"kube_control_plane": ["node-a"], "kube_workers": ["node-a"]})
    )
    _assert_fails_with(
        result,
        "NFS storage is on (m2mcloud_nfs_enabled) but group nfs_server has 0 hosts (none);"
        " it needs exactly one.",
    )


def test_nfs_storage_off_needs_no_server(tmp_path: Path) -> None:
    inventory = _inventory(
        tmp_path,
        {"kube_control_plane": ["node-a"], "kube_workers": ["node-a"]},
        m2mcloud_nfs_enabled=False,
    )
    assert _run(inventory).returncode == 0


def test_several_control_plane_nodes_without_endpoint(tmp_path: Path) -> None:
    groups = {**ALL_IN_ONE, "kube_control_plane": ["node-a", "node-b"]}
    result = _run(_inventory(tmp_path, groups))
    _assert_fails_with(
        result,
        "Group kube_control_plane has 2 hosts (node-a, node-b)"
        " but kube_control_plane_endpoint is empty.",
    )


def test_pod_and_service_networks_overlap(tmp_path: Path) -> None:
    result = _run(
        _inventory(
            tmp_path, ALL_IN_ONE, kube_pod_cidr="10.96.0.0/16", kube_service_cidr="10.96.0.0/12"
        )
    )
    _assert_fails_with(
        result,
        "The pod network kube_pod_cidr=10.96.0.0/16 overlaps the service network"
        " kube_service_cidr=10.96.0.0/12.",
    )


def test_a_cidr_that_is_not_one(tmp_path: Path) -> None:
    result = _run(_inventory(tmp_path, ALL_IN_ONE, kube_pod_cidr="10.244.0.0/33"))
    _assert_fails_with(
        result, "kube_pod_cidr is '10.244.0.0/33', which is not a network in CIDR notation."
    )


def test_pod_network_over_the_node_network(tmp_path: Path) -> None:
    network = _default_ipv4_network()
    if network is None:
        pytest.skip("this machine has no default IPv4 route to overlap")
    result = _run(_inventory(tmp_path, ALL_IN_ONE, kube_pod_cidr=network))
    _assert_fails_with(
        result, f"Host node-a lives in {network}", f"which overlaps kube_pod_cidr={network}."
    )
