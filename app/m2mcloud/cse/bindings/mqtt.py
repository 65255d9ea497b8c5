"""oneM2M MQTT binding (TS-0010) on paho-mqtt.

Requests arrive on `/oneM2M/req/<originator>/<cse-id>/json` (AE registration also on
`/oneM2M/reg_req/...`); the response primitive goes to the matching `/oneM2M/resp/...` (or
`reg_resp`) topic. Every CSE replica connects with its own client id and subscribes through one
shared subscription (`$share/<group>/...`), so the broker hands each request to exactly one
replica. Requests are handled by a few worker threads, each owning the originators that hash to
it, so one device's requests keep their order. Outgoing requests (notifications to AEs reached
over MQTT) are published on `/oneM2M/req/<cse-id>/<receiver>/json`; their responses come back on
`/oneM2M/resp/<cse-id>/<receiver>/json`, which every replica subscribes to without sharing (only
the replica waiting for that request identifier uses it).
"""

from __future__ import annotations

import json
import logging
import queue
import re
import ssl
import threading
import time
import zlib
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from m2mcloud.cse.bindings import serialization as codec
from m2mcloud.cse.bindings.primitive import request_from_primitive, response_primitive
from m2mcloud.cse.constants import RSC
from m2mcloud.cse.errors import CSEError
from m2mcloud.cse.request import Response
from m2mcloud.net import no_delay

if TYPE_CHECKING:
    from m2mcloud.cse.app import Runtime

log = logging.getLogger(__name__)

_TOPIC = re.compile(r"^/oneM2M/(req|reg_req|resp|reg_resp)/([^/]+)/([^/]+)/([^/]+)$")
_STOP = object()


def topic_id(entity: str) -> str:
    """An entity ID as a topic level: '/' is not allowed there, TS-0010 uses ':'."""
    return entity.lstrip("/").replace("/", ":")


class Link:
    """One broker connection: publishes requests and awaits their responses by rqi."""

    def __init__(self, runtime: Runtime, host: str, port: int, client_id: str) -> None:
        cfg = runtime.config
        self.rt = runtime
        self.host, self.port = host, port
        self.cse_topic_id = topic_id(cfg.cse_id)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        if cfg.mqtt_username:
            self.client.username_pw_set(cfg.mqtt_username, cfg.mqtt_password or None)
        if cfg.mqtt_tls:
            self.client.tls_set(ca_certs=cfg.mqtt_ca_file or None, cert_reqs=ssl.CERT_REQUIRED)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(100_000)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_socket_open = no_delay
        self.client.on_message = self._on_message
        self.connected = threading.Event()
        self.last_error = "not connected yet"
        self.pending: dict[str, Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=self.rt.config.mqtt_keepalive)
        self.client.loop_start()

    def stop(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def subscriptions(self) -> list[tuple[str, int]]:
        return [(f"/oneM2M/resp/{self.cse_topic_id}/+/json", 1)]

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection: {reason}"
            log.warning("MQTT %s:%s: %s", self.host, self.port, self.last_error)
            return
        client.subscribe(self.subscriptions())
        self.connected.set()
        log.info("MQTT connected to %s:%s as %s", self.host, self.port, client._client_id.decode())

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        self.last_error = "cannot reach the broker (connection failed)"

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        if not was_connected:
            return  # a refused connection: keep the broker's reason in last_error
        self.last_error = f"disconnected from broker: {reason}"
        if not getattr(self, "closing", False):
            log.warning(
                "MQTT %s:%s %s; reconnecting with backoff", self.host, self.port, self.last_error
            )

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        m = _TOPIC.match(msg.topic)
        if m and m.group(1) == "resp":
            self._on_response(msg)

    def _on_response(self, msg: mqtt.MQTTMessage) -> None:
        try:
            primitive = json.loads(msg.payload)
            rqi = primitive.get("rqi")
        except (ValueError, AttributeError):
            log.info("ignored a malformed response on %s", msg.topic)
            return
        with self._lock:
            future = self.pending.pop(rqi, None) if isinstance(rqi, str) else None
        if future is not None:
            future.set_result(primitive)

    def request(self, receiver: str, primitive: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Publish a request primitive to `receiver` and wait for its response primitive."""
        if not self.connected.wait(timeout):
            raise ConnectionError(f"not connected to MQTT broker {self.host}:{self.port}")
        future: Future[dict[str, Any]] = Future()
        with self._lock:
            self.pending[primitive["rqi"]] = future
        topic = f"/oneM2M/req/{self.cse_topic_id}/{topic_id(receiver)}/json"
        try:
            self.client.publish(topic, json.dumps(primitive, separators=(",", ":")), qos=1)
            return future.result(timeout)
        except FutureTimeout:
            raise TimeoutError(f"no response from {receiver} within {timeout:g} s") from None
        finally:
            with self._lock:
                self.pending.pop(primitive["rqi"], None)


class MQTTBinding(Link):
    """The CSE's own broker connection: takes requests and sends notifications."""

    def __init__(self, runtime: Runtime) -> None:
        cfg = runtime.config
        super().__init__(
            runtime, cfg.mqtt_host, cfg.mqtt_port, client_id=f"{cfg.cse_id}-{runtime.instance_id}"
        )
        from m2mcloud.cse.core import KINDS

        self.attribute_names = frozenset(a for k in KINDS.values() for a in k.attributes)
        self.accepting = True
        self.closing = False
        group = cfg.mqtt_share_group
        self.request_topics = [
            f"$share/{group}//oneM2M/req/+/{self.cse_topic_id}/+",
            f"$share/{group}//oneM2M/reg_req/+/{self.cse_topic_id}/+",
        ]
        n = max(1, cfg.mqtt_workers)
        self.queues: list[queue.Queue[Any]] = [queue.Queue() for _ in range(n)]
        self.threads = [
            threading.Thread(target=self._work, args=(q,), name=f"mqtt-{i}", daemon=True)
            for i, q in enumerate(self.queues)
        ]
        self.links: dict[tuple[str, int], Link] = {}

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        for t in self.threads:
            t.start()
        super().start()
        self.rt.cse.mqtt = self
        self.rt.checks["mqtt"] = self.problem

    def problem(self) -> str | None:
        if self.connected.is_set():
            return None
        return f"MQTT broker {self.host}:{self.port}: {self.last_error}"

    def stop_intake(self) -> None:
        """Take no new MQTT requests: leave the shared subscription (the broker gives new
        requests to the other replicas)."""
        self.accepting = False
        self.intake_stopped = time.monotonic()
        if self.connected.is_set():
            self.client.unsubscribe(self.request_topics)

    def pending_requests(self) -> int:
        """Requests queued or being handled; right after leaving the shared subscription,
        messages the broker had already routed here may still be on their way (count 1)."""
        settling = time.monotonic() - getattr(self, "intake_stopped", 0.0) < 1.0
        return sum(q.unfinished_tasks for q in self.queues) + (1 if settling else 0)

    def stop(self) -> None:
        self.closing = True
        for q in self.queues:
            q.put(_STOP)
        for t in self.threads:
            t.join(5)
        for link in self.links.values():
            link.stop()
        super().stop()

    def subscriptions(self) -> list[tuple[str, int]]:
        subs = super().subscriptions()
        if self.accepting:
            subs += [(t, 1) for t in self.request_topics]
        return subs

    # -- incoming requests ----------------------------------------------------------------------

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        m = _TOPIC.match(msg.topic)
        if m is None:
            log.warning("ignored a message on unexpected topic %r", msg.topic)
            return
        kind, originator = m.group(1), m.group(2)
        if kind == "resp":
            self._on_response(msg)
            return
        if kind == "reg_resp":
            return
        q = self.queues[zlib.crc32(originator.encode()) % len(self.queues)]
        q.put((m, msg.payload, time.perf_counter()))

    def _work(self, q: queue.Queue[Any]) -> None:
        while True:
            item = q.get()
            try:
                if item is _STOP:
                    return
                self._handle(*item)
            except Exception:
                log.exception("MQTT request handling failed")
            finally:
                q.task_done()

    def _handle(self, m: re.Match[str], payload: bytes, received: float) -> None:
        kind, originator, receiver, serialization = m.groups()
        resp_topic = (
            f"/oneM2M/{'reg_resp' if kind == 'reg_req' else 'resp'}/"
            f"{originator}/{receiver}/{serialization}"
        )
        self.rt.lifecycle.begin()
        op_name, ty_name, rqi, to = "INVALID", "", "", None
        try:
            try:
                if serialization not in ("json", "cbor"):
                    raise CSEError(
                        RSC.UNSUPPORTED_MEDIA_TYPE,
                        f"serialization {serialization!r} is not supported; use json or cbor",
                    )
                media = codec.CBOR if serialization == "cbor" else codec.JSON
                try:
                    primitive = codec.decode(media, payload)
                except ValueError as exc:
                    raise CSEError(RSC.BAD_REQUEST, f"the payload is {exc}") from None
                if not isinstance(primitive, dict):
                    raise CSEError(RSC.BAD_REQUEST, "the payload must be a JSON object")
                rqi = str(primitive.get("rqi") or "")
                limit = self.rt.config.max_request_bytes
                if len(payload) > limit:
                    raise CSEError(
                        RSC.BAD_REQUEST, f"the request of {len(payload)} bytes exceeds {limit}"
                    )
                if "fr" not in primitive and originator not in ("C", "S"):
                    primitive["fr"] = originator.replace(":", "/")
                req = request_from_primitive(primitive, self.attribute_names)
                to = req.fr
                op_name, ty_name = req.op.name, str(req.ty or "")
                resp = self.rt.cse.handle(req)
            except CSEError as exc:
                log.info("MQTT request on %s refused: %s", m.string, exc.message)
                resp = Response(rsc=exc.rsc, pc={"m2m:dbg": exc.message}, rqi=rqi)
            out = response_primitive(
                resp, to=to or originator.replace(":", "/"), fr=self.rt.config.csi
            )
            answer = codec.encode(codec.CBOR if serialization == "cbor" else codec.JSON, out)
            self.client.publish(resp_topic, answer, qos=1)
            self.rt.metrics.observe(
                "mqtt", op_name, ty_name, int(resp.rsc), time.perf_counter() - received
            )
        finally:
            self.rt.lifecycle.end()

    # -- outgoing requests (notifications) ------------------------------------------------------

    def notify(self, url: str, payload: dict[str, Any], timeout: float) -> RSC | None:
        """Send a NOTIFY request primitive to the receiver named in an mqtt:// URL's path."""
        parts = urlsplit(url)
        receiver = parts.path.strip("/")
        if not receiver:
            raise ValueError(
                f"{url}: an mqtt:// notification target needs the receiver ID "
                "as its path (mqtt://host:port/<AE-ID>)"
            )
        link = self._link(parts.hostname or "localhost", parts.port or 1883)
        primitive = {
            "op": 5,
            "to": receiver,
            "fr": self.rt.config.csi,
            "rqi": "ntf-" + self.rt.cse.new_id(),
            "rvi": self.rt.config.release,
            "pc": payload,
        }
        answer = link.request(receiver, primitive, timeout)
        try:
            return RSC(int(answer.get("rsc", 0)))
        except ValueError:
            return RSC.INTERNAL_SERVER_ERROR

    def _link(self, host: str, port: int) -> Link:
        same_host = host in (self.host, "localhost", "127.0.0.1") or self.host == host
        if same_host and port == self.port:
            return self
        key = (host, port)
        if key not in self.links:
            link = Link(self.rt, host, port, client_id=f"{self.client._client_id.decode()}-n")
            link.start()
            self.links[key] = link
        return self.links[key]
