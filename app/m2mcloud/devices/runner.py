"""`m2mcloud devices run`: check the platform is there, set the devices up (staggered), drive the
traffic profile, drain, optionally clean up, then write the report and the timeline.

Exit codes: 0 the run completed within --max-error-ratio; 1 it completed with more errors;
2 bad settings; 3 the CSE or broker cannot be reached, or no device could be set up;
130 / 143 stopped by SIGINT / SIGTERM (the report is still written).
"""

from __future__ import annotations

import logging
import resource
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TextIO

from m2mcloud.devices import profile as profiles
from m2mcloud.devices.config import DevicesConfig
from m2mcloud.devices.device import Device
from m2mcloud.devices.fleet import Fleet, StopFlag, UnreachableError
from m2mcloud.devices.progress import Progress
from m2mcloud.devices.replicas import ReplicaSampler, ReplicaSamplerError
from m2mcloud.devices.report import build_report, summary_table, write_json
from m2mcloud.devices.stats import Recorder

log = logging.getLogger("m2mcloud.devices")

EXIT_OK, EXIT_ERRORS, EXIT_CONFIG, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}


def build_profile(config: DevicesConfig) -> profiles.Profile:
    if config.profile == "file" or config.profile_file:
        if not config.profile_file:
            raise profiles.ProfileError("--profile file needs --profile-file PATH")
        return profiles.load_file(config.profile_file)
    if config.profile == "constant":
        return profiles.constant(config.rate, config.duration)
    if config.profile == "step":
        return profiles.steps(profiles.parse_steps(config.steps))
    return profiles.ramp(
        config.base_rate, config.rate, config.ramp_up, config.plateau, config.ramp_down
    )


def raise_fd_limit(needed: int) -> int:
    """Raise the soft open-files limit towards the hard one (each MQTT device is a socket)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        return want
    return soft


@contextmanager
def stop_on_signals(stop: StopFlag) -> Iterator[None]:
    """SIGINT/SIGTERM stop the run (a second one skips the drain); restored afterwards."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        stop.request(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def make_fleet(config: DevicesConfig, devices: list[Device], recorder: Recorder) -> Fleet:
    if config.protocol == "mqtt":
        from m2mcloud.devices.mqtt_fleet import MQTTFleet

        return MQTTFleet(config, devices, recorder)
    from m2mcloud.devices.http_fleet import HTTPFleet

    return HTTPFleet(config, devices, recorder)


def _no_device_hint(config: DevicesConfig, setup_errors: dict[str, int]) -> str:
    if config.protocol == "mqtt" and set(setup_errors) == {"timeout"}:
        return (
            f"no CSE answered on the broker {config.mqtt_host}:{config.mqtt_port}: is a CSE "
            f"running with its MQTT binding on this broker, with CSE-ID {config.cse_id!r} "
            "(--cse-id)?"
        )
    return f"no device could be set up (setup errors: {setup_errors})"


def run(
    config: DevicesConfig,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stop: StopFlag | None = None,
    on_ready: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    prefix = "m2mcloud devices run"
    try:
        profile = build_profile(config)
    except profiles.ProfileError as exc:
        print(f"{prefix}: {exc}", file=err)
        return EXIT_CONFIG
    raise_fd_limit(config.devices * 3 + 256)
    recorder = Recorder()
    devices = [
        Device(i, config.run_id, config.cse_name, seed=config.seed) for i in range(config.devices)
    ]
    stop = stop or StopFlag()
    progress = Progress(recorder, config.progress, config.progress_interval, stream=err)
    sampler: ReplicaSampler | None = None
    if config.kube_context or config.kubeconfig or config.kube_in_cluster:
        try:
            sampler = ReplicaSampler(
                namespace=config.kube_namespace,
                deployment=config.kube_deployment,
                context=config.kube_context,
                kubeconfig=config.kubeconfig,
                in_cluster=config.kube_in_cluster,
            )
            sampler.check()
        except ReplicaSamplerError as exc:
            print(f"{prefix}: {exc}", file=err)
            return EXIT_CONFIG
    try:
        fleet: Fleet = make_fleet(config, devices, recorder)
        fleet.open()
    except UnreachableError as exc:
        print(f"{prefix}: {exc}", file=err)
        return EXIT_UNREACHABLE

    ready = 0
    elapsed = 0.0
    with stop_on_signals(stop):
        try:
            if sampler is not None:
                sampler.start()
            progress.message(
                f"run {config.run_id}: {config.devices} devices over {config.protocol} "
                f"(ack: {config.ack}), profile {profile.name} {profile.duration:g} s, "
                f"peak {profile.peak_rate:g}/s"
            )
            ready = fleet.setup(config.stagger_seconds, stop, progress.setup_tick(fleet.status))
            progress.done()
            if ready and not stop:
                if on_ready is not None:
                    on_ready(fleet.status())
                recorder.start()
                recorder.horizon = profile.duration
                t0 = recorder.t0
                schedule = profiles.Schedule(profile)
                fleet.drive(
                    lambda now: schedule.due(now - t0),
                    lambda now: now - t0 >= profile.duration,
                    stop,
                    progress.run_tick(lambda now: profile.rate_at(now - t0)),
                )
                elapsed = time.monotonic() - t0
                progress.done()
                recorder.finish(fleet.drain(config.timeout, stop))
            if config.cleanup and not stop.forced.is_set():
                fleet.cleanup(stop)
        finally:
            fleet.close()
            if sampler is not None:
                sampler.stop()
            progress.done()

    replicas = []
    if sampler is not None:
        replicas = [(t - recorder.t0, r, rd) for t, r, rd in sampler.samples]
    report = build_report(
        recorder,
        profile,
        settings=config.public(),
        elapsed=elapsed,
        stopped_by=stop.reason,
        replicas=replicas,
        devices_ready=ready,
        extra={"mqtt": _mqtt_extra(fleet)} if config.protocol == "mqtt" else None,
    )
    if config.report:
        path = write_json(report, config.report)
        print(f"report: {path}", file=out)
    if config.plot and report["series"]:
        from m2mcloud.devices.plot import plot_timeline

        print(f"timeline: {plot_timeline(report, config.plot)}", file=out)
    print(summary_table(report), file=out)
    if stop.reason:
        return EXIT_SIGNAL.get(stop.reason, 130)
    if not ready:
        print(f"{prefix}: {_no_device_hint(config, report['devices']['setup_errors'])}", file=err)
        return EXIT_UNREACHABLE
    if report["totals"]["error_ratio"] > config.max_error_ratio:
        print(
            f"{prefix}: {report['totals']['errors']} errors, more than --max-error-ratio "
            f"{config.max_error_ratio:g} of the readings offered",
            file=err,
        )
        return EXIT_ERRORS
    return EXIT_OK


def _mqtt_extra(fleet: Any) -> dict[str, int]:
    return {
        "disconnects": int(getattr(fleet, "disconnects", 0)),
        "reconnect_failures": int(getattr(fleet, "reconnect_failures", 0)),
    }
