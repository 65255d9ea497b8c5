"""`m2mcloud cse serve`: the CSE process — waitress for HTTP, background workers, and a graceful
SIGTERM (unready, no new connections, finish in-flight work, flush responses, exit 0)."""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from types import FrameType
from typing import Any

from waitress import create_server, wasyncore
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask, WSGITask

from m2mcloud.cse.app import Runtime, build_runtime
from m2mcloud.cse.config import CSEConfig

log = logging.getLogger("m2mcloud.cse")

SHUTDOWN_GRACE_SECONDS = 25.0  # below Kubernetes' default terminationGracePeriodSeconds (30)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)


def serve(config: CSEConfig) -> int:
    configure_logging(config.log_level)
    try:
        runtime = build_runtime(config)
    except Exception as exc:
        log.error("cannot start the CSE: %s", exc)
        return 2
    try:
        server = create_server(
            runtime.app,
            host=config.http_host,
            port=config.http_port,
            threads=config.http_threads,
            connection_limit=config.http_connection_limit,
            channel_timeout=120,
            ident="m2mcloud-cse",
            max_request_body_size=config.max_request_bytes + 1,
        )
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", config.http_host, config.http_port, exc)
        runtime.store.close()
        return 2
    server.channel_class = _drain_aware_channel(runtime)
    runtime.start_background()
    binding = None
    if config.mqtt:
        from m2mcloud.cse.bindings.mqtt import MQTTBinding

        binding = MQTTBinding(runtime)
        binding.start()
    stopping: dict[str, float] = {}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stopping:
            return
        log.info("received %s: draining (unready, no new work)", signal.Signals(signum).name)
        runtime.lifecycle.drain()
        stopping["deadline"] = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        if binding is not None:
            binding.stop_intake()
        # Runs in the main thread, which is the event loop's thread: safe to close the listener.
        server.accepting = False
        wasyncore.dispatcher.close(server)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info(
        "CSE %s (%s) serving HTTP on %s:%s root %s, MQTT %s, database %s",
        config.cse_id,
        config.cse_name,
        server.effective_host,
        server.effective_port,
        config.http_root,
        f"{config.mqtt_host}:{config.mqtt_port}" if binding else "off",
        config.describe()["db_url"],
    )
    while True:
        wasyncore.loop(timeout=0.2, map=server._map, use_poll=True, count=1)
        if stopping and (
            _idle(runtime, server, binding) or time.monotonic() > stopping["deadline"]
        ):
            break
    return _shutdown(runtime, server, binding)


def _drain_aware_channel(runtime: Runtime) -> type[HTTPChannel]:
    """While draining, every response carries `Connection: close`: clients do not reuse the
    connection, so their next request opens a new one and reaches another replica. (A WSGI app
    may not set hop-by-hop headers itself; waitress adds it when the request asks to close.)"""

    class Task(WSGITask):  # type: ignore[misc]
        def build_response_header(self) -> bytes:
            if runtime.lifecycle.draining:
                self.request.headers["CONNECTION"] = "close"
            return bytes(super().build_response_header())

    class Error(ErrorTask):  # type: ignore[misc]
        """Requests waitress itself refuses (body over the size limit, malformed HTTP) still
        get a oneM2M answer: X-M2M-RSC and a JSON m2m:dbg."""

        def execute(self) -> None:
            error = self.request.error
            rsc = "4000" if 400 <= error.code < 500 else "5000"
            body = json.dumps({"m2m:dbg": f"{error.reason}: {error.body}"}).encode()
            self.status = f"{error.code} {error.reason}"
            self.response_headers.extend([("Content-Type", "application/json"), ("X-M2M-RSC", rsc)])
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    class Channel(HTTPChannel):  # type: ignore[misc]
        task_class = Task
        error_task_class = Error

    return Channel


def _idle(runtime: Runtime, server: Any, binding: Any) -> bool:
    if runtime.lifecycle.in_flight or server.task_dispatcher.queue:
        return False
    if binding is not None and binding.pending_requests():
        return False
    for channel in list(server._map.values()):
        if isinstance(channel, HTTPChannel) and (channel.requests or channel.total_outbufs_len):
            return False
    return True


def _shutdown(runtime: Runtime, server: Any, binding: Any) -> int:
    left = runtime.lifecycle.in_flight
    if left:
        log.warning("grace period over with %d request(s) still in flight", left)
    server.task_dispatcher.shutdown(timeout=5)
    wasyncore.close_all(server._map)
    if binding is not None:
        binding.stop()  # responses already published; disconnect cleanly
    runtime.stop_background()
    runtime.store.close()
    log.info("stopped cleanly")
    return 0
