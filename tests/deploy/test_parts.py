"""The small parts of m2mcloud.deploy: secrets and their redaction, playbook names, extra
variables from the command line, the cluster summary from real kubernetes client objects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes import client as k8s

from m2mcloud.deploy import Secret, UnknownPlaybookError, playbook_names, resolve_playbook
from m2mcloud.deploy.cli import parse_extravars
from m2mcloud.deploy.cluster import find_kubeconfig, summarize
from m2mcloud.deploy.project import default_inventory
from m2mcloud.deploy.secrets import (
    MASK,
    Redactor,
    masked,
    reveal,
    secret_env_values,
    secret_values,
)

ROOT = Path(__file__).resolve().parents[2]


# --- secrets
def test_a_secret_shows_only_a_mask() -> None:
    s = Secret("hunter2-long")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s) and "hunter2" not in f"{s}"
    assert s.reveal() == "hunter2-long"
    assert s == Secret("hunter2-long") and hash(s) == hash(Secret("hunter2-long"))


def test_extravars_revealed_for_ansible_and_masked_for_reports() -> None:
    extravars = {"user": "admin", "pw": Secret("p4ssw0rd"), "nested": {"token": Secret(["t0ken1"])}}
    assert reveal(extravars) == {"user": "admin", "pw": "p4ssw0rd", "nested": {"token": ["t0ken1"]}}
    assert masked(extravars) == {"user": "admin", "pw": MASK, "nested": {"token": MASK}}
    assert sorted(secret_values(extravars)) == ["p4ssw0rd", "t0ken1"]


def test_secret_environment_variables_are_found_by_name() -> None:
    env = {
        "M2M_DB_PASSWORD": "dbpass123",
        "GITHUB_TOKEN": "ghp_x",
        "AWS_SECRET_ACCESS_KEY": "aws123",
        "ANSIBLE_VAULT_PASSWORD_FILE": "/path/file",
        "SSH_AUTH_SOCK": "/tmp/agent",
        "HOME": "/root",
    }
    assert sorted(secret_env_values(env)) == ["aws123", "dbpass123", "ghp_x"]


def test_redactor_masks_plain_and_json_escaped_forms_in_nested_events() -> None:
    secret = 'pa"ss\\word'
    redactor = Redactor([secret, "ab"])  # "ab" is too short to redact safely
    event = {
        "stdout": f"ok: [h] => the secret is {secret}",
        "event_data": {"res": {"msg": [secret, {"deep": f"x{secret}y"}]}, "n": 3},
        "raw": json.dumps({"v": secret}),
    }
    redactor.event(event)
    text = json.dumps(event)
    assert secret not in json.dumps(event, ensure_ascii=False)
    assert json.dumps(secret)[1:-1] not in text
    assert event["stdout"] == f"ok: [h] => the secret is {MASK}"
    assert event["event_data"]["res"]["msg"][1] == {"deep": f"x{MASK}y"}
    assert event["event_data"]["n"] == 3
    assert "ab" in redactor.text("tab") and bool(Redactor(["ab"])) is False


def test_redactor_scrubs_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "stdout").write_text("line with S3cretValue in it\n")
    (tmp_path / "sub" / "event.json").write_text(json.dumps({"v": "S3cretValue"}))
    (tmp_path / "clean").write_text("nothing\n")
    changed = Redactor(["S3cretValue"]).scrub_tree(tmp_path)
    assert sorted(p.name for p in changed) == ["event.json", "stdout"]
    assert (tmp_path / "stdout").read_text() == f"line with {MASK} in it\n"
    assert "S3cretValue" not in (tmp_path / "sub" / "event.json").read_text()


# --- playbook names and defaults
def test_playbook_names_resolve_in_the_project(tmp_path: Path) -> None:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "cluster.yml").write_text("---\n")
    (tmp_path / "playbooks" / "site.yml").write_text("---\n")
    assert resolve_playbook("cluster", tmp_path) == tmp_path / "playbooks" / "cluster.yml"
    assert resolve_playbook("cluster.yml", tmp_path) == tmp_path / "playbooks" / "cluster.yml"
    # No top-level site.yml: site is playbooks/site.yml.
    assert resolve_playbook("site", tmp_path) == tmp_path / "playbooks" / "site.yml"
    (tmp_path / "site.yml").write_text("---\n")
    assert resolve_playbook("site", tmp_path) == tmp_path / "site.yml"
    assert playbook_names(tmp_path) == ["cluster", "site"]
    with pytest.raises(UnknownPlaybookError) as err:
        resolve_playbook("addons", tmp_path)
    assert err.value.valid == ["cluster", "site"]
    assert "no playbook 'addons'" in str(err.value) and "valid names: cluster, site" in str(
        err.value
    )
    other = tmp_path / "elsewhere.yml"
    other.write_text("---\n")
    assert resolve_playbook(str(other), tmp_path) == other
    with pytest.raises(UnknownPlaybookError):
        resolve_playbook(str(tmp_path / "missing.yml"), tmp_path)


def test_the_platform_project_knows_its_playbooks() -> None:
    names = playbook_names(ROOT)
    assert {"site", "cluster", "storage", "bundle"} <= set(names)
    assert resolve_playbook("site", ROOT) == ROOT / "site.yml"
    assert default_inventory(ROOT).is_relative_to(ROOT / "inventory")


def test_kubeconfig_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    inv = tmp_path / "inv"
    (inv / ".kube").mkdir(parents=True)
    (inv / "hosts.yml").write_text("all: {}\n")
    assert find_kubeconfig("", str(inv / "hosts.yml")).endswith(".kube/config")
    (inv / ".kube" / "admin.conf").write_text("x")
    assert find_kubeconfig("", str(inv / "hosts.yml")) == str(inv / ".kube" / "admin.conf")
    assert find_kubeconfig("", str(inv)) == str(inv / ".kube" / "admin.conf")
    monkeypatch.setenv("KUBECONFIG", "/k/config")
    assert find_kubeconfig("", str(inv)) == "/k/config"
    assert find_kubeconfig("/explicit", str(inv)) == "/explicit"


# --- -e on the command line
def test_extravars_from_the_command_line(tmp_path: Path) -> None:
    f = tmp_path / "vars.yml"
    f.write_text("a: 1\nb: [x, y]\n")
    assert parse_extravars(["state=present", "empty=", f"@{f}", '{"c": true}', "k=v=w"]) == {
        "state": "present",
        "empty": "",
        "a": 1,
        "b": ["x", "y"],
        "c": True,
        "k": "v=w",
    }
    for bad in ("novalue", "=x", "{not json", f"@{tmp_path / 'missing.yml'}"):
        with pytest.raises(ValueError, match="-e"):
            parse_extravars([bad])
    (tmp_path / "list.yml").write_text("- a\n")
    with pytest.raises(ValueError, match="mapping"):
        parse_extravars([f"@{tmp_path / 'list.yml'}"])


# --- the cluster summary, from the client's own model objects
def test_cluster_summary_from_client_objects() -> None:
    meta = k8s.V1ObjectMeta
    nodes = k8s.V1NodeList(
        items=[
            k8s.V1Node(
                metadata=meta(name="cp1", labels={"node-role.kubernetes.io/control-plane": ""}),
                status=k8s.V1NodeStatus(
                    conditions=[k8s.V1NodeCondition(type="Ready", status="True")],
                    addresses=[k8s.V1NodeAddress(type="InternalIP", address="10.0.0.1")],
                    node_info=k8s.V1NodeSystemInfo(
                        kubelet_version="v1.34.2",
                        architecture="amd64",
                        boot_id="b",
                        container_runtime_version="containerd://1.7",
                        kernel_version="6.1",
                        kube_proxy_version="v1.34.2",
                        machine_id="m",
                        operating_system="linux",
                        os_image="Debian 12",
                        system_uuid="u",
                    ),
                ),
            ),
            k8s.V1Node(
                metadata=meta(name="w1", labels={}),
                status=k8s.V1NodeStatus(
                    conditions=[k8s.V1NodeCondition(type="Ready", status="False")]
                ),
            ),
        ]
    )
    deployments = k8s.V1DeploymentList(
        items=[
            k8s.V1Deployment(
                metadata=meta(name="cse", namespace="m2mcloud"),
                spec=k8s.V1DeploymentSpec(
                    replicas=3,
                    selector=k8s.V1LabelSelector(),
                    template=k8s.V1PodTemplateSpec(),
                ),
                status=k8s.V1DeploymentStatus(ready_replicas=2, available_replicas=2),
            )
        ]
    )
    hpas = k8s.V2HorizontalPodAutoscalerList(
        items=[
            k8s.V2HorizontalPodAutoscaler(
                metadata=meta(name="cse", namespace="m2mcloud"),
                spec=k8s.V2HorizontalPodAutoscalerSpec(
                    scale_target_ref=k8s.V2CrossVersionObjectReference(
                        kind="Deployment", name="cse", api_version="apps/v1"
                    ),
                    min_replicas=1,
                    max_replicas=8,
                    metrics=[
                        k8s.V2MetricSpec(
                            type="Resource",
                            resource=k8s.V2ResourceMetricSource(
                                name="cpu",
                                target=k8s.V2MetricTarget(
                                    type="Utilization", average_utilization=60
                                ),
                            ),
                        )
                    ],
                ),
                status=k8s.V2HorizontalPodAutoscalerStatus(
                    current_replicas=2,
                    desired_replicas=3,
                    current_metrics=[
                        k8s.V2MetricStatus(
                            type="Resource",
                            resource=k8s.V2ResourceMetricStatus(
                                name="cpu",
                                current=k8s.V2MetricValueStatus(average_utilization=91),
                            ),
                        )
                    ],
                ),
            )
        ]
    )
    pods = k8s.V1PodList(
        items=[
            k8s.V1Pod(
                metadata=meta(name="cse-1", namespace="m2mcloud"),
                spec=k8s.V1PodSpec(containers=[], node_name="w1"),
                status=k8s.V1PodStatus(
                    phase="Running",
                    container_statuses=[
                        k8s.V1ContainerStatus(
                            name="cse",
                            ready=True,
                            restart_count=2,
                            image="i",
                            image_id="",
                            started=True,
                        )
                    ],
                ),
            ),
            k8s.V1Pod(
                metadata=meta(name="cse-2", namespace="m2mcloud"),
                spec=k8s.V1PodSpec(containers=[]),
                status=k8s.V1PodStatus(phase="Pending"),
            ),
        ]
    )
    status = summarize(nodes, deployments, hpas, pods, server="https://x:6443", kubeconfig="k")
    assert [(n.name, n.ready, n.roles, n.version, n.address) for n in status.nodes] == [
        ("cp1", True, ["control-plane"], "v1.34.2", "10.0.0.1"),
        ("w1", False, [], "", ""),
    ]
    assert not status.healthy
    d = status.deployments[0]
    assert (d.namespace, d.name, d.desired, d.ready, d.available) == ("m2mcloud", "cse", 3, 2, 2)
    h = status.hpas[0]
    assert (h.target, h.min_replicas, h.max_replicas) == ("Deployment/cse", 1, 8)
    assert (h.current_replicas, h.desired_replicas, h.metrics) == (2, 3, ["cpu 91%/60%"])
    assert status.pod_phases == {"Running": 1, "Pending": 1}
    assert [(p.name, p.ready, p.restarts) for p in status.pods] == [
        ("cse-1", True, 2),
        ("cse-2", False, 0),
    ]
    assert json.loads(json.dumps(status.to_dict()))["healthy"] is False
