"""The standard benchmark of the platform: the CSE under the device simulator, over HTTP and
MQTT, on SQLite and PostgreSQL, with 1 and 2 CSE processes sharing the database (and, for MQTT,
the broker's shared subscription; for HTTP the devices are spread over both processes' ports, as
a Kubernetes Service would spread them).

    python -m bench.platform_bench [--devices 200] [--steps 8:100,8:200,8:400,8:800]
        [--protocols http,mqtt] [--engines sqlite,postgresql] [--processes 1,2] [--out docs]

Writes <out>/platform-benchmark.md (the table, the machine and its load average) and
<out>/platform-benchmark.png (acknowledged rate and p99 latency of every case over time).
Figures, not assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support import Mosquitto, PostgresCluster

from bench.devices_support import fmt_ms, loadavg, raise_fd_limit, run_simulator, step_summaries
from bench.harness import cse_process, rss_mb


def run_case(
    protocol: str,
    engine: str,
    processes: int,
    args: argparse.Namespace,
    broker: Mosquitto,
    pg: PostgresCluster | None,
    tmp: Path,
) -> dict[str, Any]:
    name = f"{protocol}-{engine}-{processes}p"
    data = tmp / name
    data.mkdir()
    db_url = f"sqlite:///{data}/cse.sqlite" if engine == "sqlite" else pg.create_database()  # type: ignore[union-attr]
    env = {
        "M2M_MQTT": "true" if protocol == "mqtt" else "false",
        "M2M_MQTT_HOST": "127.0.0.1",
        "M2M_MQTT_PORT": str(broker.port),
    }
    load_before = loadavg()
    with contextlib.ExitStack() as stack:
        cses = [
            stack.enter_context(cse_process(db_url, data / f"p{i}", extra_env=env))
            for i in range(processes)
        ]
        sim_args = [
            "--protocol",
            protocol,
            "--devices",
            str(args.devices),
            "--profile",
            "step",
            "--steps",
            args.steps,
            "--run-id",
            name.replace("-", ""),
            "--plot",
            "",
            "--max-error-ratio",
            "1",
            "--timeout",
            "10",
            "--stagger",
            str(max(1.0, args.devices / 200)),
        ]
        if protocol == "mqtt":
            sim_args += ["--mqtt-port", str(broker.port)]
        else:
            urls = ",".join(f"http://127.0.0.1:{port}" for port, _ in cses)
            sim_args += ["--cse-url", urls, "--http-workers", str(args.http_workers)]
        run = run_simulator(sim_args, data / "report.json")
        cse_rss = [rss_mb(proc.pid) for _, proc in cses]
    if engine == "postgresql" and pg is not None:
        pg.drop_database(db_url)
    return {
        "name": name,
        "protocol": protocol,
        "engine": engine,
        "processes": processes,
        "run": run,
        "steps": step_summaries(run.report) if run.report else [],
        "cse_rss": cse_rss,
        "load_before": load_before,
        "load_after": loadavg(),
    }


def _commit() -> str:
    """The commit measured: M2M_BENCH_COMMIT (a snapshot has no .git), else git's HEAD."""
    if os.environ.get("M2M_BENCH_COMMIT"):
        return os.environ["M2M_BENCH_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def write_markdown(cases: list[dict[str, Any]], args: argparse.Namespace, path: Path) -> None:
    steps = [s.split(":")[1] for s in args.steps.split(",")]
    lines = [
        "# Platform benchmark: the CSE under the device simulator",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on `{platform.node()}` "
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}) with "
        f"`python -m bench.platform_bench --devices {args.devices} --steps {args.steps}`"
        f" at commit {_commit()}.",
        "The simulator, Mosquitto, PostgreSQL and the CSE processes all share this machine; "
        "load averages (1/5/15 min) are given per case because other work was running on it.",
        "",
        f"{args.devices} devices (each its own AE, container and connection) send readings at "
        f"stepped rates of {', '.join(steps)} per second; every cell shows the acknowledged rate "
        "(contentInstances stored per second, mean of each step without its first second) and "
        "that step's p99 latency.",
        "",
        "| protocol | store | CSE processes | "
        + " | ".join(f"{s}/s: acked/s (p99 ms)" for s in steps)
        + " | errors | CSE RSS MB | load avg before → after |",
        "|---|---|---|" + "---|" * len(steps) + "---|---|---|",
    ]
    for c in cases:
        run = c["run"]
        cells = [f"{s['acked']:.0f} ({fmt_ms(s['p99_ms'])})" for s in c["steps"]]
        cells += ["-"] * (len(steps) - len(cells))
        errors = run.report.get("totals", {}).get("errors_by_class", {}) if run.report else {}
        err = ", ".join(f"{k}: {v}" for k, v in errors.items()) or "0"
        if not run.report:
            err = f"simulator exit {run.rc}"
        lines.append(
            f"| {c['protocol']} | {c['engine']} | {c['processes']} | "
            + " | ".join(cells)
            + f" | {err} | {' + '.join(f'{x:.0f}' for x in c['cse_rss'])} | "
            f"{c['load_before']} → {c['load_after']} |"
        )
    lines += [
        "",
        "![acknowledged rate and p99 latency over time](platform-benchmark.png)",
        "",
    ]
    path.write_text("\n".join(lines))


def write_png(cases: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rate, ax_lat) = plt.subplots(2, 1, sharex=True, figsize=(12, 7))
    first = next((c for c in cases if c["run"].report), None)
    if first is not None:
        s = first["run"].report["series"]
        ax_rate.plot(
            [p["t"] + 0.5 for p in s],
            [p["target_rate"] for p in s],
            ":",
            color="black",
            linewidth=2,
            label="target",
        )
    colors = [
        "tab:blue",
        "tab:orange",
        "tab:green",
        "tab:red",
        "tab:purple",
        "tab:brown",
        "tab:pink",
        "tab:olive",
        "tab:cyan",
    ]
    for i, c in enumerate(cases):
        rep = c["run"].report
        if not rep:
            continue
        s = rep["series"]
        t = [p["t"] + 0.5 for p in s]
        style = "-" if c["processes"] == 1 else "--"
        color = colors[i % len(colors)]
        ax_rate.plot(t, [p["acked"] for p in s], style, color=color, label=c["name"])
        ax_lat.plot(
            t,
            [p["p99_ms"] if p["p99_ms"] else float("nan") for p in s],
            style,
            color=color,
            label=c["name"],
        )
    ax_rate.set_ylabel("acknowledged / s")
    ax_rate.legend(fontsize="small", ncol=3)
    ax_rate.grid(alpha=0.3)
    ax_lat.set_ylabel("p99 latency (ms)")
    ax_lat.set_yscale("log")
    ax_lat.set_xlabel("time since the load started (s)")
    ax_lat.grid(alpha=0.3)
    fig.suptitle("m2mcloud CSE under the device simulator (stepped load)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--steps", default="8:100,8:200,8:400,8:800")
    parser.add_argument("--protocols", default="http,mqtt")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--http-workers", type=int, default=32)
    parser.add_argument("--out", default="docs")
    args = parser.parse_args()
    raise_fd_limit()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {loadavg()}", flush=True)
    cases = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = Mosquitto(tmp / "mosquitto")
        broker.start()
        pg: PostgresCluster | None = None
        engines = args.engines.split(",")
        try:
            if "postgresql" in engines:
                # Not under the private temporary directory: the postgres user must reach it.
                cluster = PostgresCluster(Path("/tmp") / f"m2m-bench-pg-{os.getpid()}")
                cluster.start()
                pg = cluster
            for protocol in args.protocols.split(","):
                for engine in engines:
                    for processes in (int(x) for x in args.processes.split(",")):
                        try:
                            c = run_case(protocol, engine, processes, args, broker, pg, tmp)
                        except RuntimeError as exc:  # e.g. a CSE that did not start
                            print(f"{protocol}-{engine}-{processes}p failed: {exc}", flush=True)
                            continue
                        cases.append(c)
                        cells = "  ".join(
                            f"{s['target']:.0f}->{s['acked']:.0f}/s p99 {fmt_ms(s['p99_ms'])}"
                            for s in c["steps"]
                        )
                        print(f"{c['name']:<20} {cells}  load {c['load_after']}", flush=True)
        finally:
            if pg is not None:
                pg.stop()
                shutil.rmtree(pg.base, ignore_errors=True)
            broker.stop()
    write_markdown(cases, args, out / "platform-benchmark.md")
    # The per-second series of every case, to re-plot or compare later.
    (out / "platform-benchmark.json").write_text(
        json.dumps(
            [
                {k: c[k] for k in ("name", "steps", "cse_rss", "load_before", "load_after")}
                | {"totals": c["run"].report.get("totals"), "series": c["run"].report.get("series")}
                for c in cases
            ],
            separators=(",", ":"),
        )
    )
    write_png(cases, out / "platform-benchmark.png")
    print(f"wrote {out / 'platform-benchmark.md'} and {out / 'platform-benchmark.png'}")


if __name__ == "__main__":
    main()
