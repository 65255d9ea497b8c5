"""Keeping secrets out of logs and artifacts.

Three layers (docs/operator-guide.md, "Secrets"):
1. Extra variables never travel on the command line or through ansible-runner's `env/` files:
   they are written to a 0600 file in a private temporary directory, passed as `-e @file`, and the
   directory is removed when the run ends. A `Secret` value is masked everywhere we report it.
2. `no_log: true` in a playbook is Ansible's own guarantee: the module result is replaced by a
   censored message before any callback sees it, so neither the events nor the log carry it.
3. Defence in depth for a playbook that forgets no_log: every event is redacted (secret values
   replaced by a mask) before ansible-runner writes it or a caller sees it, and after the run every
   file of the artifact directory (the log, the command file with its environment, facts) is
   scrubbed the same way. Environment variables whose names say they hold a secret (PASSWORD,
   TOKEN, SECRET, ...) are redacted too: ansible-runner records the whole environment and a local
   host's facts include it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

MASK = "********"
# Shorter values would mask ordinary words in the log; such secrets rely on no_log alone.
MIN_REDACT_LENGTH = 4
_SECRET_ENV_NAME = re.compile(r"PASS|SECRET|TOKEN|CREDENTIAL|PRIVATE|API_?KEY|AUTH", re.IGNORECASE)
_NOT_A_SECRET = re.compile(r"(_FILE|_PATH|_DIR|_SOCK|_URL_FILE)$", re.IGNORECASE)


class Secret:
    """An extra variable's value that must not reach a log or an artifact:
    `run_playbook(..., extravars={"db_password": Secret(pw)})`. It is passed to Ansible only
    through a private 0600 file; reported values show a mask."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def reveal(self) -> Any:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", json.dumps(self._value, sort_keys=True, default=str)))


def reveal(extravars: Mapping[str, Any]) -> dict[str, Any]:
    """The variables as Ansible must see them (secrets unwrapped)."""
    return {k: _reveal(v) for k, v in extravars.items()}


def _reveal(value: Any) -> Any:
    if isinstance(value, Secret):
        return _reveal(value.reveal())
    if isinstance(value, Mapping):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_reveal(v) for v in value]
    return value


def masked(extravars: Mapping[str, Any]) -> dict[str, Any]:
    """The variables as we may report them (secrets replaced by the mask)."""
    return {k: _masked(v) for k, v in extravars.items()}


def _masked(value: Any) -> Any:
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, Mapping):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


def secret_values(extravars: Mapping[str, Any]) -> list[str]:
    """Every string inside a `Secret` (also nested), as it may appear in text."""
    found: list[str] = []

    def walk(value: Any, inside: bool) -> None:
        if isinstance(value, Secret):
            walk(value.reveal(), True)
        elif isinstance(value, Mapping):
            for v in value.values():
                walk(v, inside)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v, inside)
        elif inside and value is not None:
            found.append(value if isinstance(value, str) else json.dumps(value))

    walk(dict(extravars), False)
    return found


def secret_env_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names say they are secrets."""
    environ = os.environ if environ is None else environ
    return [
        value
        for name, value in environ.items()
        if _SECRET_ENV_NAME.search(name) and not _NOT_A_SECRET.search(name)
    ]


class Redactor:
    """Replaces known secret values by the mask, in text, nested event data and files."""

    def __init__(self, values: Iterable[str]) -> None:
        forms: set[str] = set()
        for value in values:
            if len(value) < MIN_REDACT_LENGTH:
                continue
            forms.add(value)
            # As it appears inside a JSON string (job events, the command file).
            forms.add(json.dumps(value)[1:-1])
            forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
        self._forms = sorted(forms, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(re.escape(f) for f in self._forms)) if self._forms else None
        )

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern else text

    def value(self, value: Any) -> Any:
        if not self._pattern:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value

    def event(self, event: dict[str, Any]) -> None:
        """Redact an ansible-runner event in place (before it is written to job_events/)."""
        if not self._pattern:
            return
        for key in list(event):
            event[key] = self.value(event[key])

    def scrub_tree(self, root: Path) -> list[Path]:
        """Rewrite every file under `root` that contains a secret; returns the files changed."""
        changed: list[Path] = []
        if not self._pattern or not root.is_dir():
            return changed
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.is_symlink():
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            text = data.decode("utf-8", errors="surrogateescape")
            clean = self.text(text)
            if clean != text:
                path.write_bytes(clean.encode("utf-8", errors="surrogateescape"))
                changed.append(path)
        return changed
