"""The device fleet simulator against real things: a real Mosquitto, real `m2mcloud cse serve`
processes (SQLite and PostgreSQL), the stand-in `m2mcloud devices echo`. The report's counts must
equal what the CSE stored; every failure must be counted and classified."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from m2mcloud.devices.config import DevicesConfig
from m2mcloud.devices.fleet import StopFlag
from m2mcloud.devices.platform import count_stored
from m2mcloud.devices.runner import run
from tests.integration.conftest import CSEProcess
from tests.support import M2MClient, Mosquitto, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def echo(mosquitto: Mosquitto) -> Iterator[subprocess.Popen[bytes]]:
    """`m2mcloud devices echo`: answers every request on the broker with success."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "m2mcloud", "devices", "echo", "--mqtt-port", str(mosquitto.port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert "answering requests" in proc.stdout.readline()  # printed once subscribed
    yield proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(10)


class Run:
    def __init__(self, rc: int, report: dict[str, Any], out: str, err: str) -> None:
        self.rc, self.report, self.out, self.err = rc, report, out, err

    @property
    def totals(self) -> dict[str, Any]:
        return dict(self.report["totals"])


def simulate(
    tmp_path: Path,
    *,
    on_ready: Callable[[dict[str, int]], None] | None = None,
    stop: StopFlag | None = None,
    **settings: Any,
) -> Run:
    settings.setdefault("progress", "none")
    settings.setdefault("stagger", 0.2)
    config = DevicesConfig.from_env(
        {},
        report=str(tmp_path / "report.json"),
        plot=str(tmp_path / "timeline.png"),
        **settings,
    )
    out, err = io.StringIO(), io.StringIO()
    rc = run(config, out=out, err=err, stop=stop, on_ready=on_ready)
    path = tmp_path / "report.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    return Run(rc, report, out.getvalue(), err.getvalue())


def stored(client: M2MClient, run_id: str) -> tuple[int, int]:
    """(AEs of the run, contentInstances stored in their data containers), read over HTTP."""
    found = client.retrieve(
        "cse-in", params={"fu": "1", "ty": "2", "lbl": f"m2mcloud/run:{run_id}"}
    )
    assert found.rsc == 2000, found.body
    aes = found["m2m:uril"]
    total = 0
    for ae in aes:
        cnt = client.retrieve(f"{ae}/data")
        assert cnt.rsc == 2000, cnt.body
        total += cnt["m2m:cnt"]["cni"]
    return len(aes), total


def assert_consistent(r: Run) -> None:
    t = r.totals
    assert t["offered"] == t["acked"] + t["errors"] + t["unfinished"], t


# -- against a real CSE ------------------------------------------------------------------------


def test_http_devices_counts_equal_what_the_cse_stored(
    cse_process: Callable[..., CSEProcess], tmp_path: Path
) -> None:
    cse = cse_process()
    r = simulate(
        tmp_path,
        protocol="http",
        cse_url=cse.url,
        devices=12,
        run_id="h1",
        profile="ramp",
        rate=60,
        ramp_up=1,
        plateau=1,
        ramp_down=1,
    )
    assert r.rc == 0, r.err
    t = r.totals
    assert t["offered"] == 120  # the ramp's area: 30 + 60 + 30
    assert t["errors"] == 0 and t["unfinished"] == 0
    assert r.report["devices"]["ready"] == 12
    assert stored(cse.client, "h1") == (12, t["acked"])
    # The same count the cluster load test uses (m2mcloud devices count), over plain HTTP.
    assert count_stored(cse.url, "h1") == {"aes": 12, "stored": t["acked"]}
    series = r.report["series"]
    assert [p["target_rate"] for p in series[:3]] == [30, 60, 30]
    assert sum(p["offered"] for p in series[:3]) == 120  # none after the profile ends
    assert sum(p["acked"] for p in series) == t["acked"]
    assert (tmp_path / "timeline.png").read_bytes()[:4] == b"\x89PNG"
    assert "acknowledged" in r.out


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_mqtt_devices_counts_equal_what_the_cse_stored(
    mqtt_cse: Callable[..., CSEProcess], mosquitto: Mosquitto, tmp_path: Path
) -> None:
    cse = mqtt_cse()
    r = simulate(
        tmp_path,
        protocol="mqtt",
        mqtt_port=mosquitto.port,
        devices=30,
        run_id="m1",
        profile="step",
        steps="1:30,1:90",
    )
    assert r.rc == 0, r.err
    t = r.totals
    assert t["offered"] == 120 and t["errors"] == 0 and t["unfinished"] == 0
    assert r.report["devices"]["setup_ok"] == 60  # AE + container per device
    assert stored(cse.client, "m1") == (30, t["acked"])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_mqtt_commands_reach_the_devices_and_cleanup_deletes_them(
    mqtt_cse: Callable[..., CSEProcess], mosquitto: Mosquitto, tmp_path: Path
) -> None:
    cse = mqtt_cse()

    def send_commands(_status: dict[str, int]) -> None:
        for i in range(3):
            con = json.dumps({"command": "reboot", "ts": time.time()})
            r = cse.client.create(
                f"cse-in/dev-c1-{i:05d}/cmd", 4, {"m2m:cin": {"con": con}}, origin="CAdmin"
            )
            assert r.rsc == 2001, r.body

    r = simulate(
        tmp_path,
        protocol="mqtt",
        mqtt_port=mosquitto.port,
        devices=5,
        run_id="c1",
        rate=10,
        duration=2,
        commands=True,
        cleanup=True,
        on_ready=send_commands,
    )
    assert r.rc == 0, r.err
    assert r.report["commands"]["received"] == 3
    assert r.report["commands"]["latency"]["p50_ms"] is not None
    assert r.report["cleanup"] == {"deleted": 5, "errors": {}}
    assert stored(cse.client, "c1") == (0, 0)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_http_commands_through_the_notification_server(
    cse_process: Callable[..., CSEProcess], tmp_path: Path
) -> None:
    cse = cse_process()

    def send_command(_status: dict[str, int]) -> None:
        con = json.dumps({"command": "report-now", "ts": time.time()})
        r = cse.client.create("cse-in/dev-c2-00001/cmd", 4, {"m2m:cin": {"con": con}})
        assert r.rsc == 2001, r.body

    r = simulate(
        tmp_path,
        protocol="http",
        cse_url=cse.url,
        devices=3,
        run_id="c2",
        rate=5,
        duration=2,
        commands=True,
        notify_host="127.0.0.1",
        on_ready=send_command,
    )
    assert r.rc == 0, r.err
    assert r.report["commands"]["received"] == 1
    assert r.report["devices"]["setup_ok"] == 12


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_rejected_readings_are_classified_by_rsc(
    cse_process: Callable[..., CSEProcess], tmp_path: Path
) -> None:
    cse = cse_process()

    def break_one_device(_status: dict[str, int]) -> None:
        assert cse.client.delete("cse-in/dev-e1-00000/data").rsc == 2002

    r = simulate(
        tmp_path,
        protocol="http",
        cse_url=cse.url,
        devices=4,
        run_id="e1",
        rate=40,
        duration=2,
        max_inflight=100,  # no backpressure even on a loaded machine: only the 4004s
        on_ready=break_one_device,
    )
    assert r.rc == 1  # 25 % errors is over --max-error-ratio
    assert "more than --max-error-ratio" in r.err
    t = r.totals
    assert t["errors_by_class"] == {"rsc:4004 NOT_FOUND": 20}
    assert_consistent(r)
    found = cse.client.retrieve("cse-in", params={"fu": "1", "ty": "3", "lbl": "m2mcloud/data"})
    stored_cin = sum(cse.client.retrieve(p)["m2m:cnt"]["cni"] for p in found["m2m:uril"])
    assert stored_cin == t["acked"] == 60


# -- against the broker alone ------------------------------------------------------------------


def test_puback_mode_measures_simulator_and_broker(mosquitto: Mosquitto, tmp_path: Path) -> None:
    r = simulate(
        tmp_path,
        protocol="mqtt",
        ack="puback",
        mqtt_port=mosquitto.port,
        devices=200,
        rate=400,
        duration=2,
    )
    assert r.rc == 0, r.err
    assert r.report["devices"]["ready"] == 200
    assert r.totals["acked"] == r.totals["offered"] == 800


def test_echo_answers_and_lost_answers_become_timeouts_and_backpressure(
    mosquitto: Mosquitto, echo: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    def kill_echo(_status: dict[str, int]) -> None:
        echo.terminate()
        echo.wait(10)

    r = simulate(
        tmp_path,
        protocol="mqtt",
        mqtt_port=mosquitto.port,
        devices=5,
        rate=20,
        duration=3,
        timeout=1.0,
        max_inflight=2,
        on_ready=kill_echo,
    )
    assert r.report["devices"]["ready"] == 5  # the echo answered the set-up
    assert r.rc == 1
    classes = r.totals["errors_by_class"]
    assert set(classes) == {"timeout", "backpressure"}, classes
    assert r.totals["acked"] == 0
    assert_consistent(r)


# -- what the operator sees when something is missing -----------------------------------------


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "m2mcloud", "devices", "run", "--progress", "none", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_unreachable_cse_is_one_sentence(tmp_path: Path) -> None:
    port = free_port()
    p = _cli(
        "--protocol",
        "http",
        "--cse-url",
        f"http://127.0.0.1:{port}",
        "--report",
        str(tmp_path / "r.json"),
    )
    assert p.returncode == 3
    assert p.stderr.strip() == (
        f"m2mcloud devices run: cannot reach the CSE at http://127.0.0.1:{port}: Connection refused"
    )
    assert "Traceback" not in p.stderr


def test_unreachable_broker_is_one_sentence() -> None:
    port = free_port()
    p = _cli("--protocol", "mqtt", "--mqtt-port", str(port))
    assert p.returncode == 3
    assert p.stderr.strip() == (
        f"m2mcloud devices run: cannot reach the MQTT broker 127.0.0.1:{port}: Connection refused"
    )


def test_broker_without_a_cse_says_so(mosquitto: Mosquitto, tmp_path: Path) -> None:
    p = _cli(
        "--mqtt-port",
        str(mosquitto.port),
        "--devices",
        "3",
        "--timeout",
        "1",
        "--report",
        str(tmp_path / "r.json"),
        "--plot",
        "",
    )
    assert p.returncode == 3
    assert "no CSE answered on the broker" in p.stderr
    assert "Traceback" not in p.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["devices"]["setup_errors"] == {"timeout": 3}


def test_bad_setting_exits_2() -> None:
    p = _cli("--devices", "zero")
    assert p.returncode == 2
    assert "--devices='zero' is not a valid int" in p.stderr


def test_sigint_stops_cleanly_and_still_writes_the_report(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    report = tmp_path / "r.json"
    env = {
        **os.environ,
        "M2M_DEVICES_PROTOCOL": "mqtt",
        "M2M_DEVICES_ACK": "puback",
        "M2M_DEVICES_MQTT_PORT": str(mosquitto.port),
        "M2M_DEVICES_DEVICES": "20",
        "M2M_DEVICES_RATE": "100",
        "M2M_DEVICES_DURATION": "120",
        "M2M_DEVICES_REPORT": str(report),
        "M2M_DEVICES_PLOT": str(tmp_path / "t.png"),
        "M2M_DEVICES_PROGRESS": "log",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "m2mcloud", "devices", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    assert proc.stderr is not None
    for line in proc.stderr:  # progress lines: wait until readings flow
        if line.startswith("t=") and " total 0/0" not in line:
            break
        assert time.monotonic() < deadline, "no progress line"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    data = json.loads(report.read_text())
    assert data["stopped_by"] == "SIGINT"
    t = data["totals"]
    assert t["offered"] > 0 and t["offered"] == t["acked"] + t["errors"] + t["unfinished"]
    assert data["elapsed_s"] < 60
    assert "stopped by SIGINT" in out
    assert (tmp_path / "t.png").exists()
