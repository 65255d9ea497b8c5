"""What an operator sees while a playbook runs and after: play/task/host lines from the runner
events, a progress bar on a terminal (its length is the previous run's task count), a summary
table per host, and for a failure a short explanation before the log path."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from m2mcloud.deploy.errors import DeployError, PlaybookFailed, UnknownPlaybookError
from m2mcloud.deploy.events import describe
from m2mcloud.deploy.result import Failure, RunResult
from m2mcloud.deploy.runner import RESULT_FILE

_STYLES = {
    "play": "bold",
    "task": "cyan",
    "ok": "green",
    "changed": "yellow",
    "failed": "bold red",
    "unreachable": "bold red",
    "skipped": "dim",
    "warning": "magenta",
    "error": "bold red",
}
_INDENT = {"play": "", "task": "  "}


def previous_task_count(
    runs_dir: Path, playbook: str, *, limit: str | None, tags: tuple[str, ...], check: bool
) -> int:
    """Tasks started by the latest successful run with the same playbook, limit, tags and check
    mode: the length of this run's progress bar (0 when there is none)."""
    if not runs_dir.is_dir():
        return 0
    want = (playbook, limit, tags, check)
    for path in sorted(runs_dir.glob(f"*/{RESULT_FILE}"), reverse=True):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        got = (
            data.get("playbook"),
            data.get("limit"),
            tuple(data.get("tags", ())),
            bool(data.get("check")),
        )
        if data.get("ok") and got == want:
            return int(data.get("tasks_started") or 0)
    return 0


def duration_text(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


class Reporter:
    """Receives runner events (on the runner's thread) and prints them; `quiet` prints nothing
    until the summary (the --json mode prints no summary either)."""

    def __init__(
        self,
        console: Console,
        *,
        title: str,
        verbose: bool = False,
        quiet: bool = False,
        expected_tasks: int = 0,
    ) -> None:
        self.console = console
        self.title = title
        self.verbose = verbose
        self.quiet = quiet
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._bar: Any = None
        self.expected_tasks = expected_tasks

    def __enter__(self) -> Reporter:
        if not self.quiet and self.console.is_terminal:
            columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
            if self.expected_tasks:
                columns += [BarColumn(), MofNCompleteColumn()]
            columns.append(TimeElapsedColumn())
            self._progress = Progress(*columns, console=self.console, transient=True)
            self._progress.start()
            self._bar = self._progress.add_task(
                self.title, total=self.expected_tasks or None, completed=0
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def on_event(self, event: Mapping[str, Any]) -> None:
        if self.quiet:
            return
        line = describe(event)
        if line is None:
            return
        style, text = line
        if style == "skipped" and not self.verbose:
            return
        with self._lock:
            if style == "task" and self._progress is not None:
                bar = self._progress.tasks[0]
                total = bar.total
                if total is not None and bar.completed + 1 > total:  # longer than last time
                    total = bar.completed + 1
                self._progress.update(
                    self._bar,
                    advance=1,
                    total=total,
                    description=f"{escape(self.title)}: {escape(text.removeprefix('TASK '))}",
                )
            indent = _INDENT.get(style, "    ")
            if style == "play":
                self.console.print()
            self.console.print(
                f"{indent}[{_STYLES.get(style, '')}]{escape(text)}[/]",
                highlight=False,
                soft_wrap=True,
            )

    # --- the end of a run
    def summary(self, result: RunResult) -> None:
        if self.quiet:
            return
        table = Table(title=f"{result.playbook}: per-host results", title_justify="left")
        table.add_column("host")
        columns = ["ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored"]
        # rescued and ignored only when they happened: the table stays narrow.
        columns = [
            c
            for c in columns
            if c not in ("rescued", "ignored") or any(getattr(s, c) for s in result.hosts.values())
        ]
        styles = {"ok": "green", "changed": "yellow", "unreachable": "red", "failed": "red"}
        for name in columns:
            table.add_column(name, justify="right", style=styles.get(name, "dim"))
        for host, s in result.hosts.items():
            table.add_row(escape(host), *(str(getattr(s, c)) for c in columns))
        self.console.print()
        if result.hosts:
            self.console.print(table)
        else:
            self.console.print(
                "[magenta]no host took part in this run: the inventory has no host in the "
                "playbook's groups (the lab's nodes appear after: m2mcloud lab up)[/]"
            )
        verdict = "[bold green]succeeded[/]" if result.ok else "[bold red]FAILED[/]"
        mode = " (check mode: nothing was changed)" if result.check else ""
        for key, value in result.data.items():  # published by the playbook (set_stats)
            if isinstance(value, dict):  # e.g. loadtest.yml's summary, one figure a line
                self.console.print(f"{escape(key)}:", highlight=False)
                for k, v in value.items():
                    shown = v if isinstance(v, str) else json.dumps(v)
                    self.console.print(f"  {escape(str(k))}: {escape(shown)}", highlight=False)
            else:
                shown = value if isinstance(value, str) else json.dumps(value)
                self.console.print(f"{escape(key)}: {escape(shown)}", highlight=False)
        # A failure's explanation ends with the log path; a success ends here.
        log = f", log: {escape(result.stdout_path)}" if result.ok else ""
        self.console.print(
            f"{escape(result.playbook)} {verdict}{mode} in {duration_text(result.duration)}: "
            f"{result.changed} changed{log}",
            highlight=False,
        )


def explain(console: Console, error: DeployError) -> None:
    """The short readable explanation of a failure: what, where, what to check, the log."""
    if isinstance(error, PlaybookFailed):
        f = error.failure
        heading = {
            "failed_task": "A task failed",
            "unreachable": "A host is unreachable",
            "inventory": "The inventory cannot be used",
            "canceled": "The run was canceled",
            "timeout": "The run timed out",
        }.get(f.kind, "ansible-playbook stopped with an error")
        console.print(f"\n[bold red]{heading}[/]")
        if f.host:
            console.print(f"  host:    {escape(f.host)}", highlight=False)
        if f.task:
            console.print(f"  task:    {escape(f.task)}", highlight=False)
        if f.path:
            console.print(f"  at:      {escape(f.path)}", highlight=False)
        console.print(f"  message: {escape(f.message)}", highlight=False)
        console.print(f"  check:   {escape(f.hint)}", highlight=False)
        if error.result is not None:
            others = [t for t in error.result.failed_tasks if not t.ignored][1:]
            if others:
                console.print(f"  ({len(others)} more failure(s), see the log)")
            console.print(f"  full log: {escape(error.result.stdout_path)}", highlight=False)
        return
    console.print(f"[bold red]error:[/] {escape(error.message)}", highlight=False)
    if error.hint:
        console.print(f"  check:   {escape(error.hint)}", highlight=False)


def error_json(error: DeployError) -> dict[str, Any]:
    """The --json form of an error that has no run result (or of the failure of one that has)."""
    if isinstance(error, PlaybookFailed):
        if error.result is not None:
            return error.result.to_dict()
        return {"ok": False, "failure": _failure_dict(error.failure)}
    failure: dict[str, Any] = {"kind": "usage", "message": error.message, "hint": error.hint}
    if isinstance(error, UnknownPlaybookError):
        failure.update(kind="unknown_playbook", valid=error.valid)
    return {"ok": False, "failure": failure}


def _failure_dict(f: Failure) -> dict[str, Any]:
    return {
        "kind": f.kind,
        "message": f.message,
        "hint": f.hint,
        "host": f.host,
        "task": f.task,
        "path": f.path,
    }
