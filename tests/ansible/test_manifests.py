"""Every manifest the app roles render (mqtt_broker, cse_database, cse, device_fleet), validated
offline against the Kubernetes OpenAPI schemas of the pinned version, strictly (unknown fields
fail). The manifests come from the roles' real templates, rendered by ansible-playbook
(playbooks/render.yml) with the role defaults and with every option switched the other way."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ansible import k8s_schema

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VERSION = re.search(
    r"^kube_version:\s*(\S+)",
    (ROOT / "inventory/lab/group_vars/all/versions.yml").read_text(),
    re.M,
).group(1)  # type: ignore[union-attr]
ROLES = ["mqtt_broker", "cse_database", "cse", "device_fleet"]
# The other way round from every default that changes what is rendered.
OPTIONS = {
    "mqtt_broker_tls_secret": "broker-tls",
    "mqtt_broker_tls_node_port": 31884,
    "mqtt_broker_service_type": "ClusterIP",
    "cse_database_storage_class": "local-path",
    "cse_database_allowed_clients": [{"app.kubernetes.io/name": "backup"}],
    "cse_database_startup_timeout": 1200,
    "cse_hpa_enabled": False,
    "cse_service_type": "LoadBalancer",
    "cse_node_port": 0,
    "cse_mqtt_host": "",
    "cse_extra_env": {"M2M_NOTIFY_WORKERS": 2, "M2M_LOG_LEVEL": "DEBUG"},
    "cse_image_digest": "sha256:" + "0" * 64,
    "device_fleet_protocol": "http",
    "device_fleet_run_id": "options-1",
    "device_fleet_profile": {"segments": [{"duration": 10, "from": 0, "to": 50}]},
    "device_fleet_env": {"M2M_DEVICES_COMMANDS": True},
    "m2mcloud_namespace": "iot",
}


def _render(
    out: Path, extra: dict[str, Any], roles_path: Path | None = None
) -> subprocess.Popen[str]:
    env = dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}", ANSIBLE_NOCOLOR="1")
    if roles_path:
        env["ANSIBLE_ROLES_PATH"] = str(roles_path)
    extra = {"m2mcloud_render_dir": str(out), "ansible_python_interpreter": sys.executable, **extra}
    return subprocess.Popen(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            "localhost,",
            "-e",
            yaml.safe_dump(extra, default_flow_style=True, width=10_000).strip(),
            str(ROOT / "playbooks" / "render.yml"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out[-3000:]
    return out


def _docs(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(directory.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                found.append((str(path.relative_to(directory)), doc))
    return found


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Three renders at once: defaults, every option flipped, a role with a typo in a template."""
    base = tmp_path_factory.mktemp("render")
    typo_roles = base / "typo-roles"
    shutil.copytree(ROOT / "roles", typo_roles, symlinks=True)
    deployment = typo_roles / "cse" / "templates" / "deployment.yaml.j2"
    text = deployment.read_text()
    assert "          readinessProbe:\n" in text
    deployment.write_text(
        text.replace("          readinessProbe:\n", "          readynessProbe:\n")
    )
    procs = {
        "defaults": _render(base / "defaults", {}),
        "options": _render(base / "options", OPTIONS),
        "typo": _render(base / "typo", {}, typo_roles),
    }
    outputs = {name: _wait(proc) for name, proc in procs.items()}
    yield {
        "defaults": _docs(base / "defaults"),
        "options": _docs(base / "options"),
        "typo": _docs(base / "typo"),
        "outputs": outputs,
    }


def test_the_vendored_schemas_are_the_pinned_version() -> None:
    files = k8s_schema.schema_files()
    assert [p.name for p in files] == [f"k8s-{VERSION}-schemas.json.gz"], (
        "run scripts/vendor-k8s-schemas.py after changing kube_version"
    )
    assert k8s_schema.load(VERSION)["kubernetes_version"] == VERSION


@pytest.mark.parametrize("variant", ["defaults", "options"])
def test_every_rendered_manifest_is_valid(rendered: dict[str, Any], variant: str) -> None:
    docs = rendered[variant]
    roles_seen = {path.split("/")[0] for path, _ in docs}
    assert roles_seen == set(ROLES)
    problems = [f"{path}: {p}" for path, doc in docs for p in k8s_schema.validate(doc, VERSION)]
    assert problems == []


def test_a_typo_in_a_role_template_fails_validation(rendered: dict[str, Any]) -> None:
    problems = [p for _, doc in rendered["typo"] for p in k8s_schema.validate(doc, VERSION)]
    assert len(problems) == 1, problems
    assert problems[0].startswith("Deployment/cse: spec.template.spec.containers.0:")
    assert "'readynessProbe' was unexpected" in problems[0]


def _find(docs: list[tuple[str, dict[str, Any]]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for _, d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} rendered"
    return matches[0]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["spec"].__setitem__("replicas", "2"),
            "spec.replicas: '2' is not of type 'integer'",
        ),
        (
            lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"][
                "limits"
            ].__setitem__("memory", "384mb"),
            "resources.limits.memory: '384mb' is not valid",
        ),
        (
            lambda d: d["metadata"].__setitem__("name", "CSE_1"),
            "metadata.name: 'CSE_1' does not match",
        ),
        (
            lambda d: d["metadata"]["labels"].__setitem__(
                "app.kubernetes.io/version", "0.1.0+local"
            ),
            "metadata.labels.app.kubernetes.io/version: '0.1.0+local' does not match",
        ),
        (lambda d: d["spec"].pop("selector"), "spec: 'selector' is a required property"),
        (lambda d: d.__setitem__("apiVersion", "apps/v1beta2"), "apiVersion 'apps/v1beta2' kind"),
    ],
    ids=["wrong-type", "bad-quantity", "bad-name", "bad-label", "missing-required", "unknown-api"],
)
def test_the_validation_catches(rendered: dict[str, Any], mutate: Any, expected: str) -> None:
    doc = copy.deepcopy(_find(rendered["defaults"], "Deployment", "cse"))
    assert k8s_schema.validate(doc, VERSION) == []
    mutate(doc)
    problems = k8s_schema.validate(doc, VERSION)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("variant", ["defaults", "options"])
def test_objects_are_labelled_consistently(rendered: dict[str, Any], variant: str) -> None:
    for path, doc in rendered[variant]:
        labels = doc["metadata"].get("labels") or {}
        where = f"{path} {doc['kind']}/{doc['metadata']['name']}"
        assert labels.get("app.kubernetes.io/part-of") == "m2mcloud", where
        assert labels.get("app.kubernetes.io/managed-by") == "ansible", where
        for key in ("name", "instance", "component", "version"):
            assert labels.get(f"app.kubernetes.io/{key}"), f"{where}: no app.kubernetes.io/{key}"
        assert doc["metadata"]["namespace"] == ("iot" if variant == "options" else "m2m"), where
        template = (doc.get("spec") or {}).get("template")
        if template and doc["kind"] != "Job":
            selector = doc["spec"]["selector"]["matchLabels"]
            assert selector.items() <= template["metadata"]["labels"].items(), where


@pytest.mark.parametrize("variant", ["defaults", "options"])
def test_services_and_policies_select_the_right_pods(
    rendered: dict[str, Any], variant: str
) -> None:
    docs = rendered[variant]
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for _, d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
    }
    for service, workload in (
        ("cse", "cse"),
        ("mqtt-broker", "mqtt-broker"),
        ("cse-database", "cse-database"),
    ):
        selector = _find(docs, "Service", service)["spec"]["selector"]
        assert selector.items() <= pods[workload].items(), service
    policy = _find(docs, "NetworkPolicy", "cse-database")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pods["cse-database"].items()
    allowed = [peer["podSelector"]["matchLabels"] for peer in policy["spec"]["ingress"][0]["from"]]
    # The CSE pods get through, the broker and the simulator do not.
    assert any(a.items() <= pods["cse"].items() for a in allowed)
    assert not any(a.items() <= pods["mqtt-broker"].items() for a in allowed)
    job = next(d for _, d in docs if d["kind"] == "Job")
    assert not any(
        a.items() <= job["spec"]["template"]["metadata"]["labels"].items() for a in allowed
    )
    pdb = _find(docs, "PodDisruptionBudget", "cse")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pods["cse"].items()


def test_the_cse_scales_and_drains_as_configured(rendered: dict[str, Any]) -> None:
    docs = rendered["defaults"]
    hpa = _find(docs, "HorizontalPodAutoscaler", "cse")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 5)
    assert hpa["spec"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 60
    deployment = _find(docs, "Deployment", "cse")
    assert "replicas" not in deployment["spec"], "a re-run would reset the HPA's choice"
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 60  # cse_startup_timeout
    assert (
        pod["terminationGracePeriodSeconds"]
        > container["lifecycle"]["preStop"]["sleep"]["seconds"] + 25
    )
    fixed = _find(rendered["options"], "Deployment", "cse")
    assert fixed["spec"]["replicas"] == 1
    assert not [d for _, d in rendered["options"] if d["kind"] == "HorizontalPodAutoscaler"]


@pytest.mark.parametrize(("variant", "budget"), [("defaults", 300), ("options", 1200)])
def test_the_database_gets_its_startup_budget_before_liveness_counts(
    rendered: dict[str, Any], variant: str, budget: int
) -> None:
    # initdb on a slow NFS volume took minutes on the TCG VMs: the liveness probe (3 x 20 s) must
    # not restart PostgreSQL half-way through it.
    container = _find(rendered[variant], "StatefulSet", "cse-database")["spec"]["template"]["spec"][
        "containers"
    ][0]
    startup = container["startupProbe"]
    assert startup["tcpSocket"]["port"] == "postgresql"
    assert startup["periodSeconds"] * startup["failureThreshold"] == budget
    assert "initialDelaySeconds" not in container["livenessProbe"]


def test_the_broker_admits_no_anonymous_client(rendered: dict[str, Any]) -> None:
    for variant in ("defaults", "options"):
        config = _find(rendered[variant], "ConfigMap", "mqtt-broker")["data"]["mosquitto.conf"]
        assert "allow_anonymous false" in config
        assert "password_file /mosquitto/auth/passwd" in config
        assert ("listener 8883" in config) is (variant == "options")
