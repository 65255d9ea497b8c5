"""Sampling the CSE's replica count during a run, for the timeline: the Deployment's
`status.replicas` and `status.readyReplicas`, through the `kubernetes` Python client (optional:
`pip install 'm2mcloud[cluster]'`). Exercised against a real cluster by the cluster e2e tests;
here only its configuration errors are tested."""

from __future__ import annotations

import importlib
import logging
import threading
import time
from typing import Any

log = logging.getLogger("m2mcloud.devices.replicas")


class ReplicaSamplerError(RuntimeError):
    """Replica sampling was asked for but cannot work; the message says why."""


class ReplicaSampler:
    def __init__(
        self,
        *,
        namespace: str,
        deployment: str,
        context: str = "",
        kubeconfig: str = "",
        in_cluster: bool = False,
        interval: float = 2.0,
    ) -> None:
        try:
            client: Any = importlib.import_module("kubernetes.client")
            config: Any = importlib.import_module("kubernetes.config")
        except ImportError:
            raise ReplicaSamplerError(
                "replica sampling needs the kubernetes Python client: "
                "pip install 'm2mcloud[cluster]'"
            ) from None
        try:
            if in_cluster:
                config.load_incluster_config()
                api_client = None
            else:
                api_client = config.new_client_from_config(
                    config_file=kubeconfig or None, context=context or None
                )
        except Exception as exc:  # the client raises ConfigException, FileNotFoundError, ...
            raise ReplicaSamplerError(f"cannot load the Kubernetes configuration: {exc}") from None
        self.api: Any = client.AppsV1Api(api_client)
        self.namespace = namespace
        self.deployment = deployment
        self.interval = interval
        self.samples: list[tuple[float, int, int]] = []  # (monotonic time, replicas, ready)
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="replica-sampler", daemon=True)

    def sample(self) -> tuple[int, int]:
        dep = self.api.read_namespaced_deployment_status(self.deployment, self.namespace)
        return int(dep.status.replicas or 0), int(dep.status.ready_replicas or 0)

    def check(self) -> None:
        """One sample now; `ReplicaSamplerError` if the Deployment cannot be read."""
        try:
            replicas, ready = self.sample()
        except Exception as exc:
            raise ReplicaSamplerError(
                f"cannot read Deployment {self.namespace}/{self.deployment}: {exc}"
            ) from None
        self.samples.append((time.monotonic(), replicas, ready))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                replicas, ready = self.sample()
            except Exception as exc:
                self.errors += 1
                log.warning("replica sample failed: %s", exc)
                continue
            self.samples.append((time.monotonic(), replicas, ready))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 5)
