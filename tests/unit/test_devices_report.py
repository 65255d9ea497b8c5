"""Report aggregation: outcomes per second, percentiles, error classes, the summary table, the
JSON file and the PNG timeline (real matplotlib, Agg backend)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest

from m2mcloud.devices import profile as p
from m2mcloud.devices.device import Device, rsc_class
from m2mcloud.devices.plot import plot_timeline
from m2mcloud.devices.progress import Progress
from m2mcloud.devices.report import build_report, summary_table, write_json
from m2mcloud.devices.stats import Recorder, percentile


def test_percentile_nearest_rank() -> None:
    values = sorted(float(x) for x in range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def _recorded() -> Recorder:
    """Three seconds: 10 offered/acked at 1 ms..10 ms, then 10 offered with 4 errors, then 5
    offered of which 2 remain unanswered at the end."""
    rec = Recorder()
    rec.start(now=100.0)
    rec.offered(100.1, 10)
    for i in range(10):
        rec.acked(100.2 + i * 0.01, (i + 1) / 1000)
    rec.offered(101.0, 10)
    for _ in range(6):
        rec.acked(101.5, 0.020)
    rec.error(101.6, rsc_class(4004), 3)
    rec.error(101.7, "timeout")
    rec.offered(102.0, 5)
    for _ in range(3):
        rec.acked(102.5, 0.5)
    rec.finish(unfinished=2)
    rec.phase("setup", latency=0.004)
    rec.phase("setup", error="timeout")
    return rec


def test_report_totals_series_and_invariant() -> None:
    rec = _recorded()
    prof = p.constant(10, 3)
    r = build_report(
        rec, prof, settings={"devices": 2, "protocol": "mqtt"}, elapsed=3.0, devices_ready=1
    )
    t = r["totals"]
    assert (t["offered"], t["acked"], t["errors"], t["unfinished"]) == (25, 19, 4, 2)
    assert t["offered"] == t["acked"] + t["errors"] + t["unfinished"]
    assert t["errors_by_class"] == {"rsc:4004 NOT_FOUND": 3, "timeout": 1}
    assert t["error_ratio"] == pytest.approx(4 / 25)
    assert t["acked_rate"] == pytest.approx(19 / 3, abs=1e-3)
    assert t["latency"]["max_ms"] == pytest.approx(500)
    assert t["latency"]["p50_ms"] == pytest.approx(10)  # 10th of 19 sorted
    s = r["series"]
    assert [x["offered"] for x in s] == [10, 10, 5]
    assert [x["acked"] for x in s] == [10, 6, 3]
    assert [x["errors"] for x in s] == [0, 4, 0]
    assert [x["target_rate"] for x in s] == [10, 10, 10]
    assert s[0]["p50_ms"] == pytest.approx(5) and s[0]["p99_ms"] == pytest.approx(10)
    assert s[1]["errors_by_class"] == {"rsc:4004 NOT_FOUND": 3, "timeout": 1}
    assert r["devices"]["setup_ok"] == 1
    assert r["devices"]["setup_errors"] == {"timeout": 1}
    assert r["host"]["cpus"] >= 1
    json.dumps(r)  # serialisable as it is (no NaN: missing percentiles are null)


def test_series_covers_quiet_seconds_and_replica_samples() -> None:
    rec = Recorder()
    rec.start(now=0.0)
    rec.offered(0.5)
    rec.acked(3.2, 0.01)
    r = build_report(
        rec,
        p.constant(1, 5),
        settings={},
        elapsed=5.0,
        replicas=[(0.1, 1, 1), (2.4, 2, 1), (2.9, 3, 2), (9.0, 3, 3)],
    )
    s = r["series"]
    assert len(s) == 5
    assert s[1]["p99_ms"] is None and s[1]["acked"] == 0
    assert "replicas" not in s[1]
    assert (s[2]["replicas"], s[2]["ready_replicas"]) == (3, 2)  # last sample of the second
    assert len(r["replicas"]) == 4


def test_summary_table_and_json_file(tmp_path: Path) -> None:
    r = build_report(
        _recorded(),
        p.constant(10, 3),
        settings={"devices": 2, "protocol": "http", "ack": "response"},
        elapsed=3.0,
        stopped_by="SIGINT",
        devices_ready=1,
    )
    table = summary_table(r)
    rows = {line[:28].strip(): line[28:].strip() for line in table.splitlines()[1:-1]}
    assert rows["acknowledged"] == "19 (6.3/s)"
    assert rows["error rsc:4004 NOT_FOUND"] == "3"
    assert rows["setup error timeout"] == "1"
    assert rows["elapsed"] == "3.0 s (stopped by SIGINT)"
    assert rows["devices ready"] == "1 of 2"
    path = write_json(r, tmp_path / "out" / "report.json")
    assert json.loads(path.read_text())["totals"]["acked"] == 19


def test_timeline_png(tmp_path: Path) -> None:
    rec = Recorder()
    rec.start(now=0.0)
    prof = p.ramp(0, 100, 3, 3, 3)
    for s in range(9):
        n = int(prof.count_until(s + 1) - prof.count_until(s))
        rec.offered(s + 0.1, n)
        for i in range(n):
            rec.acked(s + 0.5, 0.001 * (1 + i % 7))
        if s == 4:
            rec.error(s + 0.5, "timeout", 5)
    r = build_report(
        rec,
        prof,
        settings={"protocol": "mqtt"},
        elapsed=9.0,
        replicas=[(0.0, 1, 1), (4.0, 2, 1), (6.0, 2, 2)],
    )
    out = plot_timeline(r, tmp_path / "timeline.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000


def test_progress_log_lines() -> None:
    rec = _recorded()
    stream = io.StringIO()
    prog = Progress(rec, "log", interval=1.0, stream=stream)
    tick = prog.run_tick(lambda now: 10.0)
    tick(102.0)
    tick(102.5)  # within the interval: no second line
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert "acked" in lines[0] and "errors 4" in lines[0] and "total 19/25" in lines[0]


def test_device_readings_are_realistic_and_deterministic() -> None:
    a, b = Device(3, "r1", "cse-in", seed=7), Device(3, "r1", "cse-in", seed=7)
    ra, rb = a.reading(now=1_764_000_000.25), b.reading(now=1_764_000_000.25)
    assert ra == rb
    assert ra.to == "cse-in/dev-r1-00003/data" and ra.ty == 4
    cin = ra.pc["m2m:cin"]  # type: ignore[index]
    content = json.loads(cin["con"])
    assert cin["cnf"] == "application/json:0"
    assert content["seq"] == 1 and content["device"] == "dev-r1-00003"
    assert content["ts"] == "20251124T160000,250"
    assert -10 < content["temperature"] < 40 and 0 <= content["humidity"] <= 100
    assert set(content["position"]) == {"lat", "lon"}
    assert json.loads(a.reading().pc["m2m:cin"]["con"])["seq"] == 2  # type: ignore[index]
    assert a.originator == "Cdev-r1-00003"
    calls = a.setup_calls(mni=100, commands=True)
    assert [c.ty for c in calls] == [2, 3, 3, 23]
    assert calls[1].pc == {"m2m:cnt": {"rn": "data", "lbl": ["m2mcloud/data"], "mni": 100}}
    assert calls[3].pc["m2m:sub"]["nu"] == ["Cdev-r1-00003"]  # type: ignore[index]


def test_progress_tty_refreshes_one_line() -> None:
    rec = _recorded()
    stream = io.StringIO()
    prog = Progress(rec, "tty", stream=stream)
    tick = prog.setup_tick(lambda: {"devices": 4, "connected": 3, "ready": 2, "failed": 1})
    tick(1.0)
    prog.done()
    assert stream.getvalue() == ("\r\x1b[2Ksetup: 2/4 devices ready, 3 connected, 1 failed\n")


def test_command_latency_from_the_content_timestamp() -> None:
    import time

    from m2mcloud.devices.notify import command_latency

    con = json.dumps({"command": "reboot", "ts": time.time() - 0.25})
    sgn = {"nev": {"rep": {"m2m:cin": {"con": con}}, "net": 3}}
    assert 0.25 <= command_latency(sgn) < 5  # type: ignore[operator]
    assert command_latency({"nev": {"rep": {"m2m:cin": {"con": "reboot"}}}}) is None
    assert command_latency({"vrq": True}) is None
