"""The load test's view of the platform: replica/HPA samples placed on the report's time axis and
drawn; the watcher's and the CLI's error sentences. (The watcher against a live cluster and
`count_stored` against a real CSE are exercised by tests/e2e/test_apps.py and
tests/integration/test_devices.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from m2mcloud.cli import main
from m2mcloud.devices.platform import (
    PlatformError,
    merge_samples,
    read_samples,
    scaling_summary,
    watch,
)
from m2mcloud.devices.plot import plot_timeline


def _report(started: float = 1_000.0, seconds: int = 5) -> dict[str, Any]:
    series = [
        {
            "t": s,
            "target_rate": 10.0,
            "offered": 10,
            "acked": 10,
            "errors": 0,
            "errors_by_class": {},
            "p50_ms": 2.0,
            "p90_ms": 3.0,
            "p99_ms": 4.0,
        }
        for s in range(seconds)
    ]
    return {
        "started_epoch": started,
        "series": series,
        "replicas": [],
        "totals": {"offered": 50, "acked": 50, "errors": 0, "latency": {"p99_ms": 4.0}},
        "settings": {"protocol": "mqtt"},
        "devices": {"ready": 5},
        "profile": {"name": "constant", "duration_s": float(seconds)},
    }


SAMPLES = [
    {"epoch": 998.0, "replicas": 1, "ready": 1, "desired": 1, "cpu_percent": 3},
    {"epoch": 1_002.5, "replicas": 3, "ready": 1, "desired": 3, "cpu_percent": 180},
    {"epoch": 1_090.0, "replicas": 1, "ready": 1, "desired": 1},
]


def test_samples_land_on_the_profiles_time_axis() -> None:
    merged = merge_samples(_report(), SAMPLES)
    assert [r["t"] for r in merged["replicas"]] == [-2.0, 2.5, 90.0]
    assert merged["replicas"][1] == {
        "t": 2.5,
        "replicas": 3,
        "ready": 1,
        "desired": 3,
        "cpu_percent": 180,
    }
    assert "cpu_percent" not in merged["replicas"][2]
    assert merged["scaling"] == {
        "replicas_before": 1,
        "replicas_max": 3,
        "replicas_last": 1,
        "flood_end_s": 5.0,
        "first_extra_replica_ready_s": None,  # the third replica was never Ready in these samples
        "back_to_start_size_s": 90.0,
        "scale_down_after_flood_s": 85.0,
        "cpu_percent_max": 180,
    }


def test_scaling_summary_finds_the_first_extra_ready_replica() -> None:
    points = [
        {"t": -1.0, "replicas": 1, "ready": 1},
        {"t": 20.0, "replicas": 3, "ready": 1},
        {"t": 35.0, "replicas": 3, "ready": 2},
        {"t": 200.0, "replicas": 2, "ready": 2},
        {"t": 230.0, "replicas": 1, "ready": 1},
    ]
    summary = scaling_summary(points, flood_end=170.0)
    assert summary["first_extra_replica_ready_s"] == 35.0
    assert summary["back_to_start_size_s"] == 230.0
    assert summary["scale_down_after_flood_s"] == 60.0
    assert scaling_summary([], 10.0) == {}


def test_a_report_without_a_start_time_is_refused() -> None:
    report = _report()
    del report["started_epoch"]
    with pytest.raises(PlatformError, match="no started_epoch"):
        merge_samples(report, SAMPLES)


def test_the_timeline_draws_samples_beyond_the_run(tmp_path: Path) -> None:
    out = plot_timeline(merge_samples(_report(), SAMPLES), tmp_path / "t.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_plot_command_merges_and_draws(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report, samples = tmp_path / "report.json", tmp_path / "samples.jsonl"
    report.write_text(json.dumps(_report()))
    samples.write_text("".join(json.dumps(s) + "\n" for s in SAMPLES) + "\n")
    assert read_samples(str(samples)) == SAMPLES
    rc = main(
        [
            "devices",
            "plot",
            str(report),
            "--samples",
            str(samples),
            "--out",
            str(tmp_path / "t.png"),
            "--merged-report",
            str(tmp_path / "merged.json"),
        ]
    )
    assert rc == 0
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert [r["replicas"] for r in merged["replicas"]] == [1, 3, 1]


def test_watch_names_a_broken_kubeconfig(tmp_path: Path) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text("not: [a kubeconfig")
    with pytest.raises(PlatformError, match="cannot load the Kubernetes configuration"):
        watch(str(tmp_path / "s.jsonl"), namespace="m2m", deployment="cse", kubeconfig=str(bad))


def test_watch_command_exits_3_when_the_api_server_is_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "x"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    rc = main(
        [
            "devices",
            "watch",
            "--out",
            str(tmp_path / "s.jsonl"),
            "--kubeconfig",
            str(config),
            "--max-seconds",
            "1",
        ]
    )
    assert rc == 3
    assert "cannot read Deployment m2m/cse or HPA cse" in capsys.readouterr().err
