"""The operator commands through the real entry point (`python -m m2mcloud ...` in a
subprocess), on the test project: exit codes, --json, the failure explanation."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import needs_ansible, write_inventory
from tests.deploy.recording import closed_port

pytestmark = [pytest.mark.integration, needs_ansible]


def m2mcloud(
    *args: str, runs: Path, project: Path, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "m2mcloud", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin if stdin is not None else "",
        env={
            **os.environ,
            "M2M_PROJECT_DIR": str(project),
            "M2M_RUNS_DIR": str(runs),
            "COLUMNS": "200",
            **env,
        },
    )


def as_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(proc.stdout)  # nothing else on stdout
    return data


def test_deploy_json_succeeds_with_exit_code_0_and_keeps_the_secret_out(
    project: Path, runs: Path, work: Path, inventory: Path
) -> None:
    secret = "cli-secret-Qm42-zz"
    proc = m2mcloud(
        "deploy", "--json", "-i", str(inventory), "-e", f"deploy_test_dir={work}",
        "--secret", "deploy_test_secret",
        runs=runs, project=project, M2M_SECRET_DEPLOY_TEST_SECRET=secret,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = as_json(proc)
    assert data["ok"] is True and data["status"] == "successful" and data["rc"] == 0
    assert data["playbook"] == "site"
    assert set(data["hosts"]) == {"node1", "node2"}
    assert data["hosts"]["node1"]["changed"] == 2 and data["changed"] == 4
    assert sorted({t["task"] for t in data["changed_tasks"]}) == [
        "Store the secret when one is given",
        "Write the marker file",
    ]
    assert Path(data["stdout_path"]).is_file()
    assert data["data"] == {"deploy_test_markers": str(work)}
    assert proc.stderr == ""  # --json: no progress
    # The secret reached the playbook, and nothing else.
    assert (work / "node1.secret").read_text() == secret
    assert data["extravars"]["deploy_test_secret"] == "********"
    assert secret not in proc.stdout
    for path in Path(data["artifact_dir"]).rglob("*"):
        assert not path.is_file() or secret.encode() not in path.read_bytes(), path


def test_deploy_stage_failure_explains_and_exits_1(
    project: Path, runs: Path, inventory: Path
) -> None:
    proc = m2mcloud(
        "deploy", "--stage", "cluster", "-i", str(inventory), runs=runs, project=project
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    err = proc.stderr
    # Progress from the events: play, task and host lines.
    assert "PLAY Fail on one host" in err
    assert "TASK Check the disk is big enough" in err
    assert "changed: node1" in err
    assert "FAILED: node2: disk too small on node2" in err
    # The summary table and the short explanation, then the log path.
    assert "cluster: per-host results" in err and "node2" in err
    assert "A task failed" in err
    assert "host:    node2" in err
    assert "task:    Check the disk is big enough" in err
    assert "message: disk too small on node2: 3 GiB free, 20 GiB needed" in err
    assert "check:   fix what the message names on node2" in err
    log = err.split("full log: ", 1)[1].split()[0]
    assert Path(log).is_file() and "disk too small on node2" in Path(log).read_text()


def test_unreachable_host_json_exits_1(project: Path, runs: Path, tmp_path: Path) -> None:
    inv = write_inventory(
        tmp_path / "hosts.yml",
        {
            "far": {
                "ansible_host": "127.0.0.1",
                "ansible_port": closed_port(),
                "ansible_python_interpreter": "/usr/bin/python3",
            }
        },
    )
    proc = m2mcloud(
        "deploy", "--json", "-i", str(inv), "-e", f"deploy_test_dir={tmp_path}",
        runs=runs, project=project,
    )  # fmt: skip
    assert proc.returncode == 1
    data = as_json(proc)
    assert data["ok"] is False
    failure = data["failure"]
    assert failure["kind"] == "unreachable" and failure["host"] == "far"
    assert failure["task"] == "Write the marker file"
    assert "ansible_host" in failure["hint"]
    assert data["hosts"]["far"]["unreachable"] == 1


def test_usage_errors_exit_2_with_valid_names(project: Path, runs: Path, inventory: Path) -> None:
    proc = m2mcloud("deploy", "--stage", "addons", "--json", runs=runs, project=project)
    assert proc.returncode == 2
    failure = as_json(proc)["failure"]
    assert failure["kind"] == "unknown_playbook"
    assert failure["valid"] == ["cluster", "reset", "secret", "site", "slow"]
    assert "addons stage has no playbook yet" in failure["hint"]

    proc = m2mcloud("load", "-i", str(inventory), runs=runs, project=project)
    assert proc.returncode == 2
    assert "no playbook 'loadtest'" in proc.stderr and "m2mcloud devices run" in proc.stderr

    proc = m2mcloud("deploy", "-i", str(inventory), "-e", "novalue", runs=runs, project=project)
    assert proc.returncode == 2 and "expected KEY=VALUE" in proc.stderr

    proc = m2mcloud("deploy", "-i", "/nonexistent/hosts.yml", runs=runs, project=project)
    assert proc.returncode == 1
    assert "The inventory cannot be used" in proc.stderr
    assert "inventory /nonexistent/hosts.yml does not exist" in proc.stderr
    assert not runs.exists() or not any(runs.iterdir())  # nothing ran


def test_reset_asks_unless_yes_and_passes_the_confirmation(
    project: Path, runs: Path, inventory: Path
) -> None:
    # No terminal to ask on: refuse.
    proc = m2mcloud("reset", "-i", str(inventory), runs=runs, project=project)
    assert proc.returncode == 2 and "without --yes" in proc.stderr
    assert not runs.exists()
    # --yes: the playbook's assert sees reset_confirm=yes.
    proc = m2mcloud("reset", "--yes", "--json", "-i", str(inventory), runs=runs, project=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = as_json(proc)
    assert data["ok"] and data["extravars"] == {"reset_confirm": "yes"}


def test_status_without_a_cluster_says_so(project: Path, runs: Path, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    port = closed_port()
    kubeconfig.write_text(
        json.dumps(  # JSON is YAML: a kubeconfig pointing at a closed port
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": f"https://127.0.0.1:{port}",
                            "insecure-skip-tls-verify": True,
                        },
                    }
                ],
                "users": [{"name": "u", "user": {"token": "abc"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    proc = m2mcloud("status", "--kubeconfig", str(kubeconfig), runs=runs, project=project)
    assert proc.returncode == 1
    assert f"no cluster reachable at https://127.0.0.1:{port}" in proc.stderr
    assert "is the cluster up" in proc.stderr
    assert "Traceback" not in proc.stderr

    proc = m2mcloud(
        "status", "--json", "--kubeconfig", str(tmp_path / "none"), runs=runs, project=project
    )
    assert proc.returncode == 1
    data = as_json(proc)
    assert data["ok"] is False and "no kubeconfig at" in data["failure"]["message"]


def test_lab_status_lists_nodes_and_whether_they_run(
    project: Path, runs: Path, tmp_path: Path
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        inv = write_inventory(
            tmp_path / "generated.yml",
            {
                "m2mtest-h8-gone": {
                    "ansible_connection": "containers.podman.podman",
                    "ansible_host": "m2mtest-h8-no-such-container",
                },
                "m2mtest-h8-ssh-gone": {  # the container driver reaching its nodes over SSH
                    "m2mcloud_lab_driver": "container",
                    "ansible_host": "127.0.0.1",
                    "ansible_port": port,
                },
                "vm1": {"ansible_host": "127.0.0.1", "ansible_port": port},
                "vm2": {"ansible_host": "127.0.0.1", "ansible_port": closed_port()},
            },
        )
        proc = m2mcloud(
            "lab", "status", "--json", "--inventory", str(inv), runs=runs, project=project
        )
    assert proc.returncode == 1  # not every node runs
    nodes = {n["name"]: n for n in as_json(proc)["nodes"]}
    assert nodes["m2mtest-h8-gone"]["driver"] == "container"
    assert nodes["m2mtest-h8-gone"]["running"] is False
    # SSH answers, but no such container runs: not running.
    assert nodes["m2mtest-h8-ssh-gone"]["driver"] == "container"
    assert nodes["m2mtest-h8-ssh-gone"]["running"] is False
    assert nodes["vm1"]["running"] is True and nodes["vm1"]["state"] == "ssh answering"
    assert nodes["vm2"]["running"] is False and nodes["vm2"]["address"].startswith("127.0.0.1:")

    proc = m2mcloud(
        "lab", "status", "--inventory", str(tmp_path / "no.yml"), runs=runs, project=project
    )
    assert proc.returncode == 1 and "m2mcloud lab up" in proc.stderr


def test_the_older_subcommands_still_answer(project: Path, runs: Path) -> None:
    for args in (("cse", "serve", "--help"), ("devices", "run", "--help")):
        proc = m2mcloud(*args, runs=runs, project=project)
        assert proc.returncode == 0 and "usage: m2mcloud" in proc.stdout


def test_the_real_reset_playbook_asserts_the_variable_the_cli_passes() -> None:
    """The CLI's confirmation and playbooks/reset.yml's assert must name the same variable
    (they once did not: `m2mcloud reset --yes` was refused by the real playbook)."""
    from m2mcloud.deploy.cli import RESET_CONFIRM_VAR

    real = Path(__file__).resolve().parents[2] / "playbooks" / "reset.yml"
    assert f"{RESET_CONFIRM_VAR} | default('no')" in real.read_text()
