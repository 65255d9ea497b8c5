"""Replica sampling for the timeline: what the operator sees when it cannot work. (Sampling a
real Deployment is exercised by the cluster e2e tests; no cluster runs here.)"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from m2mcloud.devices.config import DevicesConfig
from m2mcloud.devices.replicas import ReplicaSampler, ReplicaSamplerError
from m2mcloud.devices.runner import run
from tests.support import free_port


def test_unusable_kubeconfig_exits_2_with_a_sentence(tmp_path: Path) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    err = io.StringIO()
    rc = run(
        DevicesConfig.from_env({}, kubeconfig=str(bad), kube_context="lab", report=""),
        out=io.StringIO(),
        err=err,
    )
    assert rc == 2
    message = err.getvalue().strip()
    assert message.startswith("m2mcloud devices run: ")
    assert (
        "cannot load the Kubernetes configuration" in message
        or "pip install 'm2mcloud[cluster]'" in message
    )
    assert "\n" not in message


def _kubeconfig(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster: {{server: "http://127.0.0.1:{port}"}}
users:
- name: admin
  user: {{token: "x"}}
contexts:
- name: lab
  context: {{cluster: lab, user: admin}}
current-context: lab
"""
    )
    return path


def test_unreachable_api_server_is_reported(tmp_path: Path) -> None:
    pytest.importorskip("kubernetes")
    sampler = ReplicaSampler(
        namespace="m2mcloud",
        deployment="cse",
        context="lab",
        kubeconfig=str(_kubeconfig(tmp_path, free_port())),
    )
    sampler.api.api_client.configuration.retries = 0
    with pytest.raises(ReplicaSamplerError, match="cannot read Deployment m2mcloud/cse"):
        sampler.check()
    assert sampler.samples == []
