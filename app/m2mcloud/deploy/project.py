"""Where the project is (ansible.cfg + playbooks/), which playbook a name means, and the
default inventory and run directory."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

from m2mcloud.deploy.errors import ProjectNotFoundError, UnknownPlaybookError

PROJECT_ENV = "M2M_PROJECT_DIR"
RUNS_ENV = "M2M_RUNS_DIR"
# The lab's inventory, written by playbooks/lab.yml once its nodes exist.
LAB_GENERATED_INVENTORY = Path("inventory") / "lab" / "generated.yml"


def is_project(path: Path) -> bool:
    return (path / "playbooks").is_dir()


def find_project_dir(start: Path | str | None = None) -> Path:
    """The project: $M2M_PROJECT_DIR, else the first directory holding playbooks/ from `start`
    (default: the current directory) upwards, else the checkout this package is installed from
    (an editable install)."""
    env = os.environ.get(PROJECT_ENV)
    if env:
        path = Path(env).expanduser().resolve()
        if not is_project(path):
            raise ProjectNotFoundError(
                f"{PROJECT_ENV}={env} has no playbooks/ directory",
                f"point {PROJECT_ENV} (or --project-dir) at an m2mcloud checkout",
            )
        return path
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if is_project(candidate):
            return candidate
    # app/m2mcloud/deploy/project.py -> the checkout's root
    checkout = Path(__file__).resolve().parents[3]
    if is_project(checkout):
        return checkout
    raise ProjectNotFoundError(
        f"no m2mcloud project (a directory with playbooks/) in {here} or above",
        f"run from an m2mcloud checkout, or set {PROJECT_ENV} / --project-dir",
    )


def playbook_names(project_dir: Path) -> list[str]:
    """The names `run_playbook` accepts: every playbooks/<name>.yml (site included)."""
    names = {p.stem for p in (project_dir / "playbooks").glob("*.yml")}
    if (project_dir / "site.yml").is_file():
        names.add("site")
    return sorted(names)


def resolve_playbook(name: str, project_dir: Path) -> Path:
    """`site` is the project's top-level site.yml; any other name is playbooks/<name>.yml. A
    path to a .yml file (containing a slash) is taken as it is."""
    if "/" in name:
        path = Path(name).expanduser()
        path = path if path.is_absolute() else (Path.cwd() / path)
        if path.is_file():
            return path.resolve()
        raise UnknownPlaybookError(
            name, playbook_names(project_dir), f"no such file: {path}; or give a playbook name"
        )
    stem = name.removesuffix(".yml")
    if stem == "site" and (project_dir / "site.yml").is_file():
        return project_dir / "site.yml"
    path = project_dir / "playbooks" / f"{stem}.yml"
    if path.is_file():
        return path
    raise UnknownPlaybookError(
        name,
        playbook_names(project_dir),
        f"playbooks live in {project_dir / 'playbooks'}; a name is a file name without .yml",
    )


def default_inventory(project_dir: Path) -> Path:
    """ansible.cfg's `inventory` (the embedded default: the inventory/lab directory, whose
    generated.yml lists the nodes once `m2mcloud lab up` made them), else that directory."""
    cfg = project_dir / "ansible.cfg"
    if cfg.is_file():
        parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
        try:
            parser.read(cfg)
            value = parser.get("defaults", "inventory", fallback="").split(",")[0].strip()
        except configparser.Error:
            value = ""
        if value:
            return project_dir / value
    return project_dir / LAB_GENERATED_INVENTORY.parent


def default_runs_dir() -> Path:
    """Where each run's artifact directory goes: $M2M_RUNS_DIR, else
    $XDG_STATE_HOME/m2mcloud/runs (~/.local/state/m2mcloud/runs)."""
    env = os.environ.get(RUNS_ENV)
    if env:
        return Path(env).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "m2mcloud" / "runs"
