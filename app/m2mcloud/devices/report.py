"""The run's report: a JSON document (totals and a per-second series) and the summary table the
CLI prints. Built from a `Recorder` only, so it is the same for MQTT and HTTP runs."""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from m2mcloud.devices.profile import Profile
from m2mcloud.devices.stats import Recorder, percentile

REPORT_VERSION = 1


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else round(seconds * 1000.0, 3)


def _latency_summary(sorted_lat: Sequence[float]) -> dict[str, float | None]:
    return {
        "p50_ms": _ms(percentile(sorted_lat, 50)),
        "p90_ms": _ms(percentile(sorted_lat, 90)),
        "p99_ms": _ms(percentile(sorted_lat, 99)),
        "max_ms": _ms(sorted_lat[-1]) if sorted_lat else None,
    }


def build_report(
    recorder: Recorder,
    profile: Profile,
    *,
    settings: dict[str, Any],
    elapsed: float,
    stopped_by: str | None = None,
    replicas: Sequence[tuple[float, int, int]] = (),
    devices_ready: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Totals, phases and the per-second series. `replicas`: (t, replicas, ready) samples."""
    offered, acked, errors = recorder.totals()
    lat = recorder.all_latencies()
    n_errors = sum(errors.values())
    seconds = max(len(recorder.buckets), math.ceil(min(elapsed, profile.duration)))
    series = []
    for s in range(seconds):
        b = recorder.buckets[s] if s < len(recorder.buckets) else None
        bl = sorted(b.latencies) if b else []
        point: dict[str, Any] = {
            "t": s,
            "target_rate": round(profile.count_until(s + 1) - profile.count_until(s), 3),
            "offered": b.offered if b else 0,
            "acked": b.acked if b else 0,
            "errors": sum(b.errors.values()) if b else 0,
            "errors_by_class": dict(sorted(b.errors.items())) if b else {},
            "p50_ms": _ms(percentile(bl, 50)),
            "p90_ms": _ms(percentile(bl, 90)),
            "p99_ms": _ms(percentile(bl, 99)),
        }
        if replicas:
            inside = [r for r in replicas if s <= r[0] < s + 1]
            if inside:
                point["replicas"] = inside[-1][1]
                point["ready_replicas"] = inside[-1][2]
        series.append(point)
    setup_lat = sorted(recorder.setup.latencies)
    cmd_lat = sorted(recorder.commands.latencies)
    run_seconds = max(elapsed, 1e-9)
    report: dict[str, Any] = {
        "version": REPORT_VERSION,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(recorder.wall0)),
        # The profile's t = 0 in wall-clock seconds: samples taken elsewhere line up with it.
        "started_epoch": round(recorder.wall0, 3),
        "elapsed_s": round(elapsed, 3),
        "stopped_by": stopped_by,
        "host": {
            "node": platform.node(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg": _loadavg(),
        },
        "settings": settings,
        "profile": profile.describe(),
        "devices": {
            "requested": settings.get("devices"),
            "ready": devices_ready,
            "setup_ok": recorder.setup.ok,
            "setup_errors": dict(sorted(recorder.setup.errors.items())),
            "setup_latency": _latency_summary(setup_lat),
        },
        "totals": {
            "offered": offered,
            "acked": acked,
            "errors": n_errors,
            "unfinished": recorder.unfinished,
            "errors_by_class": dict(sorted(errors.items())),
            "offered_rate": round(offered / run_seconds, 3),
            "acked_rate": round(acked / run_seconds, 3),
            "error_ratio": round(n_errors / offered, 6) if offered else 0.0,
            "latency": _latency_summary(lat),
        },
        "commands": {
            "received": recorder.commands.ok,
            "errors": dict(sorted(recorder.commands.errors.items())),
            "latency": _latency_summary(cmd_lat),
        },
        "cleanup": {
            "deleted": recorder.cleanup.ok,
            "errors": dict(sorted(recorder.cleanup.errors.items())),
        },
        "replicas": [{"t": round(t, 3), "replicas": r, "ready": rd} for t, r, rd in replicas],
        "series": series,
    }
    if extra:
        report.update(extra)
    return report


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def write_json(report: dict[str, Any], path: str | Path) -> Path:
    p = Path(path)
    if p.parent != Path(""):
        p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(p)
    return p


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def summary_table(report: dict[str, Any]) -> str:
    """A plain-text table for the terminal."""
    t = report["totals"]
    d = report["devices"]
    lat = t["latency"]
    rows = [
        (
            "protocol",
            f"{report['settings'].get('protocol')} (ack: {report['settings'].get('ack')})",
        ),
        (
            "profile",
            f"{report['profile']['name']}, {report['profile']['duration_s']:g} s, "
            f"peak {report['profile']['peak_rate']:g}/s",
        ),
        ("devices ready", f"{d['ready']} of {d['requested']}"),
        (
            "elapsed",
            f"{report['elapsed_s']:.1f} s"
            + (f" (stopped by {report['stopped_by']})" if report["stopped_by"] else ""),
        ),
        ("offered", f"{t['offered']} ({t['offered_rate']:.1f}/s)"),
        ("acknowledged", f"{t['acked']} ({t['acked_rate']:.1f}/s)"),
        ("errors", f"{t['errors']} ({t['error_ratio'] * 100:.2f} %)"),
        ("unfinished", str(t["unfinished"])),
        ("latency p50 / p90", f"{_fmt_ms(lat['p50_ms'])} / {_fmt_ms(lat['p90_ms'])}"),
        ("latency p99 / max", f"{_fmt_ms(lat['p99_ms'])} / {_fmt_ms(lat['max_ms'])}"),
    ]
    for kind, n in t["errors_by_class"].items():
        rows.append((f"  error {kind}", str(n)))
    for kind, n in d["setup_errors"].items():
        rows.append((f"  setup error {kind}", str(n)))
    if report["settings"].get("commands"):
        rows.append(("commands received", str(report["commands"]["received"])))
    if report["settings"].get("cleanup"):
        c = report["cleanup"]
        rows.append(
            ("AEs deleted", f"{c['deleted']}" + (f" (errors {c['errors']})" if c["errors"] else ""))
        )
    if report["replicas"]:
        counts = [r["replicas"] for r in report["replicas"]]
        rows.append(("CSE replicas min / max", f"{min(counts)} / {max(counts)}"))
    width = max(len(k) for k, _ in rows)
    line = "-" * (width + 2 + max(len(v) for _, v in rows))
    body = "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
    return f"{line}\n{body}\n{line}"
