"""What a playbook run produced: per-host counts, the tasks that changed or failed, and where the
full log is. Plain frozen dataclasses; `to_dict()` is the `--json` form of the CLI."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The failure kinds, each with its own "what to check" hint (errors.hint_for).
FAILED_TASK = "failed_task"
UNREACHABLE = "unreachable"
INVENTORY = "inventory"
ERROR = "error"  # ansible-playbook stopped before or outside a task (syntax, missing role, ...)
CANCELED = "canceled"
TIMEOUT = "timeout"


@dataclass(frozen=True)
class HostStats:
    """One host's line of the PLAY RECAP."""

    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0

    @property
    def succeeded(self) -> bool:
        return self.failed == 0 and self.unreachable == 0


@dataclass(frozen=True)
class TaskResult:
    """One task on one host that changed something or failed."""

    host: str
    task: str
    play: str = ""
    action: str = ""
    path: str = ""  # playbook or role file:line of the task
    message: str = ""  # for failures: what the module said
    unreachable: bool = False
    ignored: bool = False  # failed, but ignore_errors: true


@dataclass(frozen=True)
class Failure:
    """Why a run failed, in a form an operator can act on."""

    kind: str  # FAILED_TASK, UNREACHABLE, INVENTORY, ERROR, CANCELED, TIMEOUT
    message: str
    hint: str
    host: str = ""
    task: str = ""
    path: str = ""


@dataclass(frozen=True)
class RunResult:
    playbook: str  # the name asked for (site, cluster, ...) or the path given
    playbook_path: str
    ident: str  # ansible-runner's run id, the name of the artifact directory
    status: str  # ansible-runner's: successful, failed, timeout, canceled
    rc: int | None
    duration: float  # seconds
    artifact_dir: str
    check: bool = False
    limit: str | None = None
    tags: tuple[str, ...] = ()
    hosts: dict[str, HostStats] = field(default_factory=dict)
    changed_tasks: tuple[TaskResult, ...] = ()
    failed_tasks: tuple[TaskResult, ...] = ()  # ignored failures included, flagged
    tasks_started: int = 0  # task starts (one per task per play), for progress estimates
    failure: Failure | None = None
    extravars: dict[str, Any] = field(default_factory=dict)  # secrets masked
    # What the playbook published with ansible.builtin.set_stats (e.g. a load test's report).
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0 and self.failure is None

    @property
    def stdout_path(self) -> str:
        """The full log (ansible-playbook's own output) of this run."""
        return str(Path(self.artifact_dir) / "stdout")

    @property
    def changed(self) -> int:
        return sum(s.changed for s in self.hosts.values())

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["ok"] = self.ok
        out["changed"] = self.changed
        out["stdout_path"] = self.stdout_path
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """The inverse of `to_dict` (reads the result file saved in the artifact directory)."""
        failure = data.get("failure")
        return cls(
            playbook=data["playbook"],
            playbook_path=data["playbook_path"],
            ident=data["ident"],
            status=data["status"],
            rc=data["rc"],
            duration=float(data["duration"]),
            artifact_dir=data["artifact_dir"],
            check=bool(data.get("check", False)),
            limit=data.get("limit"),
            tags=tuple(data.get("tags", ())),
            hosts={h: HostStats(**s) for h, s in data.get("hosts", {}).items()},
            changed_tasks=tuple(TaskResult(**t) for t in data.get("changed_tasks", ())),
            failed_tasks=tuple(TaskResult(**t) for t in data.get("failed_tasks", ())),
            tasks_started=int(data.get("tasks_started", 0)),
            failure=Failure(**failure) if failure else None,
            extravars=dict(data.get("extravars", {})),
            data=dict(data.get("data", {})),
        )
