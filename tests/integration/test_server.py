"""The CSE as a real process: waitress on a port, configuration, graceful SIGTERM."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.integration.conftest import CSEProcess
from tests.support import NotificationReceiver, Reply

pytestmark = pytest.mark.integration


def test_serves_onem2m_over_real_http(
    cse_process: Callable[..., CSEProcess], receiver: NotificationReceiver
) -> None:
    cse = cse_process()
    c = cse.client
    ae = c.register("sensor", origin="Csensor")
    assert ae.headers["content-location"] == "cse-in/sensor"
    assert (
        c.create("cse-in/sensor", 3, {"m2m:cnt": {"rn": "temp", "mni": 5}}, origin="Csensor").rsc
        == 2001
    )
    sub = c.create(
        "cse-in/sensor/temp",
        23,
        {"m2m:sub": {"nu": [receiver.url], "enc": {"net": [3]}}},
        origin="Csensor",
    )
    assert sub.rsc == 2001
    for i in range(8):
        r = c.create("cse-in/sensor/temp", 4, {"m2m:cin": {"con": str(20 + i)}}, origin="Csensor")
        assert r.rsc == 2001 and r.status == 201
    cnt = c.retrieve("cse-in/sensor/temp", origin="Csensor")["m2m:cnt"]
    assert (cnt["cni"], cnt["cbs"]) == (5, 10)
    assert c.retrieve("~/id-in/cse-in/sensor/temp/la", origin="Csensor")["m2m:cin"]["con"] == "27"
    got = receiver.wait_for(9)
    assert [n["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"] for n in got[1:]] == [
        str(20 + i) for i in range(8)
    ]
    metrics = requests.get(cse.url + "/metrics", timeout=5).text
    assert 'm2m_requests_total{binding="http",op="CREATE",rsc="2001",ty="4"} 8.0' in metrics
    assert cse.terminate() == 0


def test_flags_override_environment(cse_process: Callable[..., CSEProcess]) -> None:
    cse = cse_process(
        "--cse-name",
        "edge",
        "--cse-id",
        "id-edge",
        env={"M2M_CSE_NAME": "ignored", "M2M_SP_ID": "sp.example"},
    )
    cb = cse.client.retrieve("edge")
    assert cb.rsc == 2000 and cb["m2m:cb"]["csi"] == "/id-edge"
    assert cse.client.retrieve("_/sp.example/id-edge/edge").rsc == 2000
    assert cse.terminate() == 0


def test_bad_setting_is_one_clear_line() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "m2mcloud", "cse", "serve", "--http-port", "eighty"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "--http-port='eighty' is not a valid int" in r.stderr
    assert "Traceback" not in r.stderr


def test_unreachable_database_is_one_clear_line(tmp_path: Any) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "m2mcloud",
            "cse",
            "serve",
            "--db-url",
            "postgresql+psycopg://nobody:secret@127.0.0.1:9/none",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "cannot start the CSE" in r.stderr and "secret" not in r.stderr
    assert "Traceback" not in r.stderr


def test_sigterm_finishes_in_flight_work_then_exits_zero(
    cse_process: Callable[..., CSEProcess],
) -> None:
    cse = cse_process()
    c = cse.client
    c.register("slow", origin="Cslow")
    result: dict[str, Reply] = {}

    def slow_create() -> None:
        # X-M2M-OET holds the request in the CSE for ~1.5 s: it is in flight at SIGTERM.
        result["r"] = c.create(
            "cse-in/slow",
            3,
            {"m2m:cnt": {"rn": "late"}},
            origin="Cslow",
            headers={"X-M2M-OET": "1500"},
        )

    t = threading.Thread(target=slow_create)
    t.start()
    time.sleep(0.5)
    started = time.monotonic()
    assert cse.terminate(timeout=30) == 0
    t.join(10)
    assert result["r"].rsc == 2001  # the in-flight request was finished, not dropped
    assert time.monotonic() - started >= 0.5
    assert "stopped cleanly" in cse.log()
    with pytest.raises(requests.ConnectionError):
        requests.get(cse.url + "/healthz", timeout=2)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_readyz_reports_a_lost_database(
    cse_process: Callable[..., CSEProcess], db_url: str, request: pytest.FixtureRequest
) -> None:
    # Only a database server can go away under a running CSE (an SQLite file cannot).
    cse = cse_process()
    cluster = request.getfixturevalue("postgres")
    import psycopg

    name = db_url.rsplit("/", 1)[1]
    with psycopg.connect(
        f"host=127.0.0.1 port={cluster.port} user=postgres dbname=postgres", autocommit=True
    ) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
    try:
        r = requests.get(cse.url + "/readyz", timeout=10)
        assert r.status_code == 503 and "database" in r.json()["problems"]
        assert requests.get(cse.url + "/healthz", timeout=5).status_code == 200
    finally:
        with psycopg.connect(
            f"host=127.0.0.1 port={cluster.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    deadline = time.time() + 10
    while (
        time.time() < deadline and requests.get(cse.url + "/readyz", timeout=5).status_code != 200
    ):
        time.sleep(0.2)
    assert requests.get(cse.url + "/readyz", timeout=5).status_code == 200


def test_body_beyond_the_limit_is_refused_with_an_rsc(
    cse_process: Callable[..., CSEProcess],
) -> None:
    cse = cse_process(env={"M2M_MAX_REQUEST_BYTES": "1000"})
    headers = {
        "X-M2M-Origin": "CAdmin",
        "X-M2M-RI": "big",
        "X-M2M-RVI": "3",
        "Content-Type": "application/json;ty=3",
    }
    r = requests.post(cse.url + "/cse-in", data=b"x" * 100_000, headers=headers, timeout=10)
    assert r.status_code == 413 and r.headers["X-M2M-RSC"] == "4000"
    assert "m2m:dbg" in r.json()
    just_over = requests.post(cse.url + "/cse-in", data=b" " * 1001, headers=headers, timeout=10)
    assert just_over.headers["X-M2M-RSC"] == "4000"
    assert cse.client.retrieve("cse-in").rsc == 2000
