"""`m2mcloud lab status`: the nodes of the lab's generated inventory and whether each one runs.

playbooks/lab.yml writes inventory/lab/generated.yml. A container node (`m2mcloud_lab_driver:
container`, or reached with the podman connection) runs when podman says its container (named
after the node) is running and, if Ansible reaches it over SSH, its SSH port answers. A VM node
(a qemu VM, SSH through a loopback port forward) runs when its SSH port accepts a connection."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from m2mcloud.deploy.errors import DeployError


@dataclass
class LabNode:
    name: str
    groups: list[str]
    driver: str  # container or vm
    address: str  # container name, or host:port of SSH
    state: str  # podman's state (running, exited, ...), "missing", "ssh answering", ...
    running: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _inventory_hosts(inventory: Path) -> dict[str, Any]:
    """`ansible-inventory --list` of the file: every host's variables and groups."""
    here = Path(sys.executable).parent / "ansible-inventory"
    binary = str(here) if here.is_file() else shutil.which("ansible-inventory")
    if binary is None:
        raise DeployError("ansible-inventory is not installed", "make deps")
    proc = subprocess.run(
        [binary, "-i", str(inventory), "--list"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "1", "ANSIBLE_NOCOLOR": "1"},
    )
    if proc.returncode != 0:
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        raise DeployError(
            f"cannot read the lab inventory {inventory}: {lines[-1] if lines else proc.returncode}",
            f"recreate it with m2mcloud lab up; "
            f"check with: ansible-inventory -i {inventory} --graph",
        )
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def _groups_of(data: dict[str, Any]) -> dict[str, list[str]]:
    """host -> the groups it is directly in (not all/ungrouped)."""
    out: dict[str, list[str]] = {}
    for group, body in data.items():
        if group in ("_meta", "all") or not isinstance(body, dict):
            continue
        for host in body.get("hosts", []):
            if group != "ungrouped":
                out.setdefault(host, []).append(group)
            else:
                out.setdefault(host, [])
    return out


def _podman_state(name: str) -> str:
    podman = shutil.which("podman")
    if podman is None:
        return "podman not installed"
    proc = subprocess.run(
        [podman, "container", "inspect", "--format", "{{.State.Status}}", name],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return proc.stdout.strip() if proc.returncode == 0 else "missing"


def _ssh_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def lab_nodes(inventory: Path) -> list[LabNode]:
    if not inventory.is_file():
        raise DeployError(
            f"no lab inventory at {inventory}: the lab has not been created",
            "create it with: m2mcloud lab up",
        )
    data = _inventory_hosts(inventory)
    hostvars: dict[str, dict[str, Any]] = data.get("_meta", {}).get("hostvars", {})
    groups = _groups_of(data)
    nodes: list[LabNode] = []
    for name in sorted(set(groups) | set(hostvars)):
        hv = hostvars.get(name, {})
        connection = str(hv.get("ansible_connection", "ssh"))
        podman = "podman" in connection
        driver = str(hv.get("m2mcloud_lab_driver") or ("container" if podman else "vm"))
        host = str(hv.get("ansible_host") or name)
        port = int(hv.get("ansible_port") or 22)
        if driver == "container":
            # The container is named after the node (podman connection: its ansible_host).
            container = host if podman else name
            state = _podman_state(container)
            running = state == "running"
            if running and not podman:  # reached over SSH: does it answer?
                answers = _ssh_answers(host, port)
                state += ", ssh answering" if answers else ", ssh not answering"
                running = answers
            address = container if podman else f"{container} ({host}:{port})"
            nodes.append(LabNode(name, groups.get(name, []), driver, address, state, running))
        else:
            up = _ssh_answers(host, port)
            state = "ssh answering" if up else "ssh not answering"
            nodes.append(LabNode(name, groups.get(name, []), driver, f"{host}:{port}", state, up))
    return nodes
