"""The platform seen from outside during and after a load run (playbooks/loadtest.yml):

- `watch`: the CSE Deployment's replicas and the HPA's desired replicas and CPU utilisation,
  sampled every few seconds from the controller into a JSON-lines file (wall-clock times), until
  a stop file appears; it keeps going after the simulator's Job has ended, so scale-down is seen;
- `count_stored`: the contentInstances a run's devices have in the CSE, read over HTTP (label
  discovery of the run's AEs, then each data container's `cni`): compared with the report's
  acknowledged count, it proves that nothing acknowledged was lost;
- `merge_samples` + the timeline: the samples placed on the report's time axis (t = 0 when the
  profile started) and drawn with the rates and latencies.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

log = logging.getLogger("m2mcloud.devices.platform")


class PlatformError(RuntimeError):
    """The cluster or the CSE cannot be asked; the message says what to check."""


def _apis(kubeconfig: str, context: str) -> tuple[Any, Any]:
    try:
        client: Any = importlib.import_module("kubernetes.client")
        config: Any = importlib.import_module("kubernetes.config")
    except ImportError:
        raise PlatformError(
            "watching the cluster needs the kubernetes Python client: "
            "pip install 'm2mcloud[cluster]'"
        ) from None
    try:
        api_client = config.new_client_from_config(
            config_file=kubeconfig or None, context=context or None
        )
    except Exception as exc:
        raise PlatformError(f"cannot load the Kubernetes configuration: {exc}") from None
    return client.AppsV1Api(api_client), client.AutoscalingV2Api(api_client)


def sample_once(
    apps: Any, autoscaling: Any, namespace: str, deployment: str, hpa: str
) -> dict[str, Any]:
    dep = apps.read_namespaced_deployment_status(deployment, namespace)
    point: dict[str, Any] = {
        "epoch": round(time.time(), 3),
        "replicas": int(dep.status.replicas or 0),
        "ready": int(dep.status.ready_replicas or 0),
    }
    if hpa:
        status = autoscaling.read_namespaced_horizontal_pod_autoscaler_status(hpa, namespace).status
        point["desired"] = int(status.desired_replicas or 0)
        for metric in status.current_metrics or []:
            resource = getattr(metric, "resource", None)
            if resource is not None and resource.name == "cpu":
                point["cpu_percent"] = resource.current.average_utilization
    return point


def watch(
    out: str,
    *,
    namespace: str,
    deployment: str,
    hpa: str = "",
    kubeconfig: str = "",
    context: str = "",
    interval: float = 3.0,
    stop_file: str = "",
    max_seconds: float = 3600.0,
) -> int:
    """Append one JSON line per sample to `out` until `stop_file` exists or time runs out."""
    apps, autoscaling = _apis(kubeconfig, context)
    try:
        sample_once(apps, autoscaling, namespace, deployment, hpa)
    except Exception as exc:
        raise PlatformError(
            f"cannot read Deployment {namespace}/{deployment}"
            f"{' or HPA ' + hpa if hpa else ''}: {exc}"
        ) from None
    deadline = time.monotonic() + max_seconds
    samples = 0
    with open(out, "a") as handle:
        while time.monotonic() < deadline and not (stop_file and Path(stop_file).exists()):
            started = time.monotonic()
            try:
                point = sample_once(apps, autoscaling, namespace, deployment, hpa)
            except Exception as exc:  # the API server may blink; a gap is better than a stop
                log.warning("sample failed: %s", exc)
            else:
                handle.write(json.dumps(point) + "\n")
                handle.flush()
                samples += 1
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    return samples


def read_samples(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def merge_samples(report: dict[str, Any], samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The report with `replicas` replaced by the samples on its time axis (seconds since the
    profile started; negative before, beyond the series after the run)."""
    start = report.get("started_epoch")
    if start is None:
        raise PlatformError("the report has no started_epoch (written by an older simulator)")
    merged = dict(report)
    merged["replicas"] = [
        {
            "t": round(s["epoch"] - start, 3),
            "replicas": s["replicas"],
            "ready": s["ready"],
            **({"desired": s["desired"]} if "desired" in s else {}),
            **({"cpu_percent": s["cpu_percent"]} if s.get("cpu_percent") is not None else {}),
        }
        for s in samples
    ]
    merged["scaling"] = scaling_summary(merged["replicas"], float(report["profile"]["duration_s"]))
    return merged


def scaling_summary(points: list[dict[str, Any]], flood_end: float) -> dict[str, Any]:
    """What the replica samples say about the run (t in seconds since the profile started):
    replicas before, at most and at the end; when the first extra replica was Ready after the
    start; when the Deployment was back at its starting size after the flood ended."""
    if not points:
        return {}
    before = [p for p in points if p["t"] <= 0] or points[:1]
    base = before[-1]["replicas"]
    first_extra_ready = next((p["t"] for p in points if p["t"] > 0 and p["ready"] > base), None)
    above = [p["t"] for p in points if p["replicas"] > base]
    back = None
    if above:
        back = next((p["t"] for p in points if p["t"] > above[-1] and p["replicas"] <= base), None)
    return {
        "replicas_before": base,
        "replicas_max": max(p["replicas"] for p in points),
        "replicas_last": points[-1]["replicas"],
        "flood_end_s": flood_end,
        "first_extra_replica_ready_s": first_extra_ready,
        "back_to_start_size_s": back,
        "scale_down_after_flood_s": None if back is None else round(back - flood_end, 1),
        "cpu_percent_max": max((p.get("cpu_percent") or 0 for p in points), default=0),
    }


def count_stored(
    cse_url: str,
    run_id: str,
    *,
    cse_name: str = "cse-in",
    originator: str = "CAdmin",
    timeout: float = 10.0,
) -> dict[str, int]:
    """AEs of the run and the contentInstances in their `data` containers, over HTTP."""
    base = cse_url.rstrip("/")

    def get(path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        request = urllib.request.Request(
            f"{base}/{path}{query}",
            headers={
                "X-M2M-Origin": originator,
                "X-M2M-RI": f"count-{time.monotonic_ns()}",
                "X-M2M-RVI": "3",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return dict(json.loads(response.read()))
        except OSError as exc:
            raise PlatformError(f"GET {base}/{path}{query} failed: {exc}") from None

    found = get(cse_name, {"fu": "1", "ty": "2", "lbl": f"m2mcloud/run:{run_id}"})
    aes = found.get("m2m:uril") or []
    stored = 0
    for ae in aes:
        stored += int(get(f"{ae}/data")["m2m:cnt"]["cni"])
    return {"aes": len(aes), "stored": stored}
