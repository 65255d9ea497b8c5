"""The simulator's own ceiling: one `m2mcloud devices run` process against a real Mosquitto,
with no CSE — measured apart from the platform.

    python -m bench.devices_ceiling [--devices 1000] [--steps 10:1000,10:2000,10:3000]
                                    [--echo-processes 1] [--mode puback|echo|both]

puback: a reading counts as acknowledged on the broker's PUBACK (MQTT QoS 1): simulator + broker.
echo:   full oneM2M request/response primitives, answered by `m2mcloud devices echo` (a stand-in
        CSE that stores nothing) through a shared subscription: simulator + broker + responder.
Prints devices connected, offered/acked rate per step, latency, the simulator's peak RSS and CPU.
Figures, not assertions; the machine's load average is printed with them.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support import Mosquitto

from bench.devices_support import fmt_ms, loadavg, raise_fd_limit, run_simulator, step_summaries


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--steps", default="10:1000,10:2000,10:3000")
    parser.add_argument("--mode", choices=["puback", "echo", "both"], default="both")
    parser.add_argument("--echo-processes", type=int, default=1)
    parser.add_argument("--png", default="", help="also write the last run's timeline here")
    args = parser.parse_args()
    raise_fd_limit()
    print(
        f"machine: {platform.node()} {platform.machine()}, {platform.python_version()}, "
        f"load average before: {loadavg()}",
        flush=True,
    )
    modes = ["puback", "echo"] if args.mode == "both" else [args.mode]
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto")
        broker.start()
        try:
            for mode in modes:
                echo = None
                sim_args = [
                    "--protocol",
                    "mqtt",
                    "--mqtt-port",
                    str(broker.port),
                    "--devices",
                    str(args.devices),
                    "--profile",
                    "step",
                    "--steps",
                    args.steps,
                    "--stagger",
                    str(max(2.0, args.devices / 500)),
                    "--max-error-ratio",
                    "1",
                    "--plot",
                    args.png or "",
                ]
                if mode == "puback":
                    sim_args += ["--ack", "puback"]
                else:
                    echo = subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "m2mcloud",
                            "devices",
                            "echo",
                            "--mqtt-port",
                            str(broker.port),
                            "--processes",
                            str(args.echo_processes),
                        ],
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                    assert echo.stdout is not None
                    for _ in range(args.echo_processes):  # one line per subscribed responder
                        echo.stdout.readline()
                try:
                    r = run_simulator(sim_args, Path(tmp) / f"{mode}.json")
                finally:
                    if echo is not None:
                        echo.terminate()
                        echo.wait(10)
                rep = r.report
                if not rep:
                    print(f"{mode}: the simulator failed (exit {r.rc}): {r.stderr_tail}")
                    continue
                tot = rep["totals"]
                print(
                    f"\n{mode}: {rep['devices']['ready']}/{args.devices} devices connected and "
                    f"ready (setup p50 {fmt_ms(rep['devices']['setup_latency']['p50_ms'])} ms); "
                    f"simulator peak RSS {r.peak_rss_mb:.0f} MB, CPU {r.cpu_seconds:.1f} s over "
                    f"{r.wall_seconds:.1f} s wall; load average after: {loadavg()}"
                )
                print(
                    f"  {'target/s':>9} {'offered/s':>10} {'acked/s':>9} {'errors':>7} "
                    f"{'p50 ms':>8} {'p99 ms':>8}"
                )
                for s in step_summaries(rep):
                    print(
                        f"  {s['target']:>9.0f} {s['offered']:>10.0f} {s['acked']:>9.0f} "
                        f"{s['errors']:>7} {fmt_ms(s['p50_ms']):>8} {fmt_ms(s['p99_ms']):>8}"
                    )
                print(
                    f"  total offered {tot['offered']}, acked {tot['acked']}, errors "
                    f"{tot['errors_by_class']}, unfinished {tot['unfinished']}",
                    flush=True,
                )
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
