"""Devices over HTTP (oneM2M TS-0009): every device keeps its own keep-alive connection; a fixed
pool of worker threads carries the requests, each device always on the same worker so that its
connection is used by one thread only. Latency counts from the moment the device wanted to send
(the scheduler's hand-over), so time queued behind a slow CSE is part of it."""

from __future__ import annotations

import http.client
import itertools
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from m2mcloud.devices.config import DevicesConfig
from m2mcloud.devices.device import CREATE, DELETE, Call, Device, rsc_class
from m2mcloud.devices.fleet import StopFlag, Tick, UnreachableError
from m2mcloud.devices.notify import NotificationServer, own_address
from m2mcloud.devices.stats import Recorder

log = logging.getLogger("m2mcloud.devices.http")

IDLE_RECONNECT_SECONDS = 50.0  # below common server keep-alive timeouts (waitress: 120 s)
POLL_SECONDS = 0.002


@dataclass(frozen=True)
class Endpoint:
    """One CSE address; several (comma-separated --cse-url) spread the devices over them."""

    url: str
    https: bool
    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, raw: str) -> Endpoint:
        url = urlsplit(raw.strip())
        if url.scheme not in ("http", "https") or not url.hostname:
            raise UnreachableError(f"--cse-url {raw.strip()!r} is not an http:// or https:// URL")
        https = url.scheme == "https"
        return cls(
            raw.strip(),
            https,
            url.hostname,
            url.port or (443 if https else 80),
            url.path.rstrip("/"),
        )

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=timeout)


class HTTPDevice:
    __slots__ = ("conn", "dev", "done", "endpoint", "last_used", "queued", "state", "worker")

    def __init__(self, dev: Device, worker: int, endpoint: Endpoint) -> None:
        self.dev = dev
        self.worker = worker
        self.endpoint = endpoint
        self.conn: http.client.HTTPConnection | None = None
        self.last_used = 0.0
        self.queued = 0  # written by the scheduler thread only
        self.done = 0  # written by the device's worker only
        self.state = "new"  # new | ready | failed


Job = tuple[HTTPDevice, Call | str, float, int]  # device, what, time handed over, epoch


class HTTPFleet:
    def __init__(self, config: DevicesConfig, devices: list[Device], recorder: Recorder) -> None:
        self.config = config
        self.recorder = recorder
        self.endpoints = [Endpoint.parse(u) for u in config.cse_url.split(",") if u.strip()]
        if not self.endpoints:
            raise UnreachableError("--cse-url is empty")
        workers = max(1, min(config.http_workers, len(devices)))
        self.hdevs = [
            HTTPDevice(d, i % workers, self.endpoints[i % len(self.endpoints)])
            for i, d in enumerate(devices)
        ]
        self.queues: list[queue.SimpleQueue[Job | None]] = [
            queue.SimpleQueue() for _ in range(workers)
        ]
        self.threads: list[threading.Thread] = []
        self.ready: list[HTTPDevice] = []
        self.n_failed = 0
        self._lock = threading.Lock()
        self._epoch = 0
        self._rr = 0
        self._rqi = itertools.count(1)
        self._outstanding = {"setup": 0, "cleanup": 0}
        self.notifier: NotificationServer | None = None

    # -- one request ------------------------------------------------------------------------------

    def _connection(self, hd: HTTPDevice, now: float) -> http.client.HTTPConnection:
        if hd.conn is not None and now - hd.last_used > IDLE_RECONNECT_SECONDS:
            hd.conn.close()
            hd.conn = None
        if hd.conn is None:
            hd.conn = hd.endpoint.connect(self.config.timeout)
        return hd.conn

    def request(self, hd: HTTPDevice, call: Call) -> tuple[int | None, str | None]:
        """Send one call; (rsc, None) on an answer, (None, error class) on a failure."""
        headers = {
            "X-M2M-Origin": hd.dev.originator,
            "X-M2M-RI": f"{hd.dev.index}.{next(self._rqi)}",
            "X-M2M-RVI": "3",
            "Accept": "application/json",
        }
        body = None
        if call.op == CREATE:
            method = "POST"
            headers["Content-Type"] = f"application/json;ty={call.ty}"
            body = json.dumps(call.pc, separators=(",", ":")).encode()
        elif call.op == DELETE:
            method = "DELETE"
        else:
            method = "GET"
        now = time.monotonic()
        conn = self._connection(hd, now)
        try:
            conn.request(method, f"{hd.endpoint.prefix}/{call.to}", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
        except TimeoutError:
            self._drop(hd)
            return None, "timeout"
        except (OSError, http.client.HTTPException) as exc:
            self._drop(hd)
            return None, f"exc:{type(exc).__name__}"
        hd.last_used = time.monotonic()
        if resp.will_close:
            self._drop(hd)
        raw = resp.getheader("X-M2M-RSC")
        if raw is None or not raw.strip().isdigit():
            return None, f"http:{resp.status} without X-M2M-RSC"
        return int(raw), None

    @staticmethod
    def _drop(hd: HTTPDevice) -> None:
        if hd.conn is not None:
            hd.conn.close()
            hd.conn = None

    # -- workers ----------------------------------------------------------------------------------

    def _worker(self, q: queue.SimpleQueue[Job | None]) -> None:
        while True:
            job = q.get()
            if job is None:
                return
            hd, what, t_sched, epoch = job
            if epoch != self._epoch:
                continue  # abandoned by a drain that gave up: already counted as unfinished
            if what == "setup":
                self._setup_device(hd)
                continue
            assert isinstance(what, Call)
            rsc, err = self.request(hd, what)
            now = time.monotonic()
            with self._lock:
                if epoch != self._epoch:
                    continue
                if what.kind == "reading":
                    if err is None and rsc in what.ok:
                        self.recorder.acked(now, now - t_sched)
                    else:
                        self.recorder.error(now, err or rsc_class(rsc or 0))
                    hd.done += 1
                else:
                    ok = err is None and rsc in what.ok
                    self.recorder.phase(what.kind, error=None if ok else err or rsc_class(rsc or 0))
                    self._outstanding[what.kind] -= 1

    def _setup_device(self, hd: HTTPDevice) -> None:
        calls = hd.dev.setup_calls(mni=self.config.container_mni, commands=self.config.commands)
        state = "ready"
        for call in calls:
            t0 = time.monotonic()
            rsc, err = self.request(hd, call)
            if err is None and rsc in call.ok:
                self.recorder.phase("setup", latency=time.monotonic() - t0)
                continue
            self.recorder.phase("setup", error=err or rsc_class(rsc or 0))
            log.warning("%s: setup %s failed: %s", hd.dev.name, call.to, err or rsc)
            state = "failed"
            break
        with self._lock:
            hd.state = state
            if state == "ready":
                self.ready.append(hd)
            else:
                self.n_failed += 1
            self._outstanding["setup"] -= 1

    # -- the fleet interface ----------------------------------------------------------------------

    def open(self) -> None:
        for endpoint in self.endpoints:
            self._probe(endpoint)
        if self.config.commands:
            advertise = self.config.notify_host or own_address(self.endpoints[0].host)
            self.notifier = NotificationServer(
                self.recorder, "0.0.0.0", self.config.notify_port, advertise
            )
            for hd in self.hdevs:
                hd.dev.poa = [self.notifier.url_for(hd.dev.name)]
        for i, q in enumerate(self.queues):
            t = threading.Thread(target=self._worker, args=(q,), name=f"http-{i}", daemon=True)
            t.start()
            self.threads.append(t)

    def _probe(self, endpoint: Endpoint) -> None:
        where = f"CSE at {endpoint.url}"
        conn = endpoint.connect(min(self.config.timeout, 10.0))
        try:
            conn.request(
                "GET",
                f"{endpoint.prefix}/{self.config.cse_name}",
                headers={"X-M2M-Origin": "CAdmin", "X-M2M-RI": "probe", "X-M2M-RVI": "3"},
            )
            resp = conn.getresponse()
            resp.read()
        except TimeoutError:
            raise UnreachableError(f"cannot reach the {where}: no answer in time") from None
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise UnreachableError(f"cannot reach the {where}: {reason}") from None
        except http.client.HTTPException as exc:
            raise UnreachableError(f"the {where} does not speak HTTP: {exc!r}") from None
        finally:
            conn.close()
        if resp.getheader("X-M2M-RSC") is None:
            raise UnreachableError(
                f"the {where} answered HTTP {resp.status} without X-M2M-RSC: is it a oneM2M CSE, "
                f"and is its CSEBase named {self.config.cse_name!r} (--cse-name)?"
            )

    def status(self) -> dict[str, int]:
        return {
            "devices": len(self.hdevs),
            "connected": sum(1 for h in self.hdevs if h.conn is not None),
            "ready": len(self.ready),
            "failed": self.n_failed,
        }

    def setup(self, stagger: float, stop: StopFlag, tick: Tick) -> int:
        n = len(self.hdevs)
        start = time.monotonic()
        with self._lock:
            self._outstanding["setup"] = n
        nxt = 0
        next_tick = start
        while not stop:
            now = time.monotonic()
            while nxt < n and now >= start + stagger * nxt / n:
                hd = self.hdevs[nxt]
                self.queues[hd.worker].put((hd, "setup", now, self._epoch))
                nxt += 1
            if now >= next_tick:
                tick(now)
                next_tick = now + 0.1
            if nxt == n and self._outstanding["setup"] == 0:
                break
            time.sleep(0.01)
        return len(self.ready)

    def drive(
        self,
        due: Callable[[float], int],
        done: Callable[[float], bool],
        stop: StopFlag,
        tick: Tick,
    ) -> None:
        limit = self.config.max_inflight
        rec = self.recorder
        next_tick = time.monotonic()
        while not stop:
            now = time.monotonic()
            n = due(now)
            if n:
                rec.offered(now, n)
                ready = self.ready
                size = len(ready)
                for _ in range(n):
                    for _attempt in range(size):
                        self._rr = (self._rr + 1) % size
                        hd = ready[self._rr]
                        if hd.queued - hd.done < limit:
                            hd.queued += 1
                            self.queues[hd.worker].put((hd, hd.dev.reading(), now, self._epoch))
                            break
                    else:
                        rec.error(now, "backpressure" if size else "no-device-ready")
            if done(now):
                break
            if now >= next_tick:
                tick(now)
                next_tick = now + 0.1
            time.sleep(POLL_SECONDS)

    def drain(self, timeout: float, stop: StopFlag) -> int:
        deadline = time.monotonic() + timeout
        while not stop.forced.is_set() and time.monotonic() < deadline:
            if all(hd.queued == hd.done for hd in self.ready):
                break
            time.sleep(0.02)
        with self._lock:
            self._epoch += 1
            return sum(hd.queued - hd.done for hd in self.ready)

    def cleanup(self, stop: StopFlag) -> None:
        with self._lock:
            self._outstanding["cleanup"] = len(self.ready)
        for hd in self.ready:
            self.queues[hd.worker].put((hd, hd.dev.cleanup_call(), time.monotonic(), self._epoch))
        deadline = time.monotonic() + self.config.timeout * 2
        while not stop.forced.is_set() and time.monotonic() < deadline:
            if self._outstanding["cleanup"] <= 0:
                break
            time.sleep(0.02)

    def close(self) -> None:
        with self._lock:
            self._epoch += 1
        for q in self.queues:
            q.put(None)
        for t in self.threads:
            t.join(timeout=self.config.timeout + 1)
        for hd in self.hdevs:
            self._drop(hd)
        if self.notifier is not None:
            self.notifier.close()
