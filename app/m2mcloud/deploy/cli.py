"""The operator's subcommands of `m2mcloud`: lab up|down|status, bundle, deploy, status, load,
reset. Each playbook command prints play/task/host lines and a progress bar while it runs, then
a per-host summary; a failure ends with a short explanation (host, task, message, what to check)
and the path of the full log. `--json` prints the run's result as JSON instead (nothing else on
stdout). Exit codes: 0 success, 1 the run (or the cluster) failed, 2 a usage error (unknown
playbook or stage, bad -e), 130 canceled."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from m2mcloud.deploy.config import ClusterConfig, OperatorConfig

STAGES = ("cluster", "storage", "addons", "apps")
LAB_DRIVERS = ("container", "vm")
# playbooks/reset.yml refuses to run unless this extra variable says yes (kubespray's name).
RESET_CONFIRM_VAR = "reset_confirm"
SECRET_ENV_PREFIX = "M2M_SECRET_"

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELED = 0, 1, 2, 130


# --- helpers
def _console() -> Any:
    from rich.console import Console

    # soft_wrap: a log path or message is never broken over two lines (copy-paste).
    return Console(stderr=True, highlight=False, soft_wrap=True)


def parse_extravars(items: list[str]) -> dict[str, Any]:
    """`-e key=value` (a string, as ansible-playbook takes it), `-e @file.yml`, `-e '{json}'`."""
    out: dict[str, Any] = {}
    for item in items:
        if item.startswith("@"):
            path = Path(item[1:]).expanduser()
            try:
                loaded = yaml.safe_load(path.read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise ValueError(f"-e {item}: cannot read {path}: {exc}") from None
            if not isinstance(loaded, dict):
                raise ValueError(f"-e {item}: {path} must hold a mapping of variables")
            out.update(loaded)
        elif item.lstrip().startswith("{"):
            try:
                loaded = json.loads(item)
            except ValueError as exc:
                raise ValueError(f"-e {item!r}: not valid JSON: {exc}") from None
            if not isinstance(loaded, dict):
                raise ValueError(f"-e {item!r}: must be a JSON object")
            out.update(loaded)
        elif "=" in item:
            key, value = item.split("=", 1)
            if not key.strip():
                raise ValueError(f"-e {item!r}: empty variable name")
            out[key.strip()] = value
        else:
            raise ValueError(f"-e {item!r}: expected KEY=VALUE, @FILE or a JSON object")
    return out


def secret_extravars(names: list[str]) -> dict[str, Any]:
    """`--secret NAME`: the value from $M2M_SECRET_<NAME>, else asked on the terminal."""
    from m2mcloud.deploy.secrets import Secret

    out: dict[str, Any] = {}
    for name in names:
        env = SECRET_ENV_PREFIX + name.upper()
        value = os.environ.get(env)
        if value is None:
            if not sys.stdin.isatty():
                raise ValueError(f"--secret {name}: set {env} (no terminal to ask on)")
            value = getpass.getpass(f"{name}: ")
        out[name] = Secret(value)
    return out


def _project(config: OperatorConfig) -> Path:
    from m2mcloud.deploy.project import find_project_dir

    return Path(config.project_dir).resolve() if config.project_dir else find_project_dir()


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=1, default=str) + "\n")
    sys.stdout.flush()


def run_command(
    args: argparse.Namespace,
    playbook: str,
    *,
    extravars: dict[str, Any] | None = None,
    inventory: str | None = None,
    title: str = "",
    unknown_hint: str = "",
) -> int:
    """Run one playbook for a subcommand: progress, summary or JSON, exit code."""
    from m2mcloud.deploy.console import Reporter, error_json, explain, previous_task_count
    from m2mcloud.deploy.errors import DeployError, PlaybookFailed, UnknownPlaybookError
    from m2mcloud.deploy.project import default_inventory, default_runs_dir, resolve_playbook
    from m2mcloud.deploy.runner import run_playbook

    console = _console()
    config = OperatorConfig.from_args(args)
    reporter: Reporter | None = None
    try:
        project = _project(config)
        try:
            resolve_playbook(playbook, project)
        except UnknownPlaybookError as exc:
            if unknown_hint:
                exc.hint = unknown_hint
            raise
        variables = {
            **parse_extravars(args.extra_vars or []),
            **secret_extravars(args.secret or []),
            **(extravars or {}),
        }
        inv = config.inventory or inventory or str(default_inventory(project))
        runs = Path(config.runs_dir).expanduser() if config.runs_dir else default_runs_dir()
        tags = tuple(t for t in (args.tags or "").split(",") if t)
        expected = previous_task_count(
            runs, playbook, limit=args.limit, tags=tags, check=args.check
        )
        reporter = Reporter(
            console,
            title=title or playbook,
            verbose=args.verbose,
            quiet=args.json,
            expected_tasks=expected,
        )
        if not args.json:
            console.print(
                f"[bold]{playbook}[/] on {inv}"
                + (f" (limit {args.limit})" if args.limit else "")
                + (" [yellow](check mode)[/]" if args.check else ""),
                highlight=False,
            )
        with reporter:
            result = run_playbook(
                playbook,
                inventory=inv,
                extravars=variables,
                limit=args.limit,
                tags=list(tags) or None,
                skip_tags=args.skip_tags or None,
                check=args.check,
                on_event=reporter.on_event,
                project_dir=project,
                runs_dir=runs,
            )
    except PlaybookFailed as exc:
        if args.json:
            _print_json(error_json(exc))
        else:
            if exc.result is not None and reporter is not None:
                reporter.summary(exc.result)
            explain(console, exc)
        return EXIT_CANCELED if exc.kind == "canceled" else EXIT_FAILED
    except (UnknownPlaybookError, ValueError) as exc:
        error = exc if isinstance(exc, DeployError) else DeployError(str(exc))
        if args.json:
            _print_json(error_json(error))
        else:
            explain(console, error)
        return EXIT_USAGE
    except DeployError as exc:
        if args.json:
            _print_json(error_json(exc))
        else:
            explain(console, exc)
        return EXIT_FAILED
    if args.json:
        _print_json(result.to_dict())
    else:
        reporter.summary(result)
    return EXIT_OK


# --- subcommands
def _lab_up(args: argparse.Namespace) -> int:
    return _lab(args, "present")


def _lab_down(args: argparse.Namespace) -> int:
    return _lab(args, "absent")


def _lab(args: argparse.Namespace, state: str) -> int:
    from m2mcloud.deploy.project import LAB_GENERATED_INVENTORY

    config = OperatorConfig.from_args(args)
    inventory = None
    if not config.inventory:
        # lab.yml creates the nodes from this machine: the embedded inventory, never the
        # generated one it is about to (re)write.
        try:
            project = _project(config)
        except Exception:
            project = None
        if project is not None:
            hosts = project / LAB_GENERATED_INVENTORY.parent / "hosts.yml"
            inventory = str(hosts) if hosts.is_file() else None
    return run_command(
        args,
        "lab",
        extravars={"lab_driver": args.driver, "state": state},
        inventory=inventory,
        title=f"lab {'up' if state == 'present' else 'down'}",
        unknown_hint="playbooks/lab.yml (the local test nodes) is not in this checkout yet",
    )


def _lab_status(args: argparse.Namespace) -> int:
    from rich.table import Table

    from m2mcloud.deploy.console import explain
    from m2mcloud.deploy.errors import DeployError
    from m2mcloud.deploy.lab import lab_nodes
    from m2mcloud.deploy.project import LAB_GENERATED_INVENTORY

    console = _console()
    config = OperatorConfig.from_args(args)
    try:
        project = _project(config)
        generated = project / LAB_GENERATED_INVENTORY
        inventory = Path(config.inventory) if config.inventory else generated
        nodes = lab_nodes(inventory)
    except DeployError as exc:
        if args.json:
            _print_json({"ok": False, "failure": {"message": exc.message, "hint": exc.hint}})
        else:
            explain(console, exc)
        return EXIT_FAILED
    running = all(n.running for n in nodes) and bool(nodes)
    if args.json:
        _print_json(
            {"ok": running, "inventory": str(inventory), "nodes": [n.to_dict() for n in nodes]}
        )
        return EXIT_OK if running else EXIT_FAILED
    table = Table(title=f"lab nodes ({inventory})", title_justify="left")
    for col in ("node", "groups", "driver", "address", "state"):
        table.add_column(col)
    for n in nodes:
        style = "green" if n.running else "red"
        table.add_row(n.name, ",".join(n.groups), n.driver, n.address, f"[{style}]{n.state}[/]")
    console.print(table)
    if not nodes:
        console.print("[magenta]the inventory lists no nodes[/]")
    elif not running:
        down = [n.name for n in nodes if not n.running]
        console.print(f"[red]not running:[/] {', '.join(down)} (m2mcloud lab up starts them)")
    return EXIT_OK if running else EXIT_FAILED


def _bundle(args: argparse.Namespace) -> int:
    return run_command(args, "bundle", title="offline bundle")


def _deploy(args: argparse.Namespace) -> int:
    if args.stage:
        return run_command(
            args,
            args.stage,
            title=f"deploy {args.stage}",
            unknown_hint=(
                f"the {args.stage} stage has no playbook yet (playbooks/{args.stage}.yml); "
                f"run the whole platform with: m2mcloud deploy"
            ),
        )
    return run_command(args, "site", title="deploy")


def _load(args: argparse.Namespace) -> int:
    return run_command(
        args,
        "loadtest",
        title="load test",
        unknown_hint=(
            "playbooks/loadtest.yml (the device flood on the cluster) is not written yet; "
            "meanwhile run the simulator directly: m2mcloud devices run --help"
        ),
    )


def _reset(args: argparse.Namespace) -> int:
    from m2mcloud.deploy.console import error_json, explain
    from m2mcloud.deploy.errors import DeployError, UnknownPlaybookError
    from m2mcloud.deploy.project import default_inventory, resolve_playbook

    console = _console()
    config = OperatorConfig.from_args(args)
    try:
        project = _project(config)
        resolve_playbook("reset", project)
    except UnknownPlaybookError as exc:
        exc.hint = "playbooks/reset.yml is not in this checkout yet"
        if args.json:
            _print_json(error_json(exc))
        else:
            explain(console, exc)
        return EXIT_USAGE
    except DeployError as exc:
        explain(console, exc)
        return EXIT_FAILED
    inventory = config.inventory or str(default_inventory(project))
    if not args.yes:
        where = f"{inventory}" + (f" (limit {args.limit})" if args.limit else "")
        if not sys.stdin.isatty():
            console.print(
                f"[red]refusing to reset the nodes of {where} without --yes[/] "
                "(no terminal to ask on)"
            )
            return EXIT_USAGE
        console.print(
            f"[bold red]This removes Kubernetes and the platform's data from every node of "
            f"{where}.[/]"
        )
        answer = input("Type 'yes' to continue: ").strip().lower()
        if answer != "yes":
            console.print("not reset")
            return EXIT_USAGE
    return run_command(
        args, "reset", extravars={RESET_CONFIRM_VAR: "yes"}, title="reset", inventory=inventory
    )


def _status(args: argparse.Namespace) -> int:
    from rich.table import Table

    from m2mcloud.deploy.cluster import cluster_status, find_kubeconfig
    from m2mcloud.deploy.console import explain
    from m2mcloud.deploy.errors import DeployError
    from m2mcloud.deploy.project import default_inventory

    console = _console()
    config = OperatorConfig.from_args(args)
    cluster = ClusterConfig.from_args(args)
    inventory = config.inventory
    if not inventory:
        try:
            inventory = str(default_inventory(_project(config)))
        except DeployError:
            inventory = ""
    kubeconfig = find_kubeconfig(cluster.kubeconfig, inventory)
    try:
        status = cluster_status(
            kubeconfig=kubeconfig, context=cluster.kube_context, namespace=cluster.namespace
        )
    except DeployError as exc:
        if args.json:
            _print_json(
                {
                    "ok": False,
                    "kubeconfig": kubeconfig,
                    "failure": {"message": exc.message, "hint": exc.hint},
                }
            )
        else:
            explain(console, exc)
        return EXIT_FAILED
    if args.json:
        _print_json({"ok": True, **status.to_dict()})
        return EXIT_OK
    console.print(f"cluster at {status.server} (kubeconfig {status.kubeconfig})")
    nodes = Table(title="nodes", title_justify="left")
    for col in ("node", "ready", "roles", "version", "address"):
        nodes.add_column(col)
    for n in status.nodes:
        ready = "[green]Ready[/]" if n.ready else "[red]NotReady[/]"
        nodes.add_row(n.name, ready, ",".join(n.roles), n.version, n.address)
    console.print(nodes if status.nodes else "nodes: none")
    deps = Table(title="deployments (replicas)", title_justify="left")
    for col in ("namespace", "deployment", "ready/desired", "available"):
        deps.add_column(col)
    for d in status.deployments:
        style = "green" if d.ready >= d.desired else "yellow"
        deps.add_row(d.namespace, d.name, f"[{style}]{d.ready}/{d.desired}[/]", str(d.available))
    console.print(deps if status.deployments else f"{deps.title}: none")
    hpas = Table(title="horizontal pod autoscalers", title_justify="left")
    for col in ("namespace", "hpa", "target", "min-max", "replicas (now -> desired)", "metrics"):
        hpas.add_column(col)
    for h in status.hpas:
        hpas.add_row(
            h.namespace,
            h.name,
            h.target,
            f"{h.min_replicas}-{h.max_replicas}",
            f"{h.current_replicas} -> {h.desired_replicas}",
            ", ".join(h.metrics),
        )
    console.print(hpas if status.hpas else f"{hpas.title}: none")
    phases = ", ".join(f"{k} {v}" for k, v in sorted(status.pod_phases.items())) or "none"
    console.print(f"pods: {phases}")
    for p in status.pods:
        if not p.ready and p.phase != "Succeeded":
            console.print(f"  [yellow]not ready:[/] {p.namespace}/{p.name} ({p.phase}) on {p.node}")
    return EXIT_OK


# --- parser
def _common(parser: argparse.ArgumentParser, *, playbook: bool = True) -> None:
    OperatorConfig.add_arguments(parser)
    parser.add_argument("-i", dest="inventory", default=None, help="short for --inventory")
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON on stdout, nothing else"
    )
    if not playbook:
        return
    parser.add_argument(
        "-e",
        "--extra-vars",
        action="append",
        metavar="VARS",
        help="extra variable: KEY=VALUE, @FILE (YAML/JSON) or a JSON object; repeatable",
    )
    parser.add_argument(
        "--secret",
        action="append",
        metavar="NAME",
        help=f"an extra variable kept out of every log: the value comes from "
        f"${SECRET_ENV_PREFIX}<NAME> or is asked for; repeatable",
    )
    parser.add_argument("-l", "--limit", help="only these hosts (an Ansible host pattern)")
    parser.add_argument("-t", "--tags", help="only tasks with these tags (comma-separated)")
    parser.add_argument("--skip-tags", help="skip tasks with these tags (comma-separated)")
    parser.add_argument(
        "-C", "--check", action="store_true", help="check mode: report what would change"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also print skipped hosts per task"
    )


def add_parsers(sub: Any) -> None:
    """Register the operator subcommands under the `m2mcloud` command."""
    lab = sub.add_parser("lab", help="the local test nodes (playbooks/lab.yml)")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True, metavar="COMMAND")
    for name, func, help_text in (
        ("up", _lab_up, "create and start the lab's nodes (state=present)"),
        ("down", _lab_down, "stop and remove the lab's nodes (state=absent)"),
    ):
        p = lab_sub.add_parser(name, help=help_text)
        p.add_argument(
            "--driver",
            choices=LAB_DRIVERS,
            default=os.environ.get("M2M_LAB_DRIVER", "container"),
            help="podman system containers or qemu VMs (env M2M_LAB_DRIVER, default container)",
        )
        _common(p)
        p.set_defaults(func=func)
    p = lab_sub.add_parser(
        "status", help="the nodes of the lab's generated inventory and whether they run"
    )
    _common(p, playbook=False)
    p.set_defaults(func=_lab_status)

    p = sub.add_parser("bundle", help="build the offline bundle (playbooks/bundle.yml)")
    _common(p)
    p.set_defaults(func=_bundle)

    p = sub.add_parser(
        "deploy", help="build the platform: site.yml, or one stage's playbook with --stage"
    )
    p.add_argument("--stage", choices=STAGES, help="run only this stage's playbook")
    _common(p)
    p.set_defaults(func=_deploy)

    p = sub.add_parser(
        "status", help="the cluster: nodes, deployments (replicas), HPAs, pods (kubernetes API)"
    )
    _common(p, playbook=False)
    ClusterConfig.add_arguments(p)
    p.set_defaults(func=_status)

    p = sub.add_parser("load", help="flood the platform with devices (playbooks/loadtest.yml)")
    _common(p)
    p.set_defaults(func=_load)

    p = sub.add_parser("reset", help="remove Kubernetes from the nodes (playbooks/reset.yml)")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    _common(p)
    p.set_defaults(func=_reset)
