"""The roles try a failed Kubernetes API call again (an API server restarting must not fail the
play): every kubernetes.core task retries, and a real run against an address where no API server
answers shows the retries happen, then fail with the client's own error."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
API_ROLES = sorted(
    p.parents[1].name
    for p in (ROOT / "roles").glob("*/tasks/*.yml")
    if "kubernetes.core." in p.read_text()
)


def _tasks(role: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((ROOT / "roles" / role / "tasks").glob("*.yml")):
        for task in yaml.safe_load(path.read_text()) or []:
            inner = task.get("block", [task])
            found += [(f"{path.name}: {t.get('name')}", t) for t in inner]
    return found


def test_the_roles_that_talk_to_the_api_are_found() -> None:
    assert {"cni", "cse", "cse_database", "device_fleet", "metrics_server", "mqtt_broker"} <= set(
        API_ROLES
    )


@pytest.mark.parametrize("role", API_ROLES)
def test_every_api_task_retries(role: str) -> None:
    api_tasks = [
        (n, t) for n, t in _tasks(role) if any(k.startswith("kubernetes.core.") for k in t)
    ]
    assert api_tasks, role
    for name, task in api_tasks:
        until = task.get("until", "")
        until = " and ".join(until) if isinstance(until, list) else until
        if task.get("failed_when") is False:  # a poll that reads failures as "not yet"
            assert task.get("retries") and until, name
            continue
        assert f"{task['register']} is succeeded" in until, name
        # Wait loops keep their own budget; every other call retries by the role's setting.
        assert str(task.get("retries")) == f"{{{{ {role}_api_retries }}}}" or " and " in until, name


@pytest.mark.parametrize("role", API_ROLES)
def test_a_status_update_racing_an_apply_is_not_a_change(role: str) -> None:
    # kubernetes.core reports `changed` when the object it read and the one the API returned differ
    # anywhere, status included (e.g. a DaemonSet rolling onto a node that just joined, the likely
    # cause of a CI add-node run with cp1 changed=1). Hidden, only resourceVersion is left: ignored.
    writes = [
        (n, t["kubernetes.core.k8s"])
        for n, t in _tasks(role)
        if "kubernetes.core.k8s" in t and t["kubernetes.core.k8s"].get("state") != "absent"
    ]
    for name, args in writes:
        assert {"status", "metadata.managedFields"} <= set(args.get("hidden_fields", [])), name


def test_a_failed_api_call_is_tried_again_then_reported(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on: connection refused, like a restart
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = tmp_path / "admin.conf"
    kubeconfig.write_text(
        yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "k", "cluster": {"server": f"https://127.0.0.1:{port}",
                                                   "insecure-skip-tls-verify": True}}],
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
        })
    )  # fmt: skip
    play = tmp_path / "play.yml"
    play.write_text(
        "- name: Read the broker's credentials\n  hosts: localhost\n  connection: local\n"
        "  gather_facts: false\n  module_defaults:\n    group/kubernetes.core.k8s:\n"
        f"      kubeconfig: {kubeconfig}\n  tasks:\n"
        "    - name: The role's credentials tasks\n      ansible.builtin.include_role:\n"
        "        name: mqtt_broker\n        tasks_from: credentials.yml\n"
    )
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(play),
         "-e", f"ansible_python_interpreter={sys.executable}", "-e", "m2mcloud_api_retries=2"],
        env=dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1"),
        capture_output=True, text=True, timeout=180, check=False, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-2000:]
    tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    result = tasks[-1]["hosts"]["localhost"]
    # Two retries after the first try (ansible-core counts them in `attempts`; ~20 s of delays).
    assert result["failed"] and result["attempts"] == 2, result
    assert "Connection refused" in json.dumps(result), result
