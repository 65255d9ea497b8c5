"""The roles' own filter plugins (stdlib only), exercised directly."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _plugin(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


preflight = _plugin("roles/preflight/filter_plugins/preflight.py")
containerd_toml = _plugin("roles/containerd/filter_plugins/containerd_toml.py")

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 0100007F:1A0A 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 0A580009:0016 0A580001:D2F0 01 00000000:00000000 02:00092D2F 00000000     0        0 3 4
"""


def test_listening_ports_reads_only_listen_sockets() -> None:
    # 0x0016 = 22 and 0x1A0A = 6666 listen; the established ssh connection (state 01) does not.
    assert preflight.preflight_listening_ports(PROC_NET_TCP) == [22, 6666]


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("10.244.0.0/16", "10.96.0.0/12", False),
        ("10.96.0.0/12", "10.100.0.0/16", True),
        ("10.0.0.0/8", "10.88.0.0/16", True),
        ("192.168.1.0/24", "192.168.2.0/24", False),
        ("0.0.0.0/0", "fd00::/108", False),
    ],
)
def test_cidrs_overlap(a: str, b: str, overlap: bool) -> None:
    assert preflight.preflight_cidrs_overlap(a, b) is overlap
    assert preflight.preflight_cidrs_overlap(b, a) is overlap


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("10.244.0.0/16", True),
        ("10.244.1.7/16", True),
        ("10.244.0.0/33", False),
        ("10.244.0.0", False),
        ("", False),
        (None, False),
        ("fd00::/64", True),
    ],
)
def test_is_cidr(value: object, ok: bool) -> None:
    assert preflight.preflight_is_cidr(value) is ok


def test_network_of_an_interface_address() -> None:
    assert preflight.preflight_network("10.88.0.9", "16") == "10.88.0.0/16"
    assert preflight.preflight_network("192.0.2.77", 24) == "192.0.2.0/24"


def test_hosts_sharing_a_fact_ignores_unknown_values() -> None:
    hostvars = {
        "a": {
            "ansible_facts": {
                "nodename": "n1",
                "product_uuid": "NA",
                "default_ipv4": {"macaddress": "m1"},
            }
        },
        "b": {
            "ansible_facts": {
                "nodename": "n1",
                "product_uuid": "NA",
                "default_ipv4": {"macaddress": "m2"},
            }
        },
        "c": {"ansible_facts": {"nodename": "n3", "product_uuid": "NA"}},
    }
    hosts = list(hostvars)
    assert preflight.preflight_hosts_sharing(hosts, hostvars, "a", "nodename") == ["b"]
    assert preflight.preflight_hosts_sharing(hosts, hostvars, "c", "nodename") == []
    assert preflight.preflight_hosts_sharing(hosts, hostvars, "a", "product_uuid") == []
    assert preflight.preflight_hosts_sharing(hosts, hostvars, "a", "default_ipv4.macaddress") == []
    assert preflight.preflight_fact(hostvars, "b", "default_ipv4.macaddress") == "m2"


def test_containerd_toml_round_trips_through_a_toml_parser() -> None:
    config = {
        "version": 2,
        "plugins": {
            "io.containerd.grpc.v1.cri": {
                "sandbox_image": "registry.k8s.io/pause:3.10.1",
                "restrict_oom_score_adj": True,
                "max_concurrent_downloads": 3,
                "containerd": {
                    "runtimes": {
                        "runc": {
                            "runtime_type": "io.containerd.runc.v2",
                            "options": {"SystemdCgroup": True},
                        }
                    }
                },
                "registry": {"config_path": "/etc/containerd/certs.d", "mirrors": {}},
                "cni": {
                    "bin_dir": "/opt/cni/bin",
                    "conf_template": None,
                    "extra": ['a "quoted" one', "b"],
                },
            }
        },
    }
    text = containerd_toml.to_containerd_toml(config)
    parsed = tomllib.loads(text)
    cni = config["plugins"]["io.containerd.grpc.v1.cri"]["cni"]  # type: ignore[index]
    del cni["conf_template"]  # None means "leave containerd's default": not written
    assert parsed == config
    assert '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]' in text
