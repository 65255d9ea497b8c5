"""Settings as frozen dataclasses: every field is one setting, read from a `--flag` (the field
name with dashes) or else a `<PREFIX><FIELD>` environment variable (upper case), else its
default. Flags and variables are derived from the fields, so they cannot drift apart.
Shared by the CSE (`M2M_*`) and the device simulator (`M2M_DEVICES_*`)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from typing import Any


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names the setting."""


def setting(default: Any, help: str, *, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with the help text (and allowed values) its flag shows."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_values(cls: type, prefix: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings of `cls` given in the environment, converted to their field types."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        name = prefix + f.name.upper()
        raw = env.get(name)
        if raw is not None and raw != "":
            values[f.name] = convert(f, raw, name)
    return values


def add_arguments(cls: type, parser: argparse.ArgumentParser, prefix: str) -> None:
    """One `--flag` per setting; unset flags fall back to the environment, then the default."""
    for f in dataclasses.fields(cls):
        help_text = f"{f.metadata['help']} (env {prefix}{f.name.upper()}, default {f.default!r})"
        if _kind(f) == "bool":
            parser.add_argument(
                flag(f.name),
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            parser.add_argument(
                flag(f.name),
                dest=f.name,
                default=None,
                choices=f.metadata.get("choices"),
                help=help_text,
            )


def args_values(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags, converted to their field types."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, f.name, None)
        if value is not None:
            out[f.name] = value if isinstance(value, bool) else convert(f, value, flag(f.name))
    return out


def check_choices(config: Any) -> None:
    for f in dataclasses.fields(config):
        choices = f.metadata.get("choices")
        value = getattr(config, f.name)
        if choices and value not in choices:
            raise ConfigError(f"{flag(f.name)}={value!r}: choose one of {', '.join(choices)}")


def _kind(f: dataclasses.Field[Any]) -> str:
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))


def convert(f: dataclasses.Field[Any], raw: str, source: str) -> Any:
    kind = _kind(f)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
    except ValueError:
        raise ConfigError(f"{source}={raw!r} is not a valid {kind}") from None
    return raw
