"""The lab cluster the platform e2e tests run against: where its inventory and kubeconfig are, and
the real ansible-playbook and kubectl calls they make."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The inventory the cluster was built from: the lab's by default; `make test` builds a lab of its
# own (another prefix, a copy of inventory/lab) so a lab someone works on is left alone.
INVENTORY = Path(os.environ.get("M2M_E2E_INVENTORY", ROOT / "inventory/lab"))
KUBECONFIG = Path(os.environ.get("M2M_E2E_KUBECONFIG", INVENTORY / ".kube/admin.conf"))
NAMESPACE = "m2m"
_PINNED = re.search(
    r"^kube_version: *(\S+)", (ROOT / "inventory/lab/group_vars/all/versions.yml").read_text(), re.M
)
# The bundle's kubectl (the pinned release) when the bundle is built, else whatever is on PATH.
_BUNDLED = Path.home() / f".cache/m2mcloud/bundle/v{_PINNED and _PINNED[1]}/kubernetes"
KUBECTL = next((str(k) for k in _BUNDLED.glob("v*/bin/kubectl")), "kubectl")


def env() -> dict[str, str]:
    return dict(
        os.environ,
        PATH=f"{BIN}:{os.environ.get('PATH', '')}",
        ANSIBLE_NOCOLOR="1",
        K8S_AUTH_KUBECONFIG=str(KUBECONFIG),
        KUBECONFIG=str(KUBECONFIG),
    )


def playbook(name: str, *extra: str, timeout: int = 1800) -> str:
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(INVENTORY), name, *extra],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    return proc.stdout


def kubectl(*args: str) -> Any:
    out = subprocess.run(
        [KUBECTL, *args, "-o", "json"],
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return json.loads(out)


def ready_node_ip() -> str:
    """The first node's InternalIP, after checking the cluster exists and every node is Ready."""
    if not KUBECONFIG.is_file():
        pytest.fail(
            f"no cluster: {KUBECONFIG} does not exist. Build the lab cluster first "
            "(ansible-playbook playbooks/lab.yml && ansible-playbook site.yml, docs/cluster.md)"
        )
    nodes = kubectl("get", "nodes")["items"]
    assert nodes, "the cluster has no nodes"
    for node in nodes:
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", f"{node['metadata']['name']} is not Ready"
    address = next(
        a["address"] for a in nodes[0]["status"]["addresses"] if a["type"] == "InternalIP"
    )
    return str(address)
