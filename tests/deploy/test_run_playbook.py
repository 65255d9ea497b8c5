"""run_playbook with the real ansible-runner and ansible-playbook, against this machine
(ansible_connection=local) and a closed SSH port, on the test project tests/deploy/project."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from m2mcloud.deploy import (
    RESULT_FILE,
    PlaybookFailed,
    RunResult,
    Secret,
    UnknownPlaybookError,
    run_playbook,
    run_playbook_async,
)
from m2mcloud.deploy.events import EventCollector
from m2mcloud.deploy.result import FAILED_TASK, INVENTORY, UNREACHABLE
from m2mcloud.deploy.runner import run_processes
from tests.deploy.conftest import local_host, needs_ansible, unreachable_host, write_inventory
from tests.deploy.recording import closed_port, load

pytestmark = [pytest.mark.integration, needs_ansible]


def test_changes_are_counted_check_mode_changes_nothing_and_a_second_run_changes_nothing(
    project: Path, runs: Path, work: Path, tmp_path: Path
) -> None:
    inv = write_inventory(tmp_path / "hosts.yml", {"node1": local_host()})
    marker = work / "node1.marker"
    common: dict[str, Any] = {
        "inventory": inv,
        "extravars": {"deploy_test_dir": str(work)},
        "project_dir": project,
        "runs_dir": runs,
    }
    events: list[dict[str, Any]] = []

    checked = run_playbook("site", check=True, **common)
    assert checked.ok and checked.check
    assert checked.hosts["node1"].changed == 1  # would change ...
    assert not marker.exists()  # ... but did not

    first = run_playbook("site", on_event=events.append, **common)
    assert first.ok and first.status == "successful" and first.rc == 0
    assert first.hosts["node1"].changed == 1 and first.hosts["node1"].failed == 0
    assert [(t.host, t.task) for t in first.changed_tasks] == [("node1", "Write the marker file")]
    assert marker.read_text() == "converged\n"
    assert first.tasks_started == 5 and first.duration > 0
    assert first.data == {"deploy_test_markers": str(work)}  # set_stats
    assert first.playbook_path == str(project / "playbooks" / "site.yml")
    # The events reached the caller as they happened, and ansible-runner stored them.
    kinds = [e["event"] for e in events]
    assert kinds[0] == "playbook_on_start" and kinds[-1] == "playbook_on_stats"
    assert kinds.count("playbook_on_play_start") == 2
    artifact = Path(first.artifact_dir)
    assert artifact.parent == runs and artifact.name == first.ident
    assert "PLAY RECAP" in Path(first.stdout_path).read_text()
    assert len(list((artifact / "job_events").glob("*.json"))) == len(events)
    saved = RunResult.from_dict(json.loads((artifact / RESULT_FILE).read_text()))
    assert saved == first

    second = run_playbook("site", **common)
    assert second.ok and second.changed == 0 and second.changed_tasks == ()
    assert second.artifact_dir != first.artifact_dir


def test_a_failed_task_raises_with_host_task_and_message(
    project: Path, runs: Path, inventory: Path
) -> None:
    with pytest.raises(PlaybookFailed) as err:
        run_playbook("cluster", inventory=inventory, project_dir=project, runs_dir=runs)
    exc = err.value
    assert exc.kind == FAILED_TASK
    assert exc.host == "node2"
    assert exc.task == "Check the disk is big enough"
    assert exc.message == "disk too small on node2: 3 GiB free, 20 GiB needed"
    assert "node2" in exc.hint
    assert str(exc) == (
        "host node2 task 'Check the disk is big enough': "
        "disk too small on node2: 3 GiB free, 20 GiB needed"
    )
    result = exc.result
    assert result is not None and not result.ok and result.status == "failed"
    assert result.rc == 2
    assert result.hosts["node1"].failed == 0 and result.hosts["node2"].failed == 1
    assert result.hosts["node1"].ok == 3 and result.hosts["node2"].ok == 2
    assert {t.host for t in result.changed_tasks} == {"node1", "node2"}
    assert "disk too small on node2" in Path(exc.log_path).read_text()


def test_an_unreachable_host_and_the_recorded_fixture_still_matches(
    project: Path, runs: Path, tmp_path: Path
) -> None:
    """The live run of the fixture's scenario gives what the stored fixture gives (guards the
    unit tests' fixtures against Ansible changing its events)."""
    hosts = {"node1": local_host(), "node2": local_host(), "node3": unreachable_host(closed_port())}
    inv = write_inventory(tmp_path / "hosts.yml", hosts)
    # raise_on_failure=False: the failed run comes back as a result that carries its failure.
    result = run_playbook(
        "cluster", inventory=inv, project_dir=project, runs_dir=runs, raise_on_failure=False
    )
    assert not result.ok and result.rc == 4
    failure = result.failure
    assert failure is not None
    assert failure.kind == UNREACHABLE and failure.host == "node3"
    assert failure.task == "Change something"
    assert "Connection refused" in failure.message
    assert "ansible_port" in failure.hint and str(inv) in failure.hint
    assert result.hosts["node3"].unreachable == 1

    recorded = EventCollector()
    for event in load("failed_run"):
        recorded.handle(event)
    assert recorded.host_stats() == result.hosts
    assert [(t.host, t.task, t.unreachable) for t in recorded.failed] == [
        (t.host, t.task, t.unreachable) for t in result.failed_tasks
    ]
    assert recorded.tasks_started == result.tasks_started


def test_an_inventory_that_cannot_be_parsed_or_does_not_exist(
    project: Path, runs: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("all:\n  hosts:\n    node1: [\n")
    with pytest.raises(PlaybookFailed) as err:
        run_playbook("site", inventory=broken, project_dir=project, runs_dir=runs)
    assert err.value.kind == INVENTORY
    assert f"Completely failed to parse inventory source {broken}" in err.value.message
    assert "YAML parsing failed" in err.value.message
    assert f"ansible-inventory -i {broken} --graph" in err.value.hint
    assert err.value.result is not None and err.value.result.hosts == {}

    missing = tmp_path / "nowhere.yml"
    with pytest.raises(PlaybookFailed) as err:
        run_playbook("site", inventory=missing, project_dir=project, runs_dir=runs)
    assert err.value.kind == INVENTORY and err.value.result is None
    assert err.value.message == f"inventory {missing} does not exist"


def test_an_unknown_playbook_lists_the_valid_names(project: Path, inventory: Path) -> None:
    with pytest.raises(UnknownPlaybookError) as err:
        run_playbook("addons", inventory=inventory, project_dir=project)
    assert err.value.valid == ["cluster", "reset", "secret", "site", "slow"]
    assert "valid names: cluster, reset, secret, site, slow" in str(err.value)


def test_a_secret_never_reaches_the_artifacts_or_the_events(
    project: Path, runs: Path, work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "Zq8-not-in-any-log-7Hd"
    env_secret = "env-db-pass-4Kx9"
    monkeypatch.setenv("M2M_TEST_DB_PASSWORD", env_secret)  # in the facts of a local host
    inv = write_inventory(tmp_path / "hosts.yml", {"node1": local_host()})
    events: list[dict[str, Any]] = []
    private_dirs = set(Path(tempfile.gettempdir()).glob("m2mcloud-run-*"))
    with pytest.raises(PlaybookFailed) as err:
        run_playbook(
            "secret",
            inventory=inv,
            extravars={
                "deploy_test_dir": str(work),
                "deploy_test_secret": Secret(secret),
                "deploy_test_fail": True,
            },
            on_event=events.append,
            project_dir=project,
            runs_dir=runs,
        )
    # The playbook really had the value ...
    assert (work / "node1.secret").read_text() == secret
    # ... and it failed on the no_log task, whose message Ansible hid.
    exc = err.value
    assert exc.task == "Fail with the secret in the message, hidden by no_log"
    assert "no_log" in exc.message and secret not in exc.message
    result = exc.result
    assert result is not None and result.extravars["deploy_test_secret"] == "********"
    # Nothing in the artifact directory holds either secret: not the log (where the careless
    # debug task printed it), not the events, not the command file with its environment.
    artifact = Path(result.artifact_dir)
    files = [p for p in artifact.rglob("*") if p.is_file()]
    assert {"stdout", "command", RESULT_FILE} <= {p.name for p in files}
    for path in files:
        data = path.read_bytes()
        assert secret.encode() not in data, path
        assert env_secret.encode() not in data, path
    assert "the secret is ********" in Path(result.stdout_path).read_text()
    command = json.loads((artifact / "command").read_text())
    assert command["env"]["M2M_TEST_DB_PASSWORD"] == "********"
    assert not any(secret in arg for arg in command["command"])
    assert any(e["event"] == "runner_on_ok" for e in events)
    for event in events:
        text = json.dumps(event)
        assert secret not in text and env_secret not in text
    # The 0600 variables file lived in a private directory that is gone.
    assert set(Path(tempfile.gettempdir()).glob("m2mcloud-run-*")) == private_dirs


def test_async_run_delivers_every_event_on_the_loop_before_returning(
    project: Path, runs: Path, work: Path, tmp_path: Path
) -> None:
    inv = write_inventory(tmp_path / "hosts.yml", {"node1": local_host()})
    seen: list[str] = []

    async def on_event(event: dict[str, Any]) -> None:
        asyncio.get_running_loop()  # runs on the loop's thread
        await asyncio.sleep(0)
        seen.append(event["event"])

    async def main() -> RunResult:
        ticks = 0

        async def ticker() -> None:  # the loop stays free while the playbook runs
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.05)

        tick = asyncio.create_task(ticker())
        result = await run_playbook_async(
            "site",
            inventory=inv,
            extravars={"deploy_test_dir": str(work)},
            on_event=on_event,
            project_dir=project,
            runs_dir=runs,
        )
        tick.cancel()
        assert ticks > 5
        return result

    result = asyncio.run(main())
    assert result.ok and result.changed == 1
    assert seen[0] == "playbook_on_start" and seen[-1] == "playbook_on_stats"


def test_cancelling_the_async_run_stops_ansible_playbook(
    project: Path, runs: Path, tmp_path: Path
) -> None:
    inv = write_inventory(tmp_path / "hosts.yml", {"node1": local_host()})

    async def main() -> float:
        started = asyncio.Event()

        def on_event(event: dict[str, Any]) -> None:
            if event["event"] == "runner_on_start":
                started.set()

        task = asyncio.create_task(
            run_playbook_async(
                "slow", inventory=inv, on_event=on_event, project_dir=project, runs_dir=runs
            )
        )
        await asyncio.wait_for(started.wait(), 60)
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - t0

    took = asyncio.run(main())
    assert took < 20  # the playbook waits 60 s
    (artifact,) = [p for p in runs.iterdir() if p.is_dir()]
    saved = json.loads((artifact / RESULT_FILE).read_text())
    assert saved["status"] == "canceled"
    assert saved["failure"]["kind"] == "canceled" and saved["failure"]["task"] == "Wait a minute"
    # Nothing of the run lives on: not ansible-playbook, not its workers (own sessions).
    assert run_processes(artifact.name) == []
    assert not [
        pid for pid in os.listdir("/proc") if pid.isdigit() and str(inv).encode() in _cmdline(pid)
    ]


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
