"""kube_control_plane's kubeadm patches: the role's own configure tasks (ansible-playbook, on this
machine, paths moved into a temp dir) write the patch files and the config naming them; the
bundle's real kubeadm then validates the config and renders the static Pods with the patches
applied (`kubeadm init phase ... --dry-run`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ansible.bundle_bin import BIN, KUBE_BIN, ROOT, VERSION

KUBEADM_BIN = KUBE_BIN

pytestmark = pytest.mark.skipif(
    not (KUBEADM_BIN / "kubeadm").exists(),
    reason=f"no kubeadm in the offline bundle at {KUBEADM_BIN} (run playbooks/bundle.yml)",
)

PLAY = """\
- name: Render kube_control_plane's kubeadm configuration and patches
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Run the role's configure tasks
      ansible.builtin.include_role:
        name: ROLE
        tasks_from: configure.yml
"""

PROBE = {"timeoutSeconds": 60, "periodSeconds": 30, "failureThreshold": 20}


def configure(tmp_path: Path, patches: list[dict[str, Any]]) -> dict[str, Any]:
    """Run the role's configure.yml with `patches`; return the play's stats for localhost."""
    play = tmp_path / "play.yml"
    play.write_text(PLAY.replace("ROLE", str(ROOT / "roles/kube_control_plane")))
    extra = {
        "kube_control_plane_patches": patches,
        "kube_control_plane_version": VERSION,
        "kube_control_plane_advertise_address": "10.1.2.3",
        "_kube_control_plane_node_name": "cp1",
        "_kube_control_plane_config_file": str(tmp_path / "kubeadm-config.yaml"),
        "_kube_control_plane_patches_dir": str(tmp_path / "patches"),
        "__kube_control_plane_initialised": {"stat": {"exists": False}},
    }
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(play),
         "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"@{tmp_path / 'extra.json'}"],
        env=dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1",
                 PATH=f"{KUBEADM_BIN}:{os.environ['PATH']}"),
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return dict(json.loads(proc.stdout)["stats"]["localhost"])


def static_pod(tmp_path: Path, phase: list[str], name: str) -> dict[str, Any]:
    """kubeadm's dry-run rendering of one static Pod from the role's configuration."""
    out = tmp_path / "dryrun"
    proc = subprocess.run(
        [str(KUBEADM_BIN / "kubeadm"), "init", "phase", *phase,
         "--config", str(tmp_path / "kubeadm-config.yaml"), "--dry-run"],
        env=dict(os.environ, KUBEADM_INIT_DRYRUN_DIR=str(out)),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f'Applied patch of type "application/strategic-merge-patch+json" to target "{name}"' in (
        proc.stdout + proc.stderr
    )
    return dict(yaml.safe_load((out / f"{name}.yaml").read_text()))


def liveness(pod: dict[str, Any]) -> dict[str, Any]:
    return dict(pod["spec"]["containers"][0]["livenessProbe"])


def probe_patch(target: str) -> dict[str, Any]:
    container = {"name": target, "livenessProbe": PROBE}
    return {"target": target, "patch": {"spec": {"containers": [container]}}}


def test_patches_reach_the_static_pods_kubeadm_writes(tmp_path: Path) -> None:
    stats = configure(tmp_path, [probe_patch("kube-apiserver"), probe_patch("etcd")])
    assert stats["failures"] == 0 and stats["changed"] >= 3, stats
    config = list(yaml.safe_load_all((tmp_path / "kubeadm-config.yaml").read_text()))
    assert config[0]["patches"] == {"directory": str(tmp_path / "patches")}
    assert sorted(p.name for p in (tmp_path / "patches").iterdir()) == [
        "etcd+strategic.yaml", "kube-apiserver+strategic.yaml",
    ]  # fmt: skip

    apiserver = liveness(static_pod(tmp_path, ["control-plane", "apiserver"], "kube-apiserver"))
    assert {k: apiserver[k] for k in PROBE} == PROBE
    assert apiserver["httpGet"]["path"] == "/livez"  # kubeadm's own probe, only its timing patched
    etcd = liveness(static_pod(tmp_path, ["etcd", "local"], "etcd"))
    assert {k: etcd[k] for k in PROBE} == PROBE

    # Nothing changes on a second run; a patch taken off the list leaves the directory.
    assert configure(tmp_path, [probe_patch("kube-apiserver"), probe_patch("etcd")])["changed"] == 0
    configure(tmp_path, [probe_patch("etcd")])
    assert [p.name for p in (tmp_path / "patches").iterdir()] == ["etcd+strategic.yaml"]


def test_without_patches_the_config_names_no_patch_directory(tmp_path: Path) -> None:
    configure(tmp_path, [])
    config = list(yaml.safe_load_all((tmp_path / "kubeadm-config.yaml").read_text()))
    assert "patches" not in config[0]
    assert not (tmp_path / "patches").exists()
