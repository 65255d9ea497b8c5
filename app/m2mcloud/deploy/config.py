"""Operator settings shared by the playbook commands and `m2mcloud status`: each a `--flag` or an
`M2M_*` environment variable (the settings machinery of the CSE and the simulator)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

from m2mcloud.settings import add_arguments, args_values, env_values, setting

ENV_PREFIX = "M2M_"


@dataclass(frozen=True)
class OperatorConfig:
    project_dir: str = setting(
        "", "the m2mcloud checkout (playbooks/, ansible.cfg); default: found from the cwd up"
    )
    inventory: str = setting(
        "",
        "inventory file or directory (default: ansible.cfg's, the lab: inventory/lab)",
    )
    runs_dir: str = setting(
        "", "where each run's log and artifacts go (default: ~/.local/state/m2mcloud/runs)"
    )

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        add_arguments(cls, parser, ENV_PREFIX)

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Self:
        return cls(**{**env_values(cls, ENV_PREFIX, env), **args_values(cls, args)})


@dataclass(frozen=True)
class ClusterConfig:
    kubeconfig: str = setting(
        "",
        "kubeconfig of the cluster (default: $KUBECONFIG, <inventory dir>/.kube/admin.conf, "
        "~/.kube/config)",
    )
    kube_context: str = setting("", "kubeconfig context (default: its current context)")
    namespace: str = setting("", "only this namespace's pods, Deployments and HPAs (default: all)")

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        add_arguments(cls, parser, ENV_PREFIX)

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Self:
        return cls(**{**env_values(cls, ENV_PREFIX, env), **args_values(cls, args)})
