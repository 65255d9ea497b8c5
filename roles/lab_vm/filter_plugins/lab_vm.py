"""Filters of the lab_vm role: addresses on the lab network and the lab's multicast group."""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any


def lab_vm_address(network: str, offset: int) -> str:
    """The address `offset` hosts into `network`, in CIDR notation (10.77.0.0/24, 11 -> 10.77.0.11/24)."""
    net = ipaddress.ip_network(network, strict=True)
    if not 0 < int(offset) < net.num_addresses - 1:
        raise ValueError(f"{network} has no host number {offset}: choose a larger lab_vm_network")
    return f"{net.network_address + int(offset)}/{net.prefixlen}"


def lab_vm_mcast(seed: str) -> str:
    """A multicast group:port of the administratively scoped range, different for every lab (seed)."""
    d = hashlib.sha256(seed.encode()).digest()
    return f"239.77.{d[0]}.{d[1] or 1}:{20000 + int.from_bytes(d[2:4], 'big') % 20000}"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"lab_vm_address": lab_vm_address, "lab_vm_mcast": lab_vm_mcast}
