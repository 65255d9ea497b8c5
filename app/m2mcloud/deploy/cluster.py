"""`m2mcloud status`: the cluster as an operator checks it — nodes, Deployments (replicas),
HorizontalPodAutoscalers, pods — read through the `kubernetes` Python client."""

from __future__ import annotations

import importlib
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from m2mcloud.deploy.errors import DeployError

REQUEST_TIMEOUT = 5  # seconds per API call: an unreachable cluster answers fast with an error


class ClusterUnreachableError(DeployError):
    """No cluster could be asked: no kubeconfig, or its API server does not answer."""


@dataclass
class NodeInfo:
    name: str
    ready: bool
    roles: list[str]
    version: str
    address: str


@dataclass
class DeploymentInfo:
    namespace: str
    name: str
    desired: int
    ready: int
    available: int


@dataclass
class HPAInfo:
    namespace: str
    name: str
    target: str
    min_replicas: int
    max_replicas: int
    current_replicas: int
    desired_replicas: int
    metrics: list[str]


@dataclass
class PodInfo:
    namespace: str
    name: str
    phase: str
    ready: bool
    restarts: int
    node: str


@dataclass
class ClusterStatus:
    server: str
    kubeconfig: str
    nodes: list[NodeInfo] = field(default_factory=list)
    deployments: list[DeploymentInfo] = field(default_factory=list)
    hpas: list[HPAInfo] = field(default_factory=list)
    pods: list[PodInfo] = field(default_factory=list)

    @property
    def pod_phases(self) -> dict[str, int]:
        return dict(Counter(p.phase for p in self.pods))

    @property
    def healthy(self) -> bool:
        return bool(self.nodes) and all(n.ready for n in self.nodes)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["pod_phases"] = self.pod_phases
        out["healthy"] = self.healthy
        return out


def find_kubeconfig(explicit: str = "", inventory: str = "") -> str:
    """--kubeconfig, else $KUBECONFIG, else the admin kubeconfig the cluster playbook wrote next
    to the inventory (kube_control_plane_kubeconfig: <inventory dir>/.kube/admin.conf), else
    ~/.kube/config."""
    if explicit:
        return explicit
    if os.environ.get("KUBECONFIG"):
        return os.environ["KUBECONFIG"]
    if inventory:
        inv = Path(inventory)
        fetched = (inv if inv.is_dir() else inv.parent) / ".kube" / "admin.conf"
        if fetched.is_file():
            return str(fetched)
    return str(Path.home() / ".kube" / "config")


def _client_modules() -> tuple[Any, Any]:
    try:
        return (
            importlib.import_module("kubernetes.client"),
            importlib.import_module("kubernetes.config"),
        )
    except ImportError:
        raise DeployError(
            "m2mcloud status needs the kubernetes Python client",
            "pip install 'm2mcloud[cluster]'",
        ) from None


def summarize(
    nodes: Any, deployments: Any, hpas: Any, pods: Any, *, server: str, kubeconfig: str
) -> ClusterStatus:
    """Client list objects (V1NodeList, ...) -> ClusterStatus."""
    status = ClusterStatus(server=server, kubeconfig=kubeconfig)
    for n in nodes.items:
        conditions = {c.type: c.status for c in (n.status.conditions or [])}
        labels = n.metadata.labels or {}
        roles = sorted(
            k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")
        )
        address = next(
            (a.address for a in (n.status.addresses or []) if a.type == "InternalIP"), ""
        )
        status.nodes.append(
            NodeInfo(
                name=n.metadata.name,
                ready=conditions.get("Ready") == "True",
                roles=roles,
                version=(n.status.node_info.kubelet_version if n.status.node_info else ""),
                address=address,
            )
        )
    for d in deployments.items:
        status.deployments.append(
            DeploymentInfo(
                namespace=d.metadata.namespace,
                name=d.metadata.name,
                desired=int(d.spec.replicas if d.spec.replicas is not None else 1),
                ready=int(d.status.ready_replicas or 0),
                available=int(d.status.available_replicas or 0),
            )
        )
    for h in hpas.items:
        ref = h.spec.scale_target_ref
        current_metrics = {
            m.resource.name: m for m in (h.status.current_metrics or []) if m.resource is not None
        }
        metrics = []
        for m in h.spec.metrics or []:
            if m.type == "Resource" and m.resource is not None:
                cur = current_metrics.get(m.resource.name)
                cur_util = (
                    cur.resource.current.average_utilization
                    if cur is not None and cur.resource.current is not None
                    else None
                )
                tgt = m.resource.target.average_utilization
                metrics.append(
                    f"{m.resource.name} "
                    f"{'?' if cur_util is None else f'{cur_util}%'}/"
                    f"{'?' if tgt is None else f'{tgt}%'}"
                )
            else:
                metrics.append(str(m.type))
        status.hpas.append(
            HPAInfo(
                namespace=h.metadata.namespace,
                name=h.metadata.name,
                target=f"{ref.kind}/{ref.name}",
                min_replicas=int(h.spec.min_replicas or 1),
                max_replicas=int(h.spec.max_replicas),
                current_replicas=int(h.status.current_replicas or 0),
                desired_replicas=int(h.status.desired_replicas or 0),
                metrics=metrics,
            )
        )
    for p in pods.items:
        statuses = p.status.container_statuses or []
        status.pods.append(
            PodInfo(
                namespace=p.metadata.namespace,
                name=p.metadata.name,
                phase=str(p.status.phase or "Unknown"),
                ready=bool(statuses) and all(c.ready for c in statuses),
                restarts=sum(int(c.restart_count or 0) for c in statuses),
                node=str(p.spec.node_name or ""),
            )
        )
    return status


def cluster_status(
    *, kubeconfig: str, context: str = "", namespace: str = "", timeout: int = REQUEST_TIMEOUT
) -> ClusterStatus:
    """Ask the cluster; `ClusterUnreachableError` with the reason and what to check otherwise."""
    client, config = _client_modules()
    if not Path(kubeconfig).expanduser().is_file():
        raise ClusterUnreachableError(
            f"no kubeconfig at {kubeconfig}: no cluster to ask",
            "build the cluster first (m2mcloud deploy), or point --kubeconfig / $KUBECONFIG at "
            "the admin.conf of an existing one",
        )
    try:
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(Path(kubeconfig).expanduser()),
            context=context or None,
            client_configuration=configuration,
        )
        configuration.retries = 1  # urllib3's default 3 retries make "unreachable" take seconds
        api_client = client.ApiClient(configuration)
    except Exception as exc:  # ConfigException and friends
        raise ClusterUnreachableError(
            f"cannot use the kubeconfig {kubeconfig}: {exc}",
            "check the file (kubectl --kubeconfig FILE config view) and the --kube-context",
        ) from None
    server = str(api_client.configuration.host)
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    autoscaling = client.AutoscalingV2Api(api_client)
    kw: dict[str, Any] = {"_request_timeout": timeout}
    try:
        nodes = core.list_node(**kw)
        if namespace:
            deployments = apps.list_namespaced_deployment(namespace, **kw)
            hpas = autoscaling.list_namespaced_horizontal_pod_autoscaler(namespace, **kw)
            pods = core.list_namespaced_pod(namespace, **kw)
        else:
            deployments = apps.list_deployment_for_all_namespaces(**kw)
            hpas = autoscaling.list_horizontal_pod_autoscaler_for_all_namespaces(**kw)
            pods = core.list_pod_for_all_namespaces(**kw)
    except Exception as exc:  # urllib3 MaxRetryError, ApiException (401/403), timeouts
        reason = getattr(exc, "reason", None) or exc
        raise ClusterUnreachableError(
            f"no cluster reachable at {server} (kubeconfig {kubeconfig}): {_one_line(reason)}",
            "is the cluster up (m2mcloud lab status; m2mcloud deploy builds it)? Does this "
            "machine reach the API server's address and port? For 401/403: is the kubeconfig "
            "the cluster's current admin.conf?",
        ) from None
    return summarize(nodes, deployments, hpas, pods, server=server, kubeconfig=kubeconfig)


def _one_line(value: object) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= 300 else text[:299] + "…"
