"""Subscriptions in action: who is notified of what, and delivery off the request path.

Delivery: notifications are put on per-target queues served by a few worker threads, so a slow
or dead receiver never delays a request and notifications to one target keep their order. Each
one is tried `notify_retries` times with exponential backoff, then dropped and counted. The
verification request of a new subscription is the exception: TS-0004 makes the CREATE wait for
it (5204 when a target refuses or cannot be reached).
"""

from __future__ import annotations

import http.client
import logging
import queue
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from m2mcloud.cse.bindings import serialization
from m2mcloud.cse.constants import RSC, NotificationEventType, ResourceType
from m2mcloud.cse.errors import CSEError
from m2mcloud.cse.store import Resource
from m2mcloud.cse.store.base import SUBSCRIPTIONS
from m2mcloud.cse.timeutil import parse_duration

if TYPE_CHECKING:
    from m2mcloud.cse.core import CSE

log = logging.getLogger(__name__)

_STOP = object()


@dataclass
class Delivery:
    target: str  # a URL, or an AE-ID/address resolved through the AE's poa when sent
    payload: dict[str, Any]
    headers: dict[str, str] | None = None


@dataclass
class Batch:
    """Notifications of one subscription held back for batchNotify (bn)."""

    targets: list[str]
    num: int | None
    dur: float | None
    latest_only: bool
    first: float
    items: list[dict[str, Any]] = field(default_factory=list)


class DeliveryError(Exception):
    pass


class Notifier:
    def __init__(self, cse: CSE) -> None:
        self.cse = cse
        cfg = cse.config
        self.workers = max(1, cfg.notify_workers)
        self.queues: list[queue.Queue[Any]] = [
            queue.Queue(maxsize=max(1, cfg.notify_queue_size // self.workers))
            for _ in range(self.workers)
        ]
        self.threads: list[threading.Thread] = []
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self.batches: dict[str, Batch] = {}
        self._stop_timer = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self.threads:
            return
        for i, q in enumerate(self.queues):
            t = threading.Thread(target=self._work, args=(q,), name=f"notify-{i}", daemon=True)
            t.start()
            self.threads.append(t)
        self._stop_timer.clear()
        timer = threading.Thread(target=self._batch_timer, name="notify-batches", daemon=True)
        timer.start()
        self.threads.append(timer)

    def stop(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (bounded by `timeout`), then stop the workers."""
        self._stop_timer.set()
        for ri in list(self.batches):
            self.flush(ri)
        for q in self.queues:
            q.put(_STOP)
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self.threads = []

    def pending(self) -> int:
        return sum(q.qsize() for q in self.queues)

    # -- events ---------------------------------------------------------------------------------

    def resource_event(
        self,
        subject: Resource,
        net: NotificationEventType,
        rep: Resource,
        *,
        originator: str,
        modified: dict[str, Any] | None = None,
    ) -> None:
        """`subject` changed (net 1), or a child `rep` of it was created/deleted (net 3/4)."""
        if not subject.attrs.get(SUBSCRIPTIONS):
            return  # the store counts a resource's subscriptions: none, nothing to look up
        subs = self.cse.store.children(subject.ri, ResourceType.SUB, now=self.cse.clock())
        for sub in subs:
            if sub.ri == rep.ri:
                continue  # a subscription is not told about its own creation
            enc = sub.attrs.get("enc") or {"net": [1]}
            if int(net) not in enc.get("net", [1]):
                continue
            chty = enc.get("chty")
            if (
                chty
                and net in (NotificationEventType.CREATE_CHILD, NotificationEventType.DELETE_CHILD)
                and int(rep.ty) not in chty
            ):
                continue
            atr = enc.get("atr")
            if atr and net == NotificationEventType.UPDATE and not set(atr) & set(modified or {}):
                continue
            self.notify(sub, self._event_content(sub, net, rep, modified))

    def _event_content(
        self,
        sub: Resource,
        net: NotificationEventType,
        rep: Resource,
        modified: dict[str, Any] | None,
    ) -> dict[str, Any]:
        nct = sub.attrs.get("nct", 1)
        if nct == 2 and modified is not None:
            content: dict[str, Any] = {rep.tpe: modified}
        elif nct == 3:
            content = {"m2m:uri": rep.ri}
        else:
            content = self.cse.wrap(rep)
        return {"nev": {"rep": content, "net": int(net)}}

    def notify(self, sub: Resource, body: dict[str, Any]) -> None:
        sgn = {**body, "sur": self.sur(sub)}
        if sub.attrs.get("cr"):
            sgn["cr"] = sub.attrs["cr"]
        bn = sub.attrs.get("bn")
        if bn:
            self._add_to_batch(sub, bn, sgn)
        else:
            for target in sub.attrs.get("nu", []):
                self.enqueue(target, {"m2m:sgn": sgn})
        self._count_down(sub)

    # -- batchNotify / latestNotify -------------------------------------------------------------

    def _add_to_batch(self, sub: Resource, bn: dict[str, Any], sgn: dict[str, Any]) -> None:
        full = False
        with self._lock:
            batch = self.batches.get(sub.ri)
            if batch is None:
                dur = bn.get("dur")
                batch = self.batches[sub.ri] = Batch(
                    targets=list(sub.attrs.get("nu", [])),
                    num=bn.get("num"),
                    dur=parse_duration(dur) if dur is not None else None,
                    latest_only=bool(sub.attrs.get("ln")),
                    first=time.monotonic(),
                )
            batch.items.append(sgn)
            full = batch.num is not None and len(batch.items) >= batch.num
        if full:
            self.flush(sub.ri)

    def flush(self, sub_ri: str) -> None:
        """Send the held-back notifications as one aggregated notification (m2m:agn); with
        latestNotify only the newest, marked with event category 4 (latest)."""
        with self._lock:
            batch = self.batches.pop(sub_ri, None)
        if batch is None or not batch.items:
            return
        items = batch.items[-1:] if batch.latest_only else batch.items
        headers = {"X-M2M-EC": "4"} if batch.latest_only else None
        for target in batch.targets:
            self.enqueue(target, {"m2m:agn": {"m2m:sgn": items}}, headers)

    def _batch_timer(self) -> None:
        while not self._stop_timer.wait(0.1):
            now = time.monotonic()
            with self._lock:
                due = [
                    ri
                    for ri, b in self.batches.items()
                    if b.dur is not None and now - b.first >= b.dur
                ]
            for ri in due:
                self.flush(ri)

    def _count_down(self, sub: Resource) -> None:
        """expirationCounter (exc): the subscription ends after that many notifications."""
        exc = sub.attrs.get("exc")
        if exc is None:
            return
        sent = int(sub.attrs.get("__sent", 0)) + 1
        if sent >= exc:
            self.cse.delete_resource(sub, originator=self.cse.config.admin_originator)
            return
        current = self.cse.store.get(sub.ri)
        if current is not None:
            current.attrs["__sent"] = sent
            self.cse.store.update(current)

    def deleted(self, deleted: list[Resource], *, originator: str) -> None:
        """Resources were deleted: the subscriptions among them (and those on the deleted
        resource itself, net 2) tell their subscribers."""
        root = deleted[0]
        for res in deleted:
            if res.ty != ResourceType.SUB:
                continue
            self.flush(res.ri)  # what a batch still holds goes out before the deletion notice
            enc = res.attrs.get("enc") or {}
            if res.pi == root.ri and int(NotificationEventType.DELETE) in enc.get("net", []):
                sgn = {
                    "nev": {"rep": self.cse.wrap(root), "net": int(NotificationEventType.DELETE)},
                    "sur": self.sur(res),
                }
                for target in res.attrs.get("nu", []):
                    self.enqueue(target, {"m2m:sgn": sgn})
            su = res.attrs.get("su")
            if su:
                self.enqueue(su, {"m2m:sgn": {"sud": True, "sur": self.sur(res)}})

    def sur(self, sub: Resource) -> str:
        return f"{self.cse.config.csi}/{sub.ri}"

    # -- verification ---------------------------------------------------------------------------

    def verify(self, sub: Resource, originator: str, only: list[str] | None = None) -> None:
        """Send the verification request to each target that is not the subscriber itself;
        raise 5204 if one refuses or cannot be reached."""
        body: dict[str, Any] = {"m2m:sgn": {"vrq": True, "sur": self.sur(sub)}}
        if sub.attrs.get("cr"):
            body["m2m:sgn"]["cr"] = sub.attrs["cr"]
        for target in only if only is not None else sub.attrs.get("nu", []):
            if self._is_originator(target, originator):
                continue
            try:
                url = self.resolve_target(target, for_verification=True)
                if url is None:
                    continue
                rsc = self.send(url, body)
            except DeliveryError as exc:
                raise CSEError(
                    RSC.SUBSCRIPTION_VERIFICATION_INITIATION_FAILED,
                    f"verification request to {target} failed: {exc}",
                ) from None
            if rsc not in (RSC.OK, None):
                raise CSEError(
                    RSC.SUBSCRIPTION_VERIFICATION_INITIATION_FAILED,
                    f"notification target {target} refused the verification request (rsc {rsc})",
                )

    def _is_originator(self, target: str, originator: str) -> bool:
        if not originator or "://" in target:
            return False
        if target == originator:
            return True
        try:
            res = self.cse.resolve(target).resource
        except CSEError:
            return False
        return res.ty == ResourceType.AE and res.ri == originator

    # -- delivery -------------------------------------------------------------------------------

    def enqueue(
        self, target: str, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        q = self.queues[zlib.crc32(target.encode()) % self.workers]
        try:
            q.put_nowait(Delivery(target, payload, headers))
        except queue.Full:
            with self._lock:
                self.dropped += 1
            log.warning("notification queue full: dropped a notification to %s", target)

    def _work(self, q: queue.Queue[Any]) -> None:
        while True:
            item = q.get()
            if item is _STOP:
                return
            self._deliver(item)

    def _deliver(self, d: Delivery) -> None:
        retries = max(1, self.cse.config.notify_retries)
        delay = 0.2
        for attempt in range(1, retries + 1):
            try:
                url = self.resolve_target(d.target, for_verification=False)
                if url is None:
                    return
                rsc = self.send(url, d.payload, d.headers)
                with self._lock:
                    self.sent += 1
                if rsc not in (RSC.OK, None):
                    log.info("notification target %s answered rsc %s", d.target, rsc)
                return
            except DeliveryError as exc:
                if attempt == retries:
                    with self._lock:
                        self.failed += 1
                    log.warning(
                        "notification to %s failed after %d attempts: %s", d.target, attempt, exc
                    )
                    return
                time.sleep(delay)
                delay *= 2

    def resolve_target(self, target: str, *, for_verification: bool) -> str | None:
        """A URL to send to: the target itself, or the first HTTP poa of the AE it names.
        None means "nothing to send" (an AE that asked not to be reached, rr=false)."""
        if "://" in target:
            scheme = target.split("://", 1)[0].lower()
            if scheme not in ("http", "https", "mqtt"):
                raise DeliveryError(f"{scheme}:// notification targets are not supported")
            return target
        try:
            res = self.cse.resolve(target).resource
        except CSEError as exc:
            raise DeliveryError(f"notification target {target} does not exist") from exc
        if res.ty != ResourceType.AE:
            raise DeliveryError(f"notification target {target} is not an AE")
        poa = [
            p
            for p in res.attrs.get("poa", [])
            if p.lower().startswith(("http://", "https://", "mqtt://"))
        ]
        if not poa:
            if for_verification:
                raise DeliveryError(f"AE {target} has no usable pointOfAccess (poa)")
            return None
        if res.attrs.get("rr") is False and not for_verification:
            return None
        url = str(poa[0])
        if url.lower().startswith("mqtt://") and not urlsplit(url).path.strip("/"):
            url = f"{url.rstrip('/')}/{res.ri}"  # an AE reached over MQTT is addressed by AE-ID
        usable = [m for m in res.attrs.get("csz", []) if m in serialization.SUPPORTED]
        if usable and serialization.is_cbor(usable[0]):
            # The AE prefers CBOR (contentSerialization): say so in the URL's fragment, which
            # stays on this side (it is never sent), for send() to pick the encoding.
            url += "#ct=cbor"
        return url

    def _send_mqtt(self, url: str, payload: dict[str, Any]) -> RSC | None:
        if self.cse.mqtt is None:
            raise DeliveryError(f"{url}: the MQTT binding is off (--no-mqtt)")
        try:
            rsc: RSC | None = self.cse.mqtt.notify(url, payload, self.cse.config.notify_timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise DeliveryError(str(exc)) from None
        return rsc

    def send(
        self, url: str, payload: dict[str, Any], extra_headers: dict[str, str] | None = None
    ) -> RSC | None:
        """POST one notification; return the receiver's X-M2M-RSC (None if it sent none and the
        HTTP status was a success)."""
        if url.lower().startswith("mqtt://"):
            return self._send_mqtt(url, payload)
        parts = urlsplit(url)
        conn_cls = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        wants_cbor = "ct=cbor" in (parts.query, parts.fragment)
        media = serialization.CBOR if wants_cbor else serialization.JSON
        body = serialization.encode(media, payload)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        headers = {
            "Content-Type": media,
            "X-M2M-Origin": self.cse.config.csi,
            "X-M2M-RI": "ntf-" + self.cse.new_id(),
            "X-M2M-RVI": self.cse.config.release,
            **(extra_headers or {}),
        }
        try:
            conn = conn_cls(
                parts.hostname or "localhost", parts.port, timeout=self.cse.config.notify_timeout
            )
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            raise DeliveryError(f"{url}: {exc}") from None
        rsc_header = resp.getheader("X-M2M-RSC")
        if rsc_header is not None:
            try:
                return RSC(int(rsc_header))
            except ValueError:
                return RSC.INTERNAL_SERVER_ERROR
        if 200 <= resp.status < 300:
            return None if resp.status != 200 else RSC.OK
        if resp.status >= 500:
            raise DeliveryError(f"{url}: HTTP {resp.status}")
        return RSC.BAD_REQUEST
