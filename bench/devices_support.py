"""Benchmark plumbing for the device simulator: run `m2mcloud devices run` as its own process,
sample its memory and CPU, and summarise its JSON report step by step."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def raise_fd_limit() -> None:
    """Children (the broker, the simulator) inherit it: 1,000+ MQTT connections need it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


@dataclass
class SimRun:
    rc: int
    report: dict[str, Any]
    peak_rss_mb: float
    cpu_seconds: float
    wall_seconds: float
    stderr_tail: list[str] = field(default_factory=list)


def run_simulator(args: list[str], report_path: Path, env: dict[str, str] | None = None) -> SimRun:
    """`python -m m2mcloud devices run ARGS --report report_path`, sampling RSS and CPU."""
    cmd = [
        sys.executable,
        "-m",
        "m2mcloud",
        "devices",
        "run",
        "--progress",
        "log",
        "--progress-interval",
        "5",
        "--report",
        str(report_path),
        *args,
    ]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = {"rss": 0.0, "cpu": 0.0}

    def sample() -> None:
        while proc.poll() is None:
            peak["rss"] = max(peak["rss"], _rss_mb(proc.pid))
            peak["cpu"] = max(peak["cpu"], _cpu_seconds(proc.pid))
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _out, err = proc.communicate()
    sampler.join()
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return SimRun(
        proc.returncode,
        report,
        peak["rss"],
        peak["cpu"],
        time.monotonic() - t0,
        err.strip().splitlines()[-5:],
    )


def step_summaries(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per profile segment: target rate, mean offered/acked per second (first second of each
    step left out, it holds the transition), p50/p99 over the step, errors."""
    out = []
    start = 0.0
    series = report.get("series", [])
    for seg in report["profile"]["segments"]:
        end = start + seg["duration"]
        points = [p for p in series if start + 1 <= p["t"] < end]
        n = max(1, len(points))
        p50 = [p["p50_ms"] for p in points if p["p50_ms"] is not None]
        p99 = [p["p99_ms"] for p in points if p["p99_ms"] is not None]
        out.append(
            {
                "target": seg["to"],
                "offered": sum(p["offered"] for p in points) / n,
                "acked": sum(p["acked"] for p in points) / n,
                "errors": sum(p["errors"] for p in points),
                "p50_ms": sorted(p50)[len(p50) // 2] if p50 else None,
                "p99_ms": max(p99) if p99 else None,
            }
        )
        start = end
    return out


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"
