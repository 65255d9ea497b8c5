"""The `m2mcloud devices` subcommands: `run` (the simulator) and `echo` (a stand-in CSE over
MQTT that acknowledges every request, to measure the simulator and broker alone)."""

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
