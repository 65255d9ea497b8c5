"""Devices over MQTT (oneM2M TS-0010): every device is its own paho client with its own TCP
connection and client id, and one thread multiplexes all their sockets with `selectors`, driving
paho's external-loop API (`loop_read`, `loop_write`, `loop_misc`). No thread per device.

Topics, with the CSE-ID without its leading slash:
  AE registration  /oneM2M/reg_req/<originator>/<cse-id>/json -> /oneM2M/reg_resp/<originator>/...
  other requests   /oneM2M/req/<originator>/<cse-id>/json     -> /oneM2M/resp/<originator>/...
  notifications    /oneM2M/req/<cse-id>/<originator>/json     -> /oneM2M/resp/<cse-id>/<orig.>/...
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import selectors
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from m2mcloud.devices.config import DevicesConfig
from m2mcloud.devices.device import CREATE, NOTIFY, RSC_OK, TY_AE, Call, Device, rsc_class
from m2mcloud.devices.fleet import StopFlag, Tick, UnreachableError
from m2mcloud.devices.notify import command_latency
from m2mcloud.devices.stats import Recorder
from m2mcloud.net import no_delay

log = logging.getLogger("m2mcloud.devices.mqtt")

POLL_SECONDS = 0.004  # select timeout: the scheduler's resolution
CONNECT_TIMEOUT = 10.0

# Device states
NEW, CONNECTING, SETUP, READY, DOWN, FAILED = range(6)


class MQTTDevice:
    __slots__ = (
        "client",
        "deadline",
        "dev",
        "pending",
        "retry_at",
        "retry_delay",
        "setup_calls",
        "sock",
        "state",
        "topics",
        "writing",
    )

    def __init__(self, dev: Device, client: mqtt.Client, cse_id: str) -> None:
        self.dev = dev
        self.client = client
        self.state = NEW
        self.pending: dict[Any, tuple[float, Call]] = {}
        self.setup_calls: list[Call] = []
        self.sock: Any = None
        self.writing = False
        self.deadline = 0.0
        self.retry_at = 0.0
        self.retry_delay = 1.0
        o = dev.originator
        self.topics = {
            "req": f"/oneM2M/req/{o}/{cse_id}/json",
            "reg_req": f"/oneM2M/reg_req/{o}/{cse_id}/json",
            "resp": f"/oneM2M/resp/{o}/{cse_id}/json",
            "reg_resp": f"/oneM2M/reg_resp/{o}/{cse_id}/json",
            "notify": f"/oneM2M/req/{cse_id}/{o}/json",
            "notify_resp": f"/oneM2M/resp/{cse_id}/{o}/json",
        }


def probe_broker(host: str, port: int, username: str, password: str, timeout: float = 5.0) -> None:
    """One MQTT CONNECT to the broker; `UnreachableError` with the reason when it fails."""
    where = f"MQTT broker {host}:{port}"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"m2mcloud-probe-{time.time_ns()}")
    if username:
        client.username_pw_set(username, password or None)
    result: dict[str, Any] = {}

    def on_connect(c: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any) -> None:
        result["rc"] = rc

    client.on_connect = on_connect
    client.connect_timeout = timeout
    try:
        client.connect(host, port, keepalive=10)
    except socket.gaierror as exc:
        raise UnreachableError(f"cannot reach the {where}: unknown host ({exc.strerror})") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UnreachableError(f"cannot reach the {where}: {reason}") from None
    deadline = time.monotonic() + timeout
    try:
        while "rc" not in result and time.monotonic() < deadline:
            if client.loop(0.1) not in (MQTTErrorCode.MQTT_ERR_SUCCESS,):
                break
        if "rc" not in result:
            raise UnreachableError(f"the {where} accepted TCP but did not answer the MQTT CONNECT")
        if result["rc"].is_failure:
            raise UnreachableError(f"the {where} refused the connection: {result['rc']}")
    finally:
        client.disconnect()


class MQTTFleet:
    def __init__(self, config: DevicesConfig, devices: list[Device], recorder: Recorder) -> None:
        self.config = config
        self.recorder = recorder
        self.puback = config.ack == "puback"
        self.qos = config.mqtt_qos
        self.sel = selectors.DefaultSelector()
        self.mdevs = [self._make(d) for d in devices]
        self.ready: list[MQTTDevice] = []
        self.n_failed = 0
        self.n_connected = 0
        self.disconnects = 0
        self.reconnect_failures = 0
        self._rr = 0
        self._rqi = itertools.count(1)
        self._timeouts: deque[tuple[float, MQTTDevice, Any]] = deque()
        self._phase = "setup"
        self._dumps = json.JSONEncoder(separators=(",", ":")).encode

    # -- plumbing ---------------------------------------------------------------------------------

    def _make(self, dev: Device) -> MQTTDevice:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=dev.originator,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        md = MQTTDevice(dev, client, self.config.cse_id)
        client.user_data_set(md)
        if self.config.mqtt_username:
            client.username_pw_set(self.config.mqtt_username, self.config.mqtt_password or None)
        client.connect_timeout = CONNECT_TIMEOUT
        client.max_inflight_messages_set(max(20, self.config.max_inflight * 2))
        client.max_queued_messages_set(0)
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        if self.puback:
            client.on_publish = self._on_publish
        return md

    def _on_socket_open(self, client: mqtt.Client, md: MQTTDevice, sock: Any) -> None:
        no_delay(client, md, sock)  # a device's small publishes must not wait for Nagle
        md.sock = sock
        md.writing = False
        self.sel.register(sock, selectors.EVENT_READ, md)

    def _on_socket_close(self, client: mqtt.Client, md: MQTTDevice, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(sock)
        md.sock = None
        md.writing = False

    def _flush(self, md: MQTTDevice) -> None:
        """Write what paho queued; ask the selector for writability only while data remains."""
        c = md.client
        if md.sock is None:
            return
        if c.want_write():
            c.loop_write()
        if md.sock is None:
            return
        want = c.want_write()
        if want != md.writing:
            md.writing = want
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
            self.sel.modify(md.sock, events, md)

    def _poll(self, timeout: float) -> None:
        for key, mask in self.sel.select(timeout):
            md: MQTTDevice = key.data
            c = md.client
            if mask & selectors.EVENT_READ:
                c.loop_read()
            if mask & selectors.EVENT_WRITE and md.sock is not None:
                c.loop_write()
            self._flush(md)

    def _misc(self, now: float) -> None:
        """Keep-alive pings, and reconnects of devices that lost their connection."""
        for md in self.mdevs:
            if md.sock is not None:
                md.client.loop_misc()
                self._flush(md)
            elif md.state == DOWN and now >= md.retry_at:
                self._connect(md, now, reconnect=True)

    def _connect(self, md: MQTTDevice, now: float, reconnect: bool = False) -> None:
        md.state = CONNECTING
        md.deadline = now + CONNECT_TIMEOUT
        try:
            if reconnect:
                md.client.reconnect()
            else:
                md.client.connect(
                    self.config.mqtt_host, self.config.mqtt_port, self.config.mqtt_keepalive
                )
        except OSError as exc:
            self._connect_failed(md, now, f"exc:{type(exc).__name__}")
            return
        self._flush(md)

    def _connect_failed(self, md: MQTTDevice, now: float, kind: str) -> None:
        if self._phase == "setup":
            self.recorder.phase("setup", error=kind)
            md.state = FAILED
            self.n_failed += 1
        else:
            self.reconnect_failures += 1
            md.state = DOWN
            md.retry_delay = min(30.0, md.retry_delay * 2)
            md.retry_at = now + md.retry_delay
            log.debug("reconnect of %s failed (%s)", md.dev.name, kind)

    # -- paho callbacks (called from loop_read / loop_write) ------------------------------------

    def _on_connect(
        self, client: mqtt.Client, md: MQTTDevice, flags: Any, rc: Any, props: Any
    ) -> None:
        if rc.is_failure:
            log.warning("broker refused %s: %s", md.dev.name, rc)
            self._connect_failed(md, time.monotonic(), f"connack:{rc}")
            client.disconnect()
            return
        self.n_connected += 1
        md.retry_delay = 1.0
        if self.puback:
            self._became_ready(md)
            return
        topics = [(md.topics["resp"], self.qos), (md.topics["reg_resp"], self.qos)]
        if self.config.commands:
            topics.append((md.topics["notify"], self.qos))
        client.subscribe(topics)

    def _on_subscribe(
        self, client: mqtt.Client, md: MQTTDevice, mid: int, codes: Any, props: Any
    ) -> None:
        if any(getattr(c, "is_failure", False) for c in codes):
            self._connect_failed(md, time.monotonic(), "suback:refused")
            return
        if md.state == CONNECTING and md.setup_calls:
            md.state = SETUP
            self._send(md, md.setup_calls.pop(0), time.monotonic())
        elif md.state == CONNECTING:
            self._became_ready(md)

    def _on_disconnect(
        self, client: mqtt.Client, md: MQTTDevice, flags: Any, rc: Any, props: Any
    ) -> None:
        now = time.monotonic()
        if md.state in (READY, SETUP, CONNECTING) and self._phase != "closing":
            self.disconnects += 1
            lost = [k for k, (_, call) in md.pending.items() if call.kind == "reading"]
            for k in lost:
                del md.pending[k]
            if lost:
                self.recorder.error(now, "disconnected", len(lost))
            if md.state == READY:
                self.ready.remove(md)
            if self._phase == "setup" and md.state != READY:
                self.recorder.phase("setup", error=f"disconnected:{rc}")
                md.state = FAILED
                self.n_failed += 1
            else:
                md.state = DOWN
                md.retry_at = now + md.retry_delay
            log.info("%s disconnected (%s)", md.dev.name, rc)

    def _on_publish(
        self, client: mqtt.Client, md: MQTTDevice, mid: int, rc: Any, props: Any
    ) -> None:
        entry = md.pending.pop(mid, None)
        if entry is None:
            return
        now = time.monotonic()
        if getattr(rc, "is_failure", False):
            self.recorder.error(now, f"puback:{rc}")
        else:
            self.recorder.acked(now, now - entry[0])

    def _on_message(self, client: mqtt.Client, md: MQTTDevice, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        try:
            prim = json.loads(msg.payload)
        except ValueError:
            self.recorder.error(now, "bad-response")
            return
        if not isinstance(prim, dict):
            self.recorder.error(now, "bad-response")
            return
        if "op" in prim:
            self._on_request(md, prim, now)
            return
        entry = md.pending.pop(prim.get("rqi"), None)
        if entry is None:
            return  # late answer after a timeout (already counted) or a stray message
        sent, call = entry
        try:
            rsc = int(prim.get("rsc", 0))
        except (TypeError, ValueError):
            rsc = 0
        ok = rsc in call.ok
        if call.kind == "reading":
            if ok:
                self.recorder.acked(now, now - sent)
            else:
                self.recorder.error(now, rsc_class(rsc))
        elif call.kind == "setup":
            self._setup_answer(md, call, ok, rsc, now - sent, now)
        else:
            self.recorder.phase(call.kind, error=None if ok else rsc_class(rsc))

    def _on_request(self, md: MQTTDevice, prim: dict[str, Any], now: float) -> None:
        """A notification from the CSE (a command, or a subscription verification)."""
        if prim.get("op") == NOTIFY:
            sgn = (prim.get("pc") or {}).get("m2m:sgn", {})
            if not sgn.get("vrq"):
                self.recorder.phase("commands", latency=command_latency(sgn))
        answer = {
            "rsc": RSC_OK,
            "rqi": prim.get("rqi"),
            "to": prim.get("fr"),
            "fr": md.dev.originator,
            "rvi": prim.get("rvi", "3"),
        }
        md.client.publish(md.topics["notify_resp"], self._dumps(answer), self.qos)

    def _setup_answer(
        self, md: MQTTDevice, call: Call, ok: bool, rsc: int, latency: float, now: float
    ) -> None:
        if not ok:
            self.recorder.phase("setup", error=rsc_class(rsc))
            log.warning("%s: setup %s answered %s", md.dev.name, call.to, rsc)
            md.state = FAILED
            self.n_failed += 1
            return
        self.recorder.phase("setup", latency=latency)
        if md.setup_calls:
            self._send(md, md.setup_calls.pop(0), now)
        else:
            self._became_ready(md)

    def _became_ready(self, md: MQTTDevice) -> None:
        md.state = READY
        self.ready.append(md)

    # -- sending ----------------------------------------------------------------------------------

    def _send(self, md: MQTTDevice, call: Call, now: float) -> bool:
        if self.puback:
            payload = self._dumps(call.pc)
            topic = md.topics["req"]
            key: Any = None
        else:
            rqi = f"{md.dev.index}.{next(self._rqi)}"
            prim: dict[str, Any] = {
                "op": call.op,
                "to": call.to,
                "fr": md.dev.originator,
                "rqi": rqi,
                "rvi": "3",
            }
            if call.ty is not None:
                prim["ty"] = call.ty
            if call.pc is not None:
                prim["pc"] = call.pc
            payload = self._dumps(prim)
            reg = call.op == CREATE and call.ty == TY_AE
            topic = md.topics["reg_req" if reg else "req"]
            key = rqi
        info = md.client.publish(topic, payload, self.qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            kind = f"mqtt:{MQTTErrorCode(info.rc).name}"
            if call.kind == "reading":
                self.recorder.error(now, kind)
            else:
                self.recorder.phase(call.kind, error=kind)
            return False
        if self.puback:
            key = info.mid
        md.pending[key] = (now, call)
        self._timeouts.append((now + self.config.timeout, md, key))
        self._flush(md)
        return True

    def _issue(self, n: int, now: float) -> None:
        ready = self.ready
        limit = self.config.max_inflight
        rec = self.recorder
        rec.offered(now, n)
        for _ in range(n):
            size = len(ready)
            for _attempt in range(size):
                self._rr = (self._rr + 1) % size
                md = ready[self._rr]
                if len(md.pending) < limit:
                    self._send(md, md.dev.reading(), now)
                    break
            else:
                rec.error(now, "backpressure" if size else "no-device-ready")

    def _sweep(self, now: float) -> None:
        q = self._timeouts
        while q and q[0][0] <= now:
            _, md, key = q.popleft()
            entry = md.pending.pop(key, None)
            if entry is None:
                continue
            call = entry[1]
            if call.kind == "reading":
                self.recorder.error(now, "timeout")
            elif call.kind == "setup":
                self.recorder.phase("setup", error="timeout")
                md.state = FAILED
                self.n_failed += 1
            else:
                self.recorder.phase(call.kind, error="timeout")
        if self._phase == "setup":
            for md in self.mdevs:
                if md.state == CONNECTING and now > md.deadline:
                    self.recorder.phase("setup", error="timeout:connect")
                    md.state = FAILED
                    self.n_failed += 1
                    md.client.disconnect()
                    self._flush(md)

    # -- the fleet interface ----------------------------------------------------------------------

    def open(self) -> None:
        c = self.config
        probe_broker(c.mqtt_host, c.mqtt_port, c.mqtt_username, c.mqtt_password)
        if c.commands:
            # No path: the CSE addresses an AE reached over MQTT by its AE-ID (TS-0010).
            for md in self.mdevs:
                md.dev.poa = [f"mqtt://{c.mqtt_host}:{c.mqtt_port}"]

    def status(self) -> dict[str, int]:
        return {
            "devices": len(self.mdevs),
            "connected": sum(1 for m in self.mdevs if m.sock is not None),
            "ready": len(self.ready),
            "failed": self.n_failed,
        }

    def setup(self, stagger: float, stop: StopFlag, tick: Tick) -> int:
        self._phase = "setup"
        for md in self.mdevs:
            if not self.puback:
                md.setup_calls = md.dev.setup_calls(
                    mni=self.config.container_mni, commands=self.config.commands
                )
        n = len(self.mdevs)
        start = time.monotonic()
        nxt = 0
        next_sweep = start
        while not stop:
            now = time.monotonic()
            while nxt < n and now >= start + stagger * nxt / n:
                self._connect(self.mdevs[nxt], now)
                nxt += 1
                if nxt % 50 == 0:
                    break  # keep serving the sockets of devices already connecting
            self._poll(POLL_SECONDS)
            if now >= next_sweep:
                self._sweep(now)
                tick(now)
                next_sweep = now + 0.1
            if nxt == n and len(self.ready) + self.n_failed >= n:
                break
        self._phase = "run"
        return len(self.ready)

    def drive(
        self,
        due: Callable[[float], int],
        done: Callable[[float], bool],
        stop: StopFlag,
        tick: Tick,
    ) -> None:
        next_sweep = next_misc = time.monotonic()
        while not stop:
            now = time.monotonic()
            n = due(now)
            if n:
                self._issue(n, now)
            if done(now):
                break
            self._poll(POLL_SECONDS)
            if now >= next_sweep:
                self._sweep(now)
                tick(now)
                next_sweep = now + 0.1
            if now >= next_misc:
                self._misc(now)
                next_misc = now + 1.0

    def _outstanding(self, kind: str) -> int:
        return sum(1 for md in self.mdevs for _, c in md.pending.values() if c.kind == kind)

    def drain(self, timeout: float, stop: StopFlag) -> int:
        deadline = time.monotonic() + timeout
        while not stop.forced.is_set() and time.monotonic() < deadline:
            if not any(md.pending for md in self.mdevs):
                break
            self._poll(0.02)
            self._sweep(time.monotonic())
        left = self._outstanding("reading")
        for md in self.mdevs:
            for k in [k for k, (_, c) in md.pending.items() if c.kind == "reading"]:
                del md.pending[k]
        return left

    def cleanup(self, stop: StopFlag) -> None:
        if self.puback:
            return
        now = time.monotonic()
        for md in self.ready:
            self._send(md, md.dev.cleanup_call(), now)
        deadline = now + self.config.timeout
        while not stop.forced.is_set() and time.monotonic() < deadline:
            if not self._outstanding("cleanup"):
                break
            self._poll(0.02)
            self._sweep(time.monotonic())

    def close(self) -> None:
        self._phase = "closing"
        for md in self.mdevs:
            if md.sock is not None:
                md.client.disconnect()
                self._flush(md)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and any(md.sock is not None for md in self.mdevs):
            self._poll(0.02)
        for md in self.mdevs:
            if md.sock is not None:
                with contextlib.suppress(OSError):
                    md.sock.close()
                self._on_socket_close(md.client, md, md.sock)
        self.sel.close()
