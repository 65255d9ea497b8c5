"""The platform on a real cluster (issue 7): playbooks/apps.yml on the lab cluster, a second run
that changes nothing, a device from outside the cluster whose readings the CSE stores and serves
over HTTP from outside, and the load test: replicas 1 -> >= 3 -> 1 with no acknowledged reading
lost.

Needs the lab cluster (docs/cluster.md): `ansible-playbook playbooks/lab.yml` then
`ansible-playbook site.yml` (cluster, storage, add-ons; this file runs apps.yml itself). Run:

    M2M_E2E=1 pytest -m e2e tests/e2e/test_apps.py -v -s  (~5 min on a quiet 2-core machine)

Another lab: M2M_E2E_INVENTORY=<its inventory dir> (where lab.yml wrote generated.yml).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from m2mcloud.devices.platform import count_stored
from tests.e2e.lab_cluster import (
    BIN,
    KUBECONFIG,
    NAMESPACE,
    ROOT,
    env,
    kubectl,
    playbook,
    ready_node_ip,
)
from tests.playout import changed_tasks, changed_total

# pytest-timeout's default (300 s, pyproject) would kill the load test (~7 min) and a cold apps.yml
# (image builds) half-way; each step below has its own subprocess timeout.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def node_ip() -> str:
    return ready_node_ip()


@pytest.fixture(scope="module")
def apps(node_ip: str) -> dict[str, Any]:
    first = playbook("playbooks/apps.yml")
    second = playbook("playbooks/apps.yml")
    return {"first": first, "second": second}


def test_apps_deploy_and_a_second_run_changes_nothing(apps: dict[str, Any]) -> None:
    assert changed_total(apps["second"]) == 0, changed_tasks(apps["second"])
    deployments = {
        d["metadata"]["name"]: d for d in kubectl("-n", NAMESPACE, "get", "deploy")["items"]
    }
    assert deployments["cse"]["status"]["readyReplicas"] >= 1
    assert deployments["mqtt-broker"]["status"]["readyReplicas"] == 1
    sts = kubectl("-n", NAMESPACE, "get", "statefulset", "cse-database")
    assert sts["status"]["readyReplicas"] == 1
    pvc = kubectl("-n", NAMESPACE, "get", "pvc", "data-cse-database-0")
    assert pvc["status"]["phase"] == "Bound"
    hpa = kubectl("-n", NAMESPACE, "get", "hpa", "cse")
    assert hpa["spec"]["minReplicas"] == 1

    # The images reach the nodes that run app pods; a node tainted NoSchedule (the control plane)
    # is never given them (app_images_nodes: schedulable). Checked on the kubelets' own image lists.
    cse_image = deployments["cse"]["spec"]["template"]["spec"]["containers"][0]["image"]
    imported = changed_tasks(apps["first"])
    for node in kubectl("get", "nodes")["items"]:
        name = node["metadata"]["name"]
        taints = node["spec"].get("taints") or []
        if any(t["effect"] in ("NoSchedule", "NoExecute") for t in taints):
            assert not any("Import the missing archives" in t for t in imported.get(name, [])), name
        else:
            images = {n for i in node["status"].get("images", []) for n in i.get("names", [])}
            assert cse_image in images, (name, sorted(images))


def test_the_cli_status_shows_the_cluster_and_the_autoscaled_cse(apps: dict[str, Any]) -> None:
    # The operator's happy path through the installed entry point, against the real API server.
    proc = subprocess.run(
        [str(BIN / "m2mcloud"), "status", "--json"],
        cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    status = json.loads(proc.stdout)
    assert status["ok"] is True and status["healthy"] is True, status
    assert status["kubeconfig"] == str(KUBECONFIG)
    nodes = status["nodes"]
    expected = {n["metadata"]["name"] for n in kubectl("get", "nodes")["items"]}
    assert {n["name"] for n in nodes} == expected and len(nodes) >= 2, nodes
    assert all(n["ready"] for n in nodes), nodes
    assert any("control-plane" in n["roles"] for n in nodes), nodes
    assert all(n["version"] and n["address"] for n in nodes), nodes
    deployments = {(d["namespace"], d["name"]): d for d in status["deployments"]}
    assert ("kube-system", "metrics-server") in deployments, sorted(deployments)
    cse = deployments[(NAMESPACE, "cse")]
    broker = deployments[(NAMESPACE, "mqtt-broker")]
    assert broker["ready"] == broker["desired"] == 1, broker
    hpa = next(h for h in status["hpas"] if (h["namespace"], h["name"]) == (NAMESPACE, "cse"))
    assert hpa["target"] == "Deployment/cse", hpa
    assert 1 <= hpa["min_replicas"] <= hpa["max_replicas"], hpa
    assert hpa["min_replicas"] <= cse["desired"] <= hpa["max_replicas"], (cse, hpa)
    assert 1 <= cse["ready"] <= cse["desired"], cse
    assert hpa["current_replicas"] == cse["desired"], (cse, hpa)
    # A CPU metric with a target in percent: "cpu <now>%/<target>%" ("?" before the first scrape).
    assert any(re.fullmatch(r"cpu (\d+%|\?)/\d+%", m) for m in hpa["metrics"]), hpa
    assert status["pod_phases"].get("Running", 0) >= 3, status["pod_phases"]


def _secret(name: str, key: str) -> str:
    data = kubectl("-n", NAMESPACE, "get", "secret", name)["data"]
    return base64.b64decode(data[key]).decode()


def test_a_device_outside_the_cluster_reaches_the_cse_through_the_broker(
    apps: dict[str, Any], node_ip: str, tmp_path: Path
) -> None:
    cse_url = f"http://{node_ip}:30080"
    password = _secret("mqtt-broker-credentials", "devices-password")
    run_id = f"e2e-{os.getpid()}"
    base = [
        sys.executable, "-m", "m2mcloud", "devices", "run", "--protocol", "mqtt",
        "--mqtt-host", node_ip, "--mqtt-port", "31883", "--devices", "5", "--duration", "10",
        "--rate", "10", "--progress", "none", "--plot", "",
    ]  # fmt: skip
    # Without the password the broker refuses the device: no anonymous access.
    refused = subprocess.run(
        [*base, "--run-id", f"{run_id}-anon", "--report", ""],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode == 3, refused.stderr
    assert "Not authorized" in refused.stderr
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [*base, "--run-id", run_id, "--mqtt-username", "devices", "--mqtt-password", password,
         "--report", str(report)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    totals = json.loads(report.read_text())["totals"]
    assert totals["acked"] == 100 and totals["errors"] == 0
    # The readings are in the CSE, read over HTTP through the NodePort from outside the cluster.
    assert count_stored(cse_url, run_id) == {"aes": 5, "stored": 100}


def test_the_flood_scales_the_cse_out_and_back_in_without_losing_readings(
    apps: dict[str, Any], tmp_path: Path
) -> None:
    playbook("playbooks/loadtest.yml", "-e", f"loadtest_results_dir={tmp_path}", timeout=2400)
    summaries = list(tmp_path.glob("*/summary.json"))
    assert len(summaries) == 1, sorted(p.name for p in tmp_path.rglob("*"))
    summary = json.loads(summaries[0].read_text())
    print(json.dumps(summary, indent=2))
    assert (summaries[0].parent / "loadtest-timeline.png").read_bytes()[:4] == b"\x89PNG"
    scaling = summary["scaling"]
    assert summary["lost"] == 0, summary
    assert summary["stored"] == summary["acknowledged"] > 0
    assert scaling["replicas_before"] == 1
    assert scaling["replicas_max"] >= 3, scaling
    assert scaling["replicas_last"] == 1, scaling
    assert scaling["first_extra_replica_ready_s"] is not None, "no extra replica became Ready"
    assert scaling["scale_down_after_flood_s"] is not None, "never back to min after the flood"
    # Issue 7's reaction figures (<= 60 s up, <= 180 s down) are figures, not asserts (house rule:
    # speed is printed, recorded in docs/apps.md, never a timed assert that a busy machine fails).
    up = scaling["first_extra_replica_ready_s"]
    print(
        f"FIGURES {summary.get('run')}: extra replica Ready {up} s "
        f"(target <= 60), back to min {scaling['scale_down_after_flood_s']} s after the flood "
        f"(target <= 180), replicas max {scaling['replicas_max']}, "
        f"acked {summary['acknowledged']} stored {summary['stored']}"
    )
