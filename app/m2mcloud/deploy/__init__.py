"""The deploy API: the project's playbooks through ansible-runner, as typed results.

    from m2mcloud.deploy import PlaybookFailed, Secret, run_playbook

    try:
        result = run_playbook("site", inventory="inventory/prod/hosts.yml",
                              extravars={"cse_db_password": Secret(pw)})
    except PlaybookFailed as exc:
        print(exc.host, exc.task, exc.message, exc.hint, exc.log_path)

See docs/operator-guide.md."""

from m2mcloud.deploy.errors import (
    DeployError,
    PlaybookFailed,
    ProjectNotFoundError,
    UnknownPlaybookError,
)
from m2mcloud.deploy.project import (
    default_inventory,
    default_runs_dir,
    find_project_dir,
    playbook_names,
    resolve_playbook,
)
from m2mcloud.deploy.result import Failure, HostStats, RunResult, TaskResult
from m2mcloud.deploy.runner import RESULT_FILE, run_playbook, run_playbook_async
from m2mcloud.deploy.secrets import Secret

__all__ = [
    "RESULT_FILE",
    "DeployError",
    "Failure",
    "HostStats",
    "PlaybookFailed",
    "ProjectNotFoundError",
    "RunResult",
    "Secret",
    "TaskResult",
    "UnknownPlaybookError",
    "default_inventory",
    "default_runs_dir",
    "find_project_dir",
    "playbook_names",
    "resolve_playbook",
    "run_playbook",
    "run_playbook_async",
]
