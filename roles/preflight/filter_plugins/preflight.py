"""Filters for the preflight role: network arithmetic and /proc parsing, stdlib only.

They live with the role so the checks need no extra Python package on the controller
(ansible.utils.ipaddr would need netaddr).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from ansible.errors import AnsibleFilterError

# A listening TCP socket in /proc/net/tcp{,6}: "  0: 00000000:1A0B 00000000:0000 0A ..."
_LISTEN_RE = re.compile(r"^\s*\d+:\s+[0-9A-Fa-f]+:([0-9A-Fa-f]{4})\s+[0-9A-Fa-f]+:[0-9A-Fa-f]{4}\s+0A\s")


def _network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(str(value), strict=False)
    except ValueError as exc:
        raise AnsibleFilterError(f"'{value}' is not a network in CIDR notation: {exc}") from exc


def preflight_is_cidr(value: Any) -> bool:
    """True when value is a network such as 10.244.0.0/16 (host bits allowed)."""
    if not isinstance(value, str) or "/" not in value:
        return False
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def preflight_cidrs_overlap(a: str, b: str) -> bool:
    """True when the two networks share at least one address."""
    net_a, net_b = _network(a), _network(b)
    return net_a.version == net_b.version and net_a.overlaps(net_b)


def preflight_network(address: str, prefix: Any) -> str:
    """The network an interface address lives in: ('192.168.1.7', 24) -> '192.168.1.0/24'."""
    return str(ipaddress.ip_interface(f"{address}/{prefix}").network)


def preflight_listening_ports(proc_net_tcp: str) -> list[int]:
    """TCP ports in LISTEN state from the text of /proc/net/tcp or /proc/net/tcp6."""
    ports = {int(m.group(1), 16) for line in proc_net_tcp.splitlines() if (m := _LISTEN_RE.match(line))}
    return sorted(ports)


def _fact(hostvars: Any, host: str, path: str) -> Any:
    value: Any = hostvars[host].get("ansible_facts", {})
    for key in path.split("."):
        if not hasattr(value, "get"):
            return None
        value = value.get(key)
    return value


def preflight_fact(hostvars: Any, host: str, fact: str) -> Any:
    """A host's fact by dotted path under ansible_facts ('default_ipv4.macaddress'), None if absent."""
    return _fact(hostvars, host, fact)


def preflight_hosts_sharing(hosts: list[str], hostvars: Any, me: str, fact: str) -> list[str]:
    """Other hosts whose fact (dotted path under ansible_facts, e.g. 'default_ipv4.macaddress')
    equals this host's. Unknown values ('NA', '', None) are never reported as shared."""
    mine = _fact(hostvars, me, fact)
    if mine in (None, "", "NA"):
        return []
    return [h for h in hosts if h != me and _fact(hostvars, h, fact) == mine]


class FilterModule:
    """preflight_* filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "preflight_is_cidr": preflight_is_cidr,
            "preflight_cidrs_overlap": preflight_cidrs_overlap,
            "preflight_network": preflight_network,
            "preflight_listening_ports": preflight_listening_ports,
            "preflight_fact": preflight_fact,
            "preflight_hosts_sharing": preflight_hosts_sharing,
        }
