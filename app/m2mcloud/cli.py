"""The `m2mcloud` command. Subcommands are added as the platform grows; each prints for humans
(and exits non-zero on failure)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from m2mcloud import __version__


def _cse_serve(args: argparse.Namespace) -> int:
    from m2mcloud.cse.config import ConfigError, CSEConfig
    from m2mcloud.cse.server import serve

    try:
        config = CSEConfig.from_args(args)
    except ConfigError as exc:
        print(f"m2mcloud cse serve: {exc}", file=sys.stderr)
        return 2
    return serve(config)


def build_parser() -> argparse.ArgumentParser:
    from m2mcloud.cse.config import CSEConfig
    from m2mcloud.deploy.cli import add_parsers as add_operator_parsers
    from m2mcloud.devices.cli import add_parser as add_devices_parser

    parser = argparse.ArgumentParser(prog="m2mcloud", description=__doc__)
    parser.add_argument("--version", action="version", version=f"m2mcloud {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cse = sub.add_parser("cse", help="the oneM2M CSE")
    cse_sub = cse.add_subparsers(dest="cse_command", required=True, metavar="COMMAND")
    serve = cse_sub.add_parser(
        "serve", help="run the CSE (HTTP binding); every flag also reads an M2M_* variable"
    )
    CSEConfig.add_arguments(serve)
    serve.set_defaults(func=_cse_serve)
    add_devices_parser(sub)
    add_operator_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
