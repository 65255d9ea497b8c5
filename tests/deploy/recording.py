"""Records the runner events of real runs as the fixtures of the unit tests
(tests/deploy/fixtures/<scenario>.json). Regenerate after an Ansible upgrade with:

    .venv/bin/python -m tests.deploy.recording

test_run_playbook.py::test_recorded_fixture_matches_a_live_run checks that a live run still
gives what the stored fixture gives."""

from __future__ import annotations

import json
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from m2mcloud.deploy import DeployError, run_playbook
from tests.deploy.conftest import FIXTURES, PROJECT, local_host, unreachable_host, write_inventory

SYNTAX_ERROR_PLAYBOOK = """\
- name: Bad
  hosts: all
  gather_facts: false
  tasks:
    - name: Two actions in one task
      ansible.builtin.debug: {msg: x}
      ansible.builtin.command: "true"
"""

LOOP_PLAYBOOK = """\
- name: Loops and commands
  hosts: all
  gather_facts: false
  tasks:
    - name: List a missing directory, ignoring the error
      ansible.builtin.command: ls /nonexistent-m2mcloud-dir
      changed_when: false
      ignore_errors: true
    - name: List a missing directory
      ansible.builtin.command: ls /nonexistent-m2mcloud-dir
      changed_when: false
      when: deploy_test_command_fails | default(false) | bool
    - name: Check each item
      ansible.builtin.command: "test {{ item }} = 1"
      changed_when: false
      loop: [1, 2]
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _normalize(value: Any, replacements: dict[str, str]) -> Any:
    if isinstance(value, str):
        for old, new in replacements.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {k: _normalize(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize(v, replacements) for v in value]
    return value


def record(scenario: str, tmp: Path) -> list[dict[str, Any]]:
    """Run one scenario for real and return its events (paths made stable)."""
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "project_dir": PROJECT,
        "runs_dir": tmp / "runs",
        "on_event": events.append,
        "raise_on_failure": False,
        "handle_signals": False,
    }
    two = {"node1": local_host(), "node2": local_host()}
    if scenario == "ok_run":
        inv = write_inventory(tmp / "hosts.yml", two)
        run_playbook("site", inventory=inv, extravars={"deploy_test_dir": str(tmp)}, **kwargs)
    elif scenario == "failed_run":
        hosts = {**two, "node3": unreachable_host(closed_port())}
        inv = write_inventory(tmp / "hosts.yml", hosts)
        run_playbook("cluster", inventory=inv, **kwargs)
    elif scenario == "inventory_error":
        inv = tmp / "broken.yml"
        inv.write_text("all:\n  hosts:\n    node1: [\n")
        run_playbook("site", inventory=inv, **kwargs)
    elif scenario == "syntax_error":
        inv = write_inventory(tmp / "hosts.yml", two)
        playbook = tmp / "syntax.yml"
        playbook.write_text(SYNTAX_ERROR_PLAYBOOK)
        run_playbook(str(playbook), inventory=inv, **kwargs)
    elif scenario in ("loop_failure", "command_failure"):
        inv = write_inventory(tmp / "hosts.yml", {"node1": local_host()})
        playbook = tmp / "loop.yml"
        playbook.write_text(LOOP_PLAYBOOK)
        extravars = {"deploy_test_command_fails": scenario == "command_failure"}
        run_playbook(str(playbook), inventory=inv, extravars=extravars, **kwargs)
    else:
        raise ValueError(scenario)
    return _normalize(events, {str(tmp): "<tmp>", str(PROJECT): "<project>"})  # type: ignore[no-any-return]


SCENARIOS = (
    "ok_run",
    "failed_run",
    "inventory_error",
    "syntax_error",
    "loop_failure",
    "command_failure",
)


def load(scenario: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((FIXTURES / f"{scenario}.json").read_text())
    return data


def main(write: Callable[[str, list[dict[str, Any]]], None] | None = None) -> None:
    FIXTURES.mkdir(exist_ok=True)
    for scenario in SCENARIOS:
        with tempfile.TemporaryDirectory(prefix="m2mcloud-record-") as tmp:
            try:
                events = record(scenario, Path(tmp))
            except DeployError as exc:
                raise SystemExit(f"{scenario}: {exc}") from exc
        (FIXTURES / f"{scenario}.json").write_text(json.dumps(events, indent=1) + "\n")
        print(f"{scenario}: {len(events)} events")


if __name__ == "__main__":
    main()
