"""to_containerd_toml: render a dict as TOML for /etc/containerd/config.toml.

Config as data: the role keeps containerd's configuration as a YAML dict (defaults + the operator's
overrides, merged) and renders it with this filter. It covers the TOML containerd uses: nested
tables, strings, booleans, integers, floats and arrays of those. Keys that are not bare TOML keys
(e.g. "io.containerd.grpc.v1.cri") are quoted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: Any) -> str:
    text = str(key)
    return text if _BARE_KEY.match(text) else json.dumps(text)


def _value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v, where) for v in value) + "]"
    raise AnsibleFilterError(f"to_containerd_toml: cannot render {type(value).__name__} at {where}")


def _table(data: Mapping[str, Any], path: list[str], out: list[str]) -> None:
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in data.items() if isinstance(v, Mapping)]
    if path and (scalars or not tables):
        out.append("")
        out.append("[" + ".".join(_key(p) for p in path) + "]")
    for key, value in scalars:
        if value is None:
            continue  # None means "leave containerd's default": the key is not written
        out.append(f"{_key(key)} = {_value(value, '.'.join([*path, str(key)]))}")
    for key, value in tables:
        _table(value, [*path, str(key)], out)


def to_containerd_toml(data: Mapping[str, Any]) -> str:
    """Render a mapping as a TOML document (top-level scalars first, then tables, depth first)."""
    if not isinstance(data, Mapping):
        raise AnsibleFilterError("to_containerd_toml expects a mapping")
    out: list[str] = []
    _table(data, [], out)
    return "\n".join(out).lstrip("\n") + "\n"


class FilterModule:
    """to_containerd_toml filter."""

    def filters(self) -> dict[str, Any]:
        return {"to_containerd_toml": to_containerd_toml}
