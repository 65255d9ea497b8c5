"""The errors of the deploy API, each with a short "what to check" for an operator."""

from __future__ import annotations

from m2mcloud.deploy.result import (
    CANCELED,
    ERROR,
    FAILED_TASK,
    INVENTORY,
    TIMEOUT,
    UNREACHABLE,
    Failure,
    RunResult,
)


class DeployError(Exception):
    """A playbook could not be run or did not succeed; `hint` says what to check."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ProjectNotFoundError(DeployError):
    """No m2mcloud project (ansible.cfg + playbooks/) where one was looked for."""


class UnknownPlaybookError(DeployError):
    """The playbook name does not exist in the project; `valid` lists the names that do."""

    def __init__(self, name: str, valid: list[str], hint: str = "") -> None:
        self.name = name
        self.valid = valid
        super().__init__(
            f"no playbook {name!r} in this project; valid names: {', '.join(valid) or '(none)'}",
            hint,
        )


class PlaybookFailed(DeployError):  # noqa: N818 -- the name the API promises (issue 8)
    """The run failed: `host`, `task` and `message` name the first failure; `result` holds the
    whole run (None when ansible-playbook was never started, e.g. a missing inventory file)."""

    def __init__(self, failure: Failure, result: RunResult | None = None) -> None:
        super().__init__(failure.message, failure.hint)
        self.failure = failure
        self.kind = failure.kind
        self.host = failure.host
        self.task = failure.task
        self.result = result

    @property
    def log_path(self) -> str:
        return self.result.stdout_path if self.result else ""

    def __str__(self) -> str:
        where = " ".join(
            part
            for part in (
                f"host {self.host}" if self.host else "",
                f"task {self.task!r}" if self.task else "",
            )
            if part
        )
        return f"{where}: {self.message}" if where else self.message


def hint_for(kind: str, *, host: str = "", inventory: str = "") -> str:
    """What an operator should check first, per failure kind."""
    inv = inventory or "<inventory>"
    if kind == UNREACHABLE:
        return (
            f"is {host or 'the host'} up and reachable by SSH from this machine? Check its "
            f"ansible_host, ansible_port, ansible_user and SSH key in {inv}; "
            f"try: ansible -i {inv} {host or 'all'} -m ansible.builtin.ping"
        )
    if kind == INVENTORY:
        return (
            f"the inventory {inv} could not be used: check that the file exists and is valid YAML "
            f"with the groups kube_control_plane, kube_workers, nfs_server; "
            f"try: ansible-inventory -i {inv} --graph"
        )
    if kind == FAILED_TASK:
        target = host or "the host"
        return (
            f"fix what the message names on {target} (or the inventory variables the task uses), "
            f"then run again: a second run only redoes what is missing; "
            f"--limit {host or 'HOST'} runs it on that host alone"
        )
    if kind == CANCELED:
        return "the run was interrupted; running it again continues where it stopped"
    if kind == TIMEOUT:
        return "the run took longer than its timeout; look at the last task in the log"
    if kind == ERROR:
        return (
            "ansible-playbook stopped outside a task: check the playbook's syntax, that its roles "
            "and collections are installed (make deps), and the log below"
        )
    return "see the log below"
