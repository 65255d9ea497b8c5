"""`run_playbook`: one playbook of the project through ansible-runner, as a typed result.

Every run gets its own artifact directory `<runs_dir>/<ident>/` (ansible-runner's layout:
`stdout` = the full log, `job_events/` = one JSON file per event, `command`, `rc`, `status`)
plus `m2mcloud-result.json` (the RunResult). Secrets: see m2mcloud.deploy.secrets."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from m2mcloud.deploy.errors import DeployError, PlaybookFailed, hint_for
from m2mcloud.deploy.events import EventCollector
from m2mcloud.deploy.project import default_runs_dir, find_project_dir, resolve_playbook
from m2mcloud.deploy.result import INVENTORY, Failure, RunResult
from m2mcloud.deploy.secrets import Redactor, masked, reveal, secret_env_values, secret_values

log = logging.getLogger("m2mcloud.deploy")

EventCallback = Callable[[dict[str, Any]], None]
AsyncEventCallback = Callable[[dict[str, Any]], Awaitable[None] | None]
RESULT_FILE = "m2mcloud-result.json"
KEEP_RUNS = 100  # artifact directories kept in the runs directory (oldest removed first)

Inventory = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def _inventory_sources(inventory: Inventory) -> list[str]:
    """Inventory paths (checked to exist: a missing one would be taken for a host name by
    Ansible) or one comma-separated host list ("host1,host2,")."""
    items = [inventory] if isinstance(inventory, str | os.PathLike) else list(inventory)
    if not items:
        raise PlaybookFailed(Failure(INVENTORY, "no inventory given", hint_for(INVENTORY)), None)
    sources: list[str] = []
    for item in items:
        text = os.fspath(item)
        if isinstance(item, str) and "," in text:
            sources.append(text)
            continue
        path = Path(text).expanduser()
        if not path.exists():
            raise PlaybookFailed(
                Failure(
                    INVENTORY,
                    f"inventory {path} does not exist",
                    hint_for(INVENTORY, inventory=str(path)),
                ),
                None,
            )
        sources.append(str(path.resolve()))
    return sources


def _ansible_bin_dir() -> str:
    """The directory of the ansible-playbook that goes with this Python (the venv), else PATH's."""
    here = Path(sys.executable).parent
    if (here / "ansible-playbook").is_file():
        return str(here)
    found = shutil.which("ansible-playbook")
    if found:
        return str(Path(found).parent)
    raise DeployError(
        "ansible-playbook is not installed",
        "install the Ansible side: make deps (or pip install -r requirements/ansible.txt)",
    )


def _private_file(path: Path, data: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(data)


# Every process of a run (ansible-playbook, its workers, local modules, ssh clients) carries
# this variable in its environment: how a cancel finds them all.
RUN_MARKER_ENV = "M2MCLOUD_RUN"
CANCEL_GRACE = 5.0  # seconds ansible-playbook gets to stop by itself after SIGINT


def run_processes(ident: str) -> list[int]:
    """The processes started for run `ident` that are still alive (Linux: /proc)."""
    needle = f"{RUN_MARKER_ENV}={ident}".encode()
    found: list[int] = []
    try:
        entries = list(os.scandir("/proc"))
    except OSError:
        return found
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def _signal_run(ident: str, signum: int) -> None:
    for pid in run_processes(ident):
        with contextlib.suppress(OSError):
            os.kill(pid, signum)


class _Canceller:
    """ansible-runner's cancel callback. ansible-runner alone SIGKILLs ansible-playbook's
    process group, but ansible-core's workers run in sessions of their own (os.setsid) and would
    live on, still running their task. So a cancel first sends SIGINT to every process of the
    run (ansible-playbook stops its workers and ends), and only after a grace period lets
    ansible-runner kill what is left; `sweep()` then kills any survivor."""

    def __init__(self, cancel: threading.Event, ident: str) -> None:
        self.cancel = cancel
        self.ident = ident
        self.asked_at: float | None = None

    def __call__(self) -> bool:
        if not self.cancel.is_set():
            return False
        now = time.monotonic()
        if self.asked_at is None:
            self.asked_at = now
            _signal_run(self.ident, signal.SIGINT)
            return False
        return now - self.asked_at > CANCEL_GRACE

    def sweep(self) -> None:
        _signal_run(self.ident, signal.SIGKILL)


@contextlib.contextmanager
def _cancel_on_signals(cancel: threading.Event, enabled: bool) -> Any:
    """SIGINT/SIGTERM stop the run cleanly (ansible-runner terminates ansible-playbook) instead
    of killing this process mid-write; the previous handlers come back afterwards."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        cancel.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_playbook(
    name: str,
    *,
    inventory: Inventory,
    extravars: Mapping[str, Any] | None = None,
    limit: str | None = None,
    tags: str | Sequence[str] | None = None,
    check: bool = False,
    on_event: EventCallback | None = None,
    skip_tags: str | Sequence[str] | None = None,
    project_dir: str | os.PathLike[str] | None = None,
    runs_dir: str | os.PathLike[str] | None = None,
    envvars: Mapping[str, str] | None = None,
    timeout: int | None = None,
    cancel: threading.Event | None = None,
    handle_signals: bool = True,
    raise_on_failure: bool = True,
) -> RunResult:
    """Run the project's playbook `name` (site, cluster, lab, ...; or a path to a .yml file).

    `extravars` values wrapped in `Secret` never reach a log or artifact. `on_event` receives
    each ansible-runner event (secrets already masked) as it happens, on the runner's thread.
    `cancel` stops the run when set. Raises `PlaybookFailed` (host, task, message, hint, and
    the result) unless `raise_on_failure` is False; `UnknownPlaybookError` for a name that is not a
    playbook of the project."""
    project = Path(project_dir).resolve() if project_dir else find_project_dir()
    playbook_path = resolve_playbook(name, project)
    sources = _inventory_sources(inventory)
    bin_dir = _ansible_bin_dir()
    runs = Path(runs_dir).expanduser() if runs_dir else default_runs_dir()
    runs.mkdir(parents=True, exist_ok=True, mode=0o700)
    ident = f"{time.strftime('%Y%m%dT%H%M%S')}-{playbook_path.stem}-{uuid.uuid4().hex[:6]}"
    artifact_dir = runs / ident

    extravars = dict(extravars or {})
    redactor = Redactor([*secret_values(extravars), *secret_env_values()])
    collector = EventCollector()
    cancel = cancel or threading.Event()
    callback_errors: list[BaseException] = []

    def event_handler(event: dict[str, Any]) -> bool:
        redactor.event(event)  # in place: ansible-runner writes the event after this returns
        collector.handle(event)
        if on_event is not None:
            try:
                on_event(event)
            except Exception as exc:  # a broken progress printer must not break the run
                if not callback_errors:
                    log.warning("on_event raised %r; further errors are not logged", exc)
                callback_errors.append(exc)
        return True

    env = {
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        # An inventory file Ansible cannot parse is an error, not "no hosts, nothing to do".
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        RUN_MARKER_ENV: ident,
    }
    if (project / "ansible.cfg").is_file():
        env["ANSIBLE_CONFIG"] = str(project / "ansible.cfg")
    env.update(envvars or {})

    tag_list = [tags] if isinstance(tags, str) else list(tags or [])
    skip_list = [skip_tags] if isinstance(skip_tags, str) else list(skip_tags or [])
    private = Path(tempfile.mkdtemp(prefix="m2mcloud-run-"))  # 0700, removed below
    started = time.monotonic()
    status, rc = "failed", None
    canceller = _Canceller(cancel, ident)
    try:
        # Runner settings (nothing secret): how often it looks at `cancel` while a task is
        # silent (its default, 5 s, makes Ctrl-C feel ignored).
        (private / "env").mkdir()
        (private / "env" / "settings").write_text(json.dumps({"pexpect_timeout": 1}))
        cmdline: list[str] = []
        if extravars:
            vars_file = private / "extravars.json"
            _private_file(vars_file, json.dumps(reveal(extravars), default=str))
            cmdline += ["-e", f"@{vars_file}"]
        if check:
            cmdline.append("--check")
        import ansible_runner

        with _cancel_on_signals(cancel, handle_signals):
            runner = ansible_runner.run(
                private_data_dir=str(private),
                project_dir=str(project),
                playbook=str(playbook_path),
                inventory=sources if len(sources) > 1 else sources[0],
                limit=limit,
                tags=",".join(tag_list) or None,
                skip_tags=",".join(skip_list) or None,
                cmdline=shlex.join(cmdline) or None,
                envvars=env,
                artifact_dir=str(runs),
                ident=ident,
                rotate_artifacts=KEEP_RUNS,
                quiet=True,
                suppress_env_files=True,
                event_handler=event_handler,
                cancel_callback=canceller,
                timeout=timeout,
            )
        status, rc = str(runner.status), runner.rc
        if cancel.is_set():  # ansible-playbook may have ended by itself on our SIGINT
            status = "canceled"
    except (DeployError, KeyboardInterrupt):
        raise
    except Exception as exc:  # ansible-runner's ConfigurationError, OSError, ...
        raise DeployError(
            f"ansible-runner could not run {playbook_path.name}: {exc}",
            f"see {artifact_dir} if it exists",
        ) from exc
    finally:
        canceller.sweep()
        shutil.rmtree(private, ignore_errors=True)
        redactor.scrub_tree(artifact_dir)

    failure = collector.failure(status, rc, inventory=",".join(sources))
    result = RunResult(
        playbook=name,
        playbook_path=str(playbook_path),
        ident=ident,
        status=status,
        rc=rc,
        duration=round(time.monotonic() - started, 3),
        artifact_dir=str(artifact_dir),
        check=check,
        limit=limit,
        tags=tuple(tag_list),
        hosts=collector.host_stats(),
        changed_tasks=tuple(collector.changed),
        failed_tasks=tuple(collector.failed),
        tasks_started=collector.tasks_started,
        failure=failure,
        extravars=masked(extravars),
        data=collector.data,
    )
    with contextlib.suppress(OSError):
        (artifact_dir / RESULT_FILE).write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    if failure is not None and raise_on_failure:
        raise PlaybookFailed(failure, result)
    return result


async def run_playbook_async(
    name: str,
    *,
    inventory: Inventory,
    extravars: Mapping[str, Any] | None = None,
    limit: str | None = None,
    tags: str | Sequence[str] | None = None,
    check: bool = False,
    on_event: AsyncEventCallback | None = None,
    **options: Any,
) -> RunResult:
    """`run_playbook` for asyncio programs: the run happens in a worker thread, `on_event`
    (a plain function or a coroutine function) is called on the event loop's thread, in order,
    and every event is delivered before this returns. Cancelling the awaiting task stops
    ansible-playbook (and waits for it to end) before the CancelledError propagates."""
    loop = asyncio.get_running_loop()
    cancel = threading.Event()
    pending: set[asyncio.Task[None]] = set()
    callback_failed: list[BaseException] = []

    async def _await(value: Awaitable[None]) -> None:
        await value

    def dispatch(event: dict[str, Any]) -> None:
        assert on_event is not None
        try:
            value = on_event(event)
        except Exception as exc:
            callback_failed.append(exc)
            return
        if inspect.isawaitable(value):
            task = loop.create_task(_await(value))
            pending.add(task)
            task.add_done_callback(pending.discard)

    def deliver(event: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(dispatch, event)

    def work() -> RunResult:
        return run_playbook(
            name,
            inventory=inventory,
            extravars=extravars,
            limit=limit,
            tags=tags,
            check=check,
            on_event=deliver if on_event is not None else None,
            cancel=cancel,
            handle_signals=False,
            **options,
        )

    future = loop.run_in_executor(None, work)
    try:
        result = await asyncio.shield(future)
    except asyncio.CancelledError:
        cancel.set()
        with contextlib.suppress(Exception):
            await future
        raise
    finally:
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    if callback_failed:
        log.warning("on_event raised %r (%d times)", callback_failed[0], len(callback_failed))
    return result
