"""The `m2mcloud devices` subcommands: `run` (the simulator), `echo` (a stand-in CSE over MQTT
that acknowledges every request, to measure the simulator and broker alone), and for load tests
on a cluster `watch` (replica and HPA samples), `count` (what the CSE stored) and `plot`."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from m2mcloud.devices.config import ConfigError, DevicesConfig
    from m2mcloud.devices.runner import run

    try:
        config = DevicesConfig.from_args(args)
    except ConfigError as exc:
        print(f"m2mcloud devices run: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, config.log_level.upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return run(config)


def _echo(args: argparse.Namespace) -> int:
    from m2mcloud.devices.echo import serve_echo

    return serve_echo(
        host=args.mqtt_host, port=args.mqtt_port, cse_id=args.cse_id, processes=args.processes
    )


def _watch(args: argparse.Namespace) -> int:
    from m2mcloud.devices.platform import PlatformError, watch

    try:
        samples = watch(
            args.out,
            namespace=args.namespace,
            deployment=args.deployment,
            hpa=args.hpa,
            kubeconfig=args.kubeconfig,
            context=args.kube_context,
            interval=args.interval,
            stop_file=args.stop_file,
            max_seconds=args.max_seconds,
        )
    except PlatformError as exc:
        print(f"m2mcloud devices watch: {exc}", file=sys.stderr)
        return 3
    print(f"{samples} samples in {args.out}")
    return 0


def _count(args: argparse.Namespace) -> int:
    import json

    from m2mcloud.devices.platform import PlatformError, count_stored

    try:
        counts = count_stored(args.cse_url, args.run_id, cse_name=args.cse_name)
    except PlatformError as exc:
        print(f"m2mcloud devices count: {exc}", file=sys.stderr)
        return 3
    print(json.dumps(counts))
    return 0


def _plot(args: argparse.Namespace) -> int:
    import json

    from m2mcloud.devices.platform import PlatformError, merge_samples, read_samples
    from m2mcloud.devices.plot import plot_timeline
    from m2mcloud.devices.report import write_json

    try:
        with open(args.report) as handle:
            report = json.load(handle)
    except (OSError, ValueError) as exc:
        print(f"m2mcloud devices plot: cannot read the report: {exc}", file=sys.stderr)
        return 2
    if args.samples:
        try:
            report = merge_samples(report, read_samples(args.samples))
        except PlatformError as exc:
            print(f"m2mcloud devices plot: {exc}", file=sys.stderr)
            return 2
        if args.merged_report:
            write_json(report, args.merged_report)
    print(plot_timeline(report, args.out, title=args.title or None))
    return 0


def add_parser(sub: Any) -> None:
    """Register `devices run` and `devices echo` under the `m2mcloud` subcommands."""
    from m2mcloud.devices.config import DevicesConfig

    devices = sub.add_parser("devices", help="simulated device fleet and load generator")
    dsub = devices.add_subparsers(dest="devices_command", required=True, metavar="COMMAND")
    run = dsub.add_parser(
        "run",
        help="simulate devices sending readings to a CSE; every flag also reads M2M_DEVICES_*",
        description=(
            "Simulate N devices (own AE, container, connection each) publishing sensor readings "
            "to a oneM2M CSE over MQTT or HTTP at the rate of a traffic profile; print live "
            "progress, then a summary, a JSON report and a PNG timeline."
        ),
    )
    DevicesConfig.add_arguments(run)
    run.set_defaults(func=_run)
    echo = dsub.add_parser(
        "echo",
        help="a stand-in CSE on MQTT that answers every request with success (no storage)",
    )
    echo.add_argument("--mqtt-host", default="127.0.0.1")
    echo.add_argument("--mqtt-port", type=int, default=1883)
    echo.add_argument("--cse-id", default="id-in")
    echo.add_argument("--processes", type=int, default=1)
    echo.set_defaults(func=_echo)
    watch = dsub.add_parser(
        "watch",
        help="sample the CSE Deployment's replicas and its HPA into a JSON-lines file",
    )
    watch.add_argument("--out", required=True, help="JSON-lines file the samples are appended to")
    watch.add_argument("--namespace", default="m2m")
    watch.add_argument("--deployment", default="cse")
    watch.add_argument("--hpa", default="cse", help="HPA to read too ('' = none)")
    watch.add_argument("--kubeconfig", default="")
    watch.add_argument("--kube-context", default="")
    watch.add_argument("--interval", type=float, default=3.0, help="seconds between samples")
    watch.add_argument("--stop-file", default="", help="stop when this file exists")
    watch.add_argument("--max-seconds", type=float, default=3600.0)
    watch.set_defaults(func=_watch)
    count = dsub.add_parser(
        "count", help="the AEs and contentInstances a run's devices have in the CSE (HTTP)"
    )
    count.add_argument("--cse-url", required=True)
    count.add_argument("--run-id", required=True)
    count.add_argument("--cse-name", default="cse-in")
    count.set_defaults(func=_count)
    plot = dsub.add_parser(
        "plot", help="draw a run's timeline again, with replica samples taken elsewhere"
    )
    plot.add_argument("report", help="the run's JSON report")
    plot.add_argument("--samples", default="", help="JSON lines written by `devices watch`")
    plot.add_argument("--out", required=True, help="PNG to write")
    plot.add_argument("--merged-report", default="", help="also write the report with samples")
    plot.add_argument("--title", default="")
    plot.set_defaults(func=_plot)
