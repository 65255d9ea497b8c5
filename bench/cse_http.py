"""CSE over HTTP, one process: contentInstance CREATE with 8 keep-alive clients (each its own
container), RETRIEVE of `la`, discovery, and resident memory after 100,000 stored instances.

    python -m bench.cse_http [--engine sqlite|postgresql|both] [--seconds 20] [--fill 100000]

Targets (issue #2): >= 1,000 creates/s SQLite, >= 600/s PostgreSQL, p99 <= 50 ms, RSS <= 150 MB.
PostgreSQL is a private throw-away cluster started for the run (like the tests).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import (
    Client,
    Result,
    cse_process,
    database,
    machine_line,
    rss_mb,
    run_clients,
)

CLIENTS = 8


def bench_engine(engine: str, db_url: str, data_dir: Path, seconds: float, fill: int) -> list[str]:
    lines = []
    with cse_process(db_url, data_dir) as (port, proc):
        admin = Client(port, "CAdmin")
        clients = []
        for i in range(CLIENTS):
            origin = f"Cbench{i}"
            c = Client(port, origin)
            rsc, _ = c.call(
                "POST",
                "/cse-in",
                {"m2m:ae": {"rn": f"bench{i}", "api": "Nbench", "rr": False, "srv": ["3"]}},
                ty=2,
            )
            assert rsc == 2001, rsc
            rsc, _ = c.call("POST", f"/cse-in/bench{i}", {"m2m:cnt": {"rn": "data"}}, ty=3)
            assert rsc == 2001, rsc
            clients.append(c)
        payload = {
            "m2m:cin": {
                "cnf": "application/json:0",
                "con": '{"temperature":21.4,"humidity":48.2,"ts":1764000000}',
            }
        }

        def workers(
            method: str, path: str, expected: int, body: Any = None, ty: int | None = None
        ) -> list[Callable[[], tuple[int, int]]]:
            """One callable per client; `path` has {i}, the client's own AE."""

            def one(c: Client, i: int) -> Callable[[], tuple[int, int]]:
                return lambda: (expected, c.call(method, path.format(i=i), body, ty=ty)[0])

            return [one(c, i) for i, c in enumerate(clients)]

        create = ("POST", "/cse-in/bench{i}/data", 2001, payload, 4)
        run_clients("warm-up", workers(*create), 2)
        for name, spec, share in (
            ("CREATE cin", create, 1.0),
            ("RETRIEVE la", ("GET", "/cse-in/bench{i}/data/la", 2000), 0.5),
            ("discovery ty=3", ("GET", "/cse-in/bench{i}?fu=1&ty=3", 2000), 0.5),
        ):
            r = run_clients(f"{engine}: {name} (8 clients)", workers(*spec), seconds * share)
            lines.append(r.line())

        # Fill to `fill` stored instances (no mni), then measure resident memory.
        stored = sum(
            admin.call("GET", f"/cse-in/bench{i}/data")[1]["m2m:cnt"]["cni"] for i in range(CLIENTS)
        )
        t0 = time.perf_counter()
        per_client = max(0, (fill - stored) // CLIENTS + 1)
        fill_result = Result("fill")
        import threading

        def fill_one(c: Client, i: int) -> None:
            for _ in range(per_client):
                c.call("POST", f"/cse-in/bench{i}/data", payload, ty=4)

        threads = [threading.Thread(target=fill_one, args=(c, i)) for i, c in enumerate(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        fill_result.seconds = time.perf_counter() - t0
        total = sum(
            admin.call("GET", f"/cse-in/bench{i}/data")[1]["m2m:cnt"]["cni"] for i in range(CLIENTS)
        )
        lines.append(
            f"{engine}: stored contentInstances {total}, CSE RSS "
            f"{rss_mb(proc.pid):.0f} MB (fill took {fill_result.seconds:.0f} s)"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--fill", type=int, default=100_000)
    args = parser.parse_args()
    print(machine_line())
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    with tempfile.TemporaryDirectory() as tmp_name:
        for engine in engines:
            tmp = Path(tmp_name) / engine
            with database(engine, tmp) as url:
                lines = bench_engine(engine, url, tmp / "data", args.seconds, args.fill)
            for line in lines:
                print(line, flush=True)


if __name__ == "__main__":
    main()
