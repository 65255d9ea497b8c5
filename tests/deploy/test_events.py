"""Event handling and result mapping, fed with events recorded from real runs
(tests/deploy/fixtures, made by tests/deploy/recording.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from m2mcloud.deploy.console import previous_task_count
from m2mcloud.deploy.events import EventCollector, describe, task_message
from m2mcloud.deploy.result import (
    ERROR,
    FAILED_TASK,
    INVENTORY,
    UNREACHABLE,
    HostStats,
    RunResult,
)
from tests.deploy.recording import load


def collect(events: list[dict[str, Any]]) -> EventCollector:
    collector = EventCollector()
    for event in events:
        collector.handle(event)
    return collector


def recap(events: list[dict[str, Any]]) -> dict[str, Any]:
    return next(e["event_data"] for e in events if e["event"] == "playbook_on_stats")


def test_host_stats_come_from_the_play_recap() -> None:
    events = load("failed_run")
    stats = collect(events).host_stats()
    data = recap(events)
    assert set(stats) == {"node1", "node2", "node3"}
    for host, s in stats.items():
        assert s.ok == data["ok"].get(host, 0)
        assert s.changed == data["changed"].get(host, 0)
        assert s.failed == data["failures"].get(host, 0)
        assert s.unreachable == data["dark"].get(host, 0)
        assert s.skipped == data["skipped"].get(host, 0)
    assert stats["node2"].failed == 1 and stats["node3"].unreachable == 1
    assert stats["node1"].succeeded and not stats["node2"].succeeded


@pytest.mark.parametrize("scenario", ["ok_run", "failed_run", "loop_failure", "command_failure"])
def test_counts_from_events_equal_the_recap_when_it_never_came(scenario: str) -> None:
    """A run stopped before its PLAY RECAP (canceled, crashed) still gets per-host counts."""
    events = load(scenario)
    full = collect(events).host_stats()
    cut = collect([e for e in events if e["event"] != "playbook_on_stats"]).host_stats()
    assert cut == full


def test_changed_and_failed_tasks_of_a_failed_run() -> None:
    collector = collect(load("failed_run"))
    changed = {(t.host, t.task) for t in collector.changed}
    assert changed == {("node1", "Change something"), ("node2", "Change something")}
    assert all(t.action == "ansible.builtin.command" for t in collector.changed)
    failed = {(t.host, t.task, t.unreachable) for t in collector.failed}
    assert failed == {
        ("node3", "Change something", True),
        ("node2", "Check the disk is big enough", False),
    }
    disk = next(t for t in collector.failed if t.host == "node2")
    assert disk.message == "disk too small on node2: 3 GiB free, 20 GiB needed"
    assert disk.play == "Fail on one host"
    assert disk.path.endswith("playbooks/cluster.yml:15")
    assert collector.tasks_started == 4


def test_the_first_failure_names_host_task_and_what_to_check() -> None:
    failure = collect(load("failed_run")).failure("failed", 4, inventory="inv/hosts.yml")
    assert failure is not None
    assert failure.kind == UNREACHABLE  # node3 failed first, in the second task
    assert failure.host == "node3"
    assert failure.task == "Change something"
    assert "Connection refused" in failure.message
    assert "node3" in failure.hint and "ansible_port" in failure.hint
    assert "ansible -i inv/hosts.yml node3 -m ansible.builtin.ping" in failure.hint


def test_a_successful_run_has_no_failure_and_publishes_its_stats() -> None:
    collector = collect(load("ok_run"))
    assert collector.failure("successful", 0) is None
    assert collector.data == {"deploy_test_markers": "<tmp>"}
    assert collector.failed == []
    assert {(t.host, t.task) for t in collector.changed} == {
        ("node1", "Write the marker file"),
        ("node2", "Write the marker file"),
    }


def test_a_failure_without_a_task_is_still_reported() -> None:
    """Status failed but no failed task or error line: what ansible-runner said."""
    failure = collect(load("ok_run")).failure("failed", 250)
    assert failure is not None and failure.kind == ERROR
    assert "exit code 250" in failure.message


def test_inventory_error_names_the_file_and_the_parse_error() -> None:
    collector = collect(load("inventory_error"))
    assert collector.host_stats() == {}
    failure = collector.failure("failed", 1, inventory="<tmp>/broken.yml")
    assert failure is not None
    assert failure.kind == INVENTORY
    assert "Completely failed to parse inventory source <tmp>/broken.yml" in failure.message
    assert "YAML parsing failed" in failure.message
    assert "<tmp>/broken.yml:4:1" in failure.message
    assert "ansible-inventory -i <tmp>/broken.yml --graph" in failure.hint


def test_playbook_syntax_error_is_an_error_with_its_origin() -> None:
    failure = collect(load("syntax_error")).failure("failed", 4)
    assert failure is not None
    assert failure.kind == ERROR
    assert "conflicting action statements" in failure.message
    assert failure.path == "<tmp>/syntax.yml:5:7"


def test_loop_failure_names_the_failed_item_and_ignored_failures_do_not_count() -> None:
    collector = collect(load("loop_failure"))
    ignored = [t for t in collector.failed if t.ignored]
    assert [t.task for t in ignored] == ["List a missing directory, ignoring the error"]
    failure = collector.failure("failed", 2)
    assert failure is not None and failure.kind == FAILED_TASK
    assert failure.task == "Check each item"
    assert failure.message == "item 2: non-zero return code"
    assert collector.host_stats()["node1"].ignored == 1


def test_command_failure_message_carries_stderr() -> None:
    failure = collect(load("command_failure")).failure("failed", 2)
    assert failure is not None
    assert failure.task == "List a missing directory"
    assert failure.message.startswith("non-zero return code: ls: cannot access")


def test_task_message_fallbacks() -> None:
    assert task_message({}) == "the task failed without a message"
    assert task_message({"module_stderr": "Traceback\nImportError: x"}) == "ImportError: x"
    assert len(task_message({"msg": "x" * 5000})) == 600


def test_progress_lines_of_a_run() -> None:
    lines = [line for line in map(describe, load("failed_run")) if line is not None]
    assert lines[0] == ("play", "PLAY Fail on one host")
    assert ("task", "TASK Check the disk is big enough") in lines
    assert ("changed", "changed: node1") in lines
    assert ("skipped", "skipped: node1") in lines
    assert (
        "failed",
        "FAILED: node2: disk too small on node2: 3 GiB free, 20 GiB needed",
    ) in lines
    unreachable = [text for style, text in lines if style == "unreachable"]
    assert len(unreachable) == 1 and unreachable[0].startswith("UNREACHABLE: node3: ")


def test_progress_lines_of_output_outside_tasks() -> None:
    lines = [line for line in map(describe, load("inventory_error")) if line is not None]
    assert ("error", "Completely failed to parse inventory source <tmp>/broken.yml") in lines
    assert all(style in ("warning", "error") for style, _ in lines)


def test_run_result_round_trips_through_json() -> None:
    collector = collect(load("failed_run"))
    result = RunResult(
        playbook="cluster",
        playbook_path="/p/playbooks/cluster.yml",
        ident="20260101T000000-cluster-abcdef",
        status="failed",
        rc=4,
        duration=1.5,
        artifact_dir="/runs/20260101T000000-cluster-abcdef",
        limit="node1",
        tags=("a", "b"),
        hosts=collector.host_stats(),
        changed_tasks=tuple(collector.changed),
        failed_tasks=tuple(collector.failed),
        tasks_started=collector.tasks_started,
        failure=collector.failure("failed", 4),
        extravars={"x": 1},
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert data["ok"] is False
    assert data["stdout_path"] == "/runs/20260101T000000-cluster-abcdef/stdout"
    assert data["hosts"]["node2"] == {
        "ok": 2,
        "changed": 1,
        "failed": 1,
        "unreachable": 0,
        "skipped": 0,
        "rescued": 0,
        "ignored": 0,
    }
    assert RunResult.from_dict(data) == result
    assert result.changed == 2


def test_progress_bar_length_comes_from_the_last_matching_successful_run(tmp_path: Path) -> None:
    def save(ident: str, **fields: Any) -> None:
        (tmp_path / ident).mkdir()
        data = {"playbook": "site", "limit": None, "tags": [], "check": False, "ok": True}
        data.update(fields)
        (tmp_path / ident / "m2mcloud-result.json").write_text(json.dumps(data))

    save("20260101T000000-site-a", tasks_started=10)
    save("20260102T000000-site-b", tasks_started=12)
    save("20260103T000000-site-c", tasks_started=3, ok=False)  # failed: not a measure
    save("20260104T000000-site-d", tasks_started=5, limit="node1")
    assert previous_task_count(tmp_path, "site", limit=None, tags=(), check=False) == 12
    assert previous_task_count(tmp_path, "site", limit="node1", tags=(), check=False) == 5
    assert previous_task_count(tmp_path, "site", limit=None, tags=("x",), check=False) == 0
    assert previous_task_count(tmp_path / "none", "site", limit=None, tags=(), check=False) == 0


def test_host_stats_default_to_zero() -> None:
    assert HostStats() == HostStats(0, 0, 0, 0, 0, 0, 0)


def test_a_retry_is_a_progress_line() -> None:
    """The shape of a real runner_retry event (until/retries, second of three attempts)."""
    event = {
        "event": "runner_retry",
        "event_data": {"host": "node1", "task": "Try", "res": {"attempts": 2, "retries": 3}},
    }
    assert describe(event) == ("warning", "retrying: node1 (attempt 2 of 3)")


def test_a_no_log_result_that_changed_counts_as_changed() -> None:
    """Ansible censors a no_log result to a message without `changed` (shape of a real event);
    the printed line still says it changed."""
    event = {
        "event": "runner_on_ok",
        "stdout": "changed: [node1]",
        "event_data": {
            "host": "node1",
            "task": "Store the secret",
            "res": {"censored": "the output has been hidden due to the fact that 'no_log: true'"},
        },
    }
    collector = collect([event])
    assert [(t.host, t.task) for t in collector.changed] == [("node1", "Store the secret")]
    assert collector.host_stats()["node1"].changed == 1
    assert describe(event) == ("changed", "changed: node1")
    assert describe({**event, "stdout": "ok: [node1]"}) == ("ok", "ok: node1")
