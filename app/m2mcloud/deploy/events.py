"""Reading ansible-runner events: what a run did (per-host counts, changed and failed tasks, the
errors ansible-playbook printed outside any task) and why it failed, as an operator would say it.

An event is the dict ansible-runner hands to its `event_handler` and stores as
`artifacts/<ident>/job_events/<n>-<uuid>.json`: `event` (its type), `event_data` (play, task,
host, res, ...) and `stdout` (what ansible-playbook printed for it). The types used here:
playbook_on_play_start, playbook_on_task_start, runner_on_ok/failed/unreachable/skipped,
runner_item_on_failed, playbook_on_stats, and `verbose` (any other output line: warnings, errors
of inventory parsing or playbook syntax)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from m2mcloud.deploy.errors import hint_for
from m2mcloud.deploy.result import (
    CANCELED,
    ERROR,
    FAILED_TASK,
    INVENTORY,
    TIMEOUT,
    UNREACHABLE,
    Failure,
    HostStats,
    TaskResult,
)

# playbook_on_stats keys -> HostStats fields
_STATS_KEYS = {
    "ok": "ok",
    "changed": "changed",
    "failures": "failed",
    "dark": "unreachable",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}
_BLOCK_START = re.compile(r"^(\[(ERROR|WARNING|DEPRECATION WARNING)\]:|ERROR!)\s*")
_MAX_MESSAGE = 600


@dataclass
class OutputBlock:
    """A warning or error ansible-playbook printed outside any task, with its detail lines."""

    level: str  # "error" or "warning"
    text: str  # the first line without its [ERROR]: prefix
    lines: list[str] = field(default_factory=list)

    @property
    def cause(self) -> str:
        """The line after `<<< caused by >>>`, if Ansible gave one."""
        for i, line in enumerate(self.lines):
            if line.strip() == "<<< caused by >>>":
                return next((x.strip() for x in self.lines[i + 1 :] if x.strip()), "")
        return ""

    @property
    def origin(self) -> str:
        return next(
            (x[len("Origin:") :].strip() for x in self.lines if x.startswith("Origin:")), ""
        )


def _clean(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _shorten(text: str, limit: int = _MAX_MESSAGE) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def task_message(res: Mapping[str, Any]) -> str:
    """The most useful sentence of a failed module result: msg, plus the command's stderr, or
    the first failed loop item's message."""
    msg = str(res.get("msg") or "").strip()
    if not msg and res.get("censored"):  # no_log: true; Ansible hid the result
        return _shorten(f"(no_log) {res['censored']}")
    results = res.get("results")
    if isinstance(results, list):
        for item in results:
            if isinstance(item, Mapping) and item.get("failed"):
                label = item.get("_ansible_item_label", item.get("item", ""))
                return _shorten(f"item {label}: {task_message(item)}")
    detail = ""
    for key in ("stderr", "module_stderr", "stdout", "module_stdout"):
        value = str(res.get(key) or "").strip()
        if value:
            detail = value.splitlines()[-1]
            break
    if msg and detail and detail not in msg:
        return _shorten(f"{msg}: {detail}")
    return _shorten(msg or detail or "the task failed without a message")


def is_changed(event: Mapping[str, Any]) -> bool:
    """Whether a runner_on_ok changed something. A no_log result is censored down to a message
    without `changed`; the line Ansible printed for it still says so."""
    res: Mapping[str, Any] = (event.get("event_data") or {}).get("res") or {}
    if "changed" in res:
        return bool(res["changed"])
    return str(event.get("stdout") or "").lstrip().startswith("changed:")


class EventCollector:
    """Accumulates the events of one run; the run's result is read from it at the end."""

    def __init__(self) -> None:
        self.play = ""
        self.task = ""
        self.tasks_started = 0
        self.events = 0
        self.stats: dict[str, HostStats] | None = None  # from playbook_on_stats, when it came
        self.changed: list[TaskResult] = []
        self.failed: list[TaskResult] = []
        self.blocks: list[OutputBlock] = []
        self.data: dict[str, Any] = {}  # what the playbook published with set_stats
        self._counts: dict[str, dict[str, int]] = {}  # per-host counts, if stats never come

    # --- feeding
    def handle(self, event: Mapping[str, Any]) -> None:
        self.events += 1
        kind = str(event.get("event", ""))
        data: Mapping[str, Any] = event.get("event_data") or {}
        if kind == "playbook_on_play_start":
            self.play = str(data.get("play") or data.get("name") or "")
        elif kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            self.task = str(data.get("task") or "")
            self.tasks_started += 1
        elif kind == "runner_on_ok":
            changed = is_changed(event)
            self._count(data, "changed" if changed else "ok")
            if changed:
                self.changed.append(self._task(data))
        elif kind == "runner_on_failed":
            ignored = bool(data.get("ignore_errors"))
            self._count(data, "ignored" if ignored else "failed")
            self.failed.append(
                self._task(data, message=task_message(data.get("res") or {}), ignored=ignored)
            )
        elif kind == "runner_on_unreachable":
            self._count(data, "unreachable")
            res = data.get("res") or {}
            self.failed.append(self._task(data, message=task_message(res), unreachable=True))
        elif kind == "runner_on_skipped":
            self._count(data, "skipped")
        elif kind == "playbook_on_stats":
            self.stats = self._stats(data)
            self.data = dict(data.get("artifact_data") or {})
        elif kind in ("verbose", "error", "warning"):
            self._output(str(event.get("stdout") or ""))

    def _task(self, data: Mapping[str, Any], **extra: Any) -> TaskResult:
        return TaskResult(
            host=str(data.get("host") or ""),
            task=str(data.get("task") or self.task),
            play=str(data.get("play") or self.play),
            action=str(data.get("resolved_action") or data.get("task_action") or ""),
            path=str(data.get("task_path") or ""),
            **extra,
        )

    def _count(self, data: Mapping[str, Any], key: str) -> None:
        host = str(data.get("host") or "")
        counts = self._counts.setdefault(host, {})
        if key in ("changed", "ignored"):  # also ok in the PLAY RECAP
            counts["ok"] = counts.get("ok", 0) + 1
        counts[key] = counts.get(key, 0) + 1

    @staticmethod
    def _stats(data: Mapping[str, Any]) -> dict[str, HostStats]:
        hosts: set[str] = set()
        for key in (*_STATS_KEYS, "processed"):
            hosts.update((data.get(key) or {}).keys())
        return {
            host: HostStats(
                **{
                    field_: int((data.get(key) or {}).get(host, 0))
                    for key, field_ in _STATS_KEYS.items()
                }
            )
            for host in sorted(hosts)
        }

    def _output(self, stdout: str) -> None:
        for line in _clean(stdout).split("\n"):
            match = _BLOCK_START.match(line)
            if match:
                level = "warning" if "WARNING" in match.group(1) else "error"
                self.blocks.append(OutputBlock(level, line[match.end() :].strip()))
            elif self.blocks and len(self.blocks[-1].lines) < 40:
                self.blocks[-1].lines.append(line)

    # --- reading
    def host_stats(self) -> dict[str, HostStats]:
        """The PLAY RECAP; counted from the events when the run stopped before printing it."""
        if self.stats is not None:
            return self.stats
        return {
            host: HostStats(**{k: v for k, v in counts.items() if k in HostStats.__annotations__})
            for host, counts in sorted(self._counts.items())
        }

    @property
    def errors(self) -> list[OutputBlock]:
        return [b for b in self.blocks if b.level == "error"]

    def failure(self, status: str, rc: int | None, *, inventory: str = "") -> Failure | None:
        """Why the run failed (None when it succeeded): the first failed task or unreachable
        host, else an inventory or playbook error, else what ansible-runner reported."""
        if status == "successful" and rc == 0:
            return None
        first = next((t for t in self.failed if not t.ignored), None)
        if first is not None:
            kind = UNREACHABLE if first.unreachable else FAILED_TASK
            return Failure(
                kind=kind,
                message=first.message,
                hint=hint_for(kind, host=first.host, inventory=inventory),
                host=first.host,
                task=first.task,
                path=first.path,
            )
        if status == "canceled":
            return Failure(CANCELED, "the run was canceled", hint_for(CANCELED), task=self.task)
        if status == "timeout":
            return Failure(TIMEOUT, "the run timed out", hint_for(TIMEOUT), task=self.task)
        inventory_error = next((b for b in self.errors if "inventory" in b.text.lower()), None)
        if inventory_error is not None:
            # The parser's reason is in the first inventory warning ("caused by ...").
            reason = next(
                (
                    b
                    for b in self.blocks
                    if b.level == "warning" and "inventory" in b.text.lower() and b.cause
                ),
                None,
            )
            message = inventory_error.text
            if reason is not None:
                message += f": {reason.cause}"
                if reason.origin:
                    message += f" ({reason.origin})"
            return Failure(INVENTORY, _shorten(message), hint_for(INVENTORY, inventory=inventory))
        if self.errors:
            block = self.errors[0]
            message = block.text + (f" ({block.origin})" if block.origin else "")
            return Failure(ERROR, _shorten(message), hint_for(ERROR), path=block.origin)
        return Failure(
            ERROR,
            f"ansible-playbook ended with status {status}, exit code {rc}",
            hint_for(ERROR),
        )


def describe(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """A progress line for an event, as (style, text), or None for events not worth a line.
    Styles: play, task, ok, changed, failed, unreachable, skipped, warning, error."""
    kind = str(event.get("event", ""))
    data: Mapping[str, Any] = event.get("event_data") or {}
    host = str(data.get("host") or "")
    if kind == "playbook_on_play_start":
        return "play", f"PLAY {data.get('play') or data.get('name') or ''}"
    if kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
        role = f"{data['role']} : " if data.get("role") else ""
        return "task", f"TASK {role}{data.get('task') or ''}"
    res: Mapping[str, Any] = data.get("res") or {}
    if kind == "runner_on_ok":
        return ("changed", f"changed: {host}") if is_changed(event) else ("ok", f"ok: {host}")
    if kind == "runner_on_failed":
        if data.get("ignore_errors"):
            return "skipped", f"failed (ignored): {host}"
        return "failed", f"FAILED: {host}: {task_message(res)}"
    if kind == "runner_on_unreachable":
        return "unreachable", f"UNREACHABLE: {host}: {task_message(res)}"
    if kind == "runner_on_skipped":
        return "skipped", f"skipped: {host}"
    if kind == "runner_retry":  # until/retries: a long wait shows it is still alive
        return (
            "warning",
            f"retrying: {host} (attempt {res.get('attempts', '?')} of {res.get('retries', '?')})",
        )
    if kind == "playbook_on_no_hosts_matched":
        return "warning", "no hosts matched"
    if kind == "verbose":
        line = _clean(str(event.get("stdout") or "")).split("\n")[0]
        match = _BLOCK_START.match(line)
        if match:
            level = "warning" if "WARNING" in match.group(1) else "error"
            return level, line[match.end() :].strip()
    return None
