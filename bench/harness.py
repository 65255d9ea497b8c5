"""Shared benchmark plumbing: start a real CSE process, drive it with keep-alive HTTP clients,
report throughput and latency percentiles. Benchmarks print figures; they never assert on time."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def cse_process(
    db_url: str, data_dir: Path, *, threads: int = 8, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {
        **os.environ,
        "M2M_HTTP_PORT": str(port),
        "M2M_HTTP_HOST": "127.0.0.1",
        "M2M_DATA_DIR": str(data_dir),
        "M2M_DB_URL": db_url,
        "M2M_LOG_LEVEL": "WARNING",
        "M2M_HTTP_THREADS": str(threads),
        "M2M_MQTT": "false",
        **(extra_env or {}),
    }
    proc = subprocess.Popen([sys.executable, "-m", "m2mcloud", "cse", "serve"], env=env)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the CSE did not become ready in 30 s")
        yield port, proc
    finally:
        proc.terminate()
        proc.wait(30)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


_rqi = itertools.count()


class Client:
    """One keep-alive HTTP connection speaking oneM2M."""

    def __init__(self, port: int, origin: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.origin = origin

    def call(
        self, method: str, path: str, body: Any = None, ty: int | None = None
    ) -> tuple[int, Any]:
        headers = {"X-M2M-Origin": self.origin, "X-M2M-RI": str(next(_rqi)), "X-M2M-RVI": "3"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json" + (f";ty={ty}" if ty else "")
            data = json.dumps(body)
        try:
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError):
            # The server closed an idle keep-alive connection: open a new one, once.
            self.conn.close()
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
        raw = resp.read()
        rsc = int(resp.getheader("X-M2M-RSC", "0"))
        return rsc, json.loads(raw) if raw else None


@dataclass
class Result:
    name: str
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(p / 100 * len(data)))] * 1000

    def line(self) -> str:
        mean = statistics.fmean(self.latencies) * 1000 if self.latencies else float("nan")
        return (
            f"{self.name:<34} {self.rate:8.0f} req/s  ok={self.ok:<7} err={self.errors:<4} "
            f"p50={self.pct(50):6.1f} ms  p99={self.pct(99):6.1f} ms  mean={mean:6.1f} ms"
        )


def run_clients(name: str, workers: list[Callable[[], tuple[int, int]]], seconds: float) -> Result:
    """Run each worker callable in its own thread for `seconds`; a worker call returns
    (expected_rsc, actual_rsc)."""
    result = Result(name)
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def loop(work: Callable[[], tuple[int, int]]) -> None:
        ok = err = 0
        lat: list[float] = []
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            expected, got = work()
            lat.append(time.perf_counter() - t0)
            if expected == got:
                ok += 1
            else:
                err += 1
        with lock:
            result.ok += ok
            result.errors += err
            result.latencies.extend(lat)

    threads = [threading.Thread(target=loop, args=(w,)) for w in workers]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - t0
    return result


@contextmanager
def database(engine: str, tmp: Path) -> Iterator[str]:
    """The database URL of a benchmark: an SQLite file under `tmp`, or a throw-away PostgreSQL
    cluster (started and stopped here)."""
    if engine == "sqlite":
        yield f"sqlite:///{tmp}/sqlite/cse.sqlite"
        return
    from tests.support import PostgresCluster

    cluster = PostgresCluster(tmp / "pg")
    cluster.start()
    try:
        yield cluster.create_database()
    finally:
        cluster.stop()


def machine_line() -> str:
    return (
        f"machine: {platform.node()} {platform.machine()} {platform.release()}, "
        f"python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}"
    )
