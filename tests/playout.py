"""Reading ansible-playbook's default (text) output: the recap counters and which tasks changed.

The e2e tests assert "a second run changes nothing"; when it does, the failure must name the
task and host, not just a counter (the add-node step once failed on `cp1 changed=1` with the
task cut from a 4,000-character tail)."""

from __future__ import annotations

import re

_TASK = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(.+?)\] \**$")
_CHANGED = re.compile(r"^changed: \[([^\]\s]+)(?: -> [^\]]+)?\](?: => \(item=(.*)\))?")


def recaps(output: str) -> dict[str, dict[str, int]]:
    """host -> counters of every PLAY RECAP in the output, summed (one run may hold several)."""
    totals: dict[str, dict[str, int]] = {}
    for block in output.split("PLAY RECAP")[1:]:
        for line in block.splitlines()[1:]:
            match = re.match(r"^(\S+)\s+:\s+(.*)$", line)
            if not match:
                if line.strip():
                    break
                continue
            counts = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
            host = totals.setdefault(match.group(1), {})
            for key, value in counts.items():
                host[key] = host.get(key, 0) + value
    return totals


def changed_total(output: str) -> int:
    """Sum of `changed=` over the hosts of the last PLAY RECAP."""
    tail = output.rsplit("PLAY RECAP", maxsplit=1)[-1]
    return sum(int(n) for n in re.findall(r"\bchanged=(\d+)", tail))


def changed_tasks(output: str) -> dict[str, list[str]]:
    """host -> the tasks (and loop items) reported `changed`, in order. A delegated task counts for
    the inventory host it ran for, as Ansible's recap does."""
    found: dict[str, list[str]] = {}
    task = "?"
    for line in output.splitlines():
        if heading := _TASK.match(line):
            task = heading.group(1)
        elif hit := _CHANGED.match(line):
            host, item = hit.groups()
            found.setdefault(host, []).append(f"{task} ({item})" if item else task)
    return found
