"""The application factory: config -> store -> core -> Falcon app, plus the operational endpoints
(/healthz, /readyz, /metrics) and the oneM2M Upper Tester endpoint used by conformance suites."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import falcon

from m2mcloud.cse.bindings.http import OneM2MSink
from m2mcloud.cse.config import CSEConfig
from m2mcloud.cse.core import CSE, random_id
from m2mcloud.cse.lifecycle import ExpirySweeper, Lifecycle
from m2mcloud.cse.metrics import Metrics
from m2mcloud.cse.store import Store, open_store

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything one CSE process holds; the bindings and the server share it."""

    config: CSEConfig
    store: Store
    cse: CSE
    metrics: Metrics
    lifecycle: Lifecycle
    sweeper: ExpirySweeper
    instance_id: str
    app: falcon.App[falcon.Request, falcon.Response] = field(init=False)
    checks: dict[str, Callable[[], str | None]] = field(default_factory=dict)

    def start_background(self) -> None:
        self.cse.notifier.start()
        self.sweeper.start()

    def stop_background(self, timeout: float = 10.0) -> None:
        self.sweeper.stop()
        self.cse.notifier.stop(timeout)

    def readiness(self) -> dict[str, str]:
        """Problems that make this process unready, by component (empty: ready)."""
        problems: dict[str, str] = {}
        if self.lifecycle.draining:
            problems["process"] = "shutting down"
        try:
            self.store.ping()
        except Exception as exc:
            problems["database"] = f"unreachable: {type(exc).__name__}: {exc}"[:300]
        for name, check in self.checks.items():
            problem = check()
            if problem:
                problems[name] = problem
        return problems


def build_runtime(
    config: CSEConfig,
    *,
    store: Store | None = None,
    clock: Callable[[], float] = time.time,
    new_id: Callable[[], str] = random_id,
) -> Runtime:
    if store is None:
        store = open_store(
            config.database_url, pool_size=max(config.db_pool_size, config.http_threads + 2)
        )
    cse = CSE(config, store, clock=clock, new_id=new_id)
    cse.bootstrap()
    instance_id = f"{socket.gethostname()}-{os.getpid()}-{random_id()[:6]}"
    runtime = Runtime(
        config=config,
        store=store,
        cse=cse,
        metrics=Metrics(),
        lifecycle=Lifecycle(),
        sweeper=ExpirySweeper(cse, config.expiry_interval, instance_id),
        instance_id=instance_id,
    )
    runtime.app = _falcon_app(runtime)
    return runtime


def create_app(config: CSEConfig | None = None) -> falcon.App[falcon.Request, falcon.Response]:
    """The WSGI app for `config` (default: from the M2M_* environment), background work started."""
    runtime = build_runtime(config or CSEConfig.from_env())
    runtime.start_background()
    return runtime.app


def _falcon_app(runtime: Runtime) -> falcon.App[falcon.Request, falcon.Response]:
    app = falcon.App(media_type="application/json")
    app.req_options.auto_parse_qs_csv = False
    app.req_options.keep_blank_qs_values = True
    app.add_route("/healthz", _Health())
    app.add_route("/readyz", _Ready(runtime))
    app.add_route("/metrics", _MetricsEndpoint(runtime))
    if runtime.config.upper_tester:
        app.add_route("/__ut__", _UpperTester(runtime))
    sink = OneM2MSink(runtime)
    app.add_sink(sink, prefix="/")
    return app


class _Health:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


class _Ready:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        problems = self.rt.readiness()
        self.rt.metrics.ready.set(0 if problems else 1)
        resp.status = falcon.HTTP_503 if problems else falcon.HTTP_200
        resp.media = {"ready": not problems, "problems": problems}


class _MetricsEndpoint:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        n = self.rt.cse.notifier
        gauge = self.rt.metrics.notifications
        gauge.labels("sent").set(n.sent)
        gauge.labels("failed").set(n.failed)
        gauge.labels("dropped").set(n.dropped)
        gauge.labels("queued").set(n.pending())
        resp.content_type = "text/plain; version=0.0.4; charset=utf-8"
        resp.data = self.rt.metrics.render()


class _UpperTester:
    """The oneM2M Upper Tester interface (TS-0013 conformance testing): commands in
    X-M2M-UTCMD, results in X-M2M-UTRSP. Loopback clients only: it can reset the CSE."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.default_interval = runtime.config.expiry_interval

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.set_header("X-M2M-RSC", "2000")
        resp.content_type = "application/json"
        if not _is_loopback(req.remote_addr):
            resp.status = falcon.HTTP_403
            resp.set_header("X-M2M-RSC", "4103")
            return
        command, _, arg = (req.get_header("X-M2M-UTCMD") or "").strip().partition(" ")
        name = command.lower()
        rt = self.rt
        if name == "status":
            resp.set_header("X-M2M-UTRSP", "STOPPING" if rt.lifecycle.draining else "RUNNING")
        elif name == "reset":
            rt.store.reset()
            rt.cse.bootstrap()
            log.warning("upper tester: the CSE was reset to its initial state")
        elif name == "enableshortresourceexpiration":
            try:
                seconds = float(arg or 2)
            except ValueError:
                resp.status = falcon.HTTP_400
                resp.set_header("X-M2M-RSC", "4000")
                return
            old = rt.sweeper.set_interval(seconds)
            resp.set_header("X-M2M-UTRSP", f"{_num(old)},{rt.config.max_expiration_seconds}")
        elif name == "disableshortresourceexpiration":
            rt.sweeper.set_interval(self.default_interval)
        elif name in ("enableshortrequestexpiration", "disableshortrequestexpiration"):
            resp.set_header("X-M2M-UTRSP", "0.0")
        elif name in ("testcasestart", "testcaseend"):
            log.info("upper tester: %s %s", command, arg)
        else:
            resp.status = falcon.HTTP_501
            resp.set_header("X-M2M-RSC", "5001")
            resp.data = json.dumps(
                {"m2m:dbg": f"unknown upper tester command {command!r}"}
            ).encode()


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _is_loopback(addr: str | None) -> bool:
    try:
        return addr is not None and ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False
