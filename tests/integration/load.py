"""A mixed HTTP + MQTT contentInstance load against several CSE replicas, recording exactly what
was acknowledged, what failed and what never got an answer (shared by the replica tests)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.support import MQTTPeer


@dataclass
class Outcome:
    acked: dict[str, str] = field(default_factory=dict)  # con -> container path
    failed: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, con: str, path: str) -> None:
        with self.lock:
            if con in self.acked:
                self.duplicates.append(con)
            self.acked[con] = path


def http_client(
    name: str,
    urls: list[str],
    containers: list[str],
    count: int,
    out: Outcome,
    on_progress: Callable[[], None],
) -> None:
    """Creates `count` instances over HTTP; when its replica goes away it moves to the next."""
    session = requests.Session()
    url_index = hash(name) % len(urls)
    for i in range(count):
        con = f"{name}-{i}"
        path = containers[i % len(containers)]
        headers = {
            "X-M2M-Origin": "Cload",
            "X-M2M-RI": con,
            "X-M2M-RVI": "3",
            "Content-Type": "application/json;ty=4",
        }
        body = json.dumps({"m2m:cin": {"con": con}})
        try:
            r = session.post(f"{urls[url_index]}/{path}", data=body, headers=headers, timeout=20)
            if r.headers.get("X-M2M-RSC") == "2001":
                out.ack(con, path)
            else:
                with out.lock:
                    out.failed.append(con)
                    out.errors.append(f"{con}: rsc {r.headers.get('X-M2M-RSC')} {r.text[:100]}")
        except requests.RequestException as exc:
            session = requests.Session()
            url_index = (url_index + 1) % len(urls)
            if "NewConnectionError" in repr(exc):
                # Refused before anything was sent (the replica is gone): safe to retry elsewhere.
                try:
                    r = session.post(
                        f"{urls[url_index]}/{path}", data=body, headers=headers, timeout=20
                    )
                    if r.headers.get("X-M2M-RSC") == "2001":
                        out.ack(con, path)
                        on_progress()
                        continue
                except requests.RequestException as again:
                    exc = again
            with out.lock:
                out.failed.append(con)
                out.errors.append(f"{con}: {type(exc).__name__}")
        on_progress()


def mqtt_client(
    peer: MQTTPeer,
    containers: list[str],
    count: int,
    window: int,
    out: Outcome,
    on_progress: Callable[[], None],
    timeout: float = 15.0,
) -> None:
    """Creates `count` instances over MQTT with up to `window` requests outstanding."""
    outstanding: dict[str, tuple[str, str, float]] = {}
    sent = 0
    while sent < count or outstanding:
        while sent < count and len(outstanding) < window:
            con = f"{peer.originator}-{sent}"
            path = containers[sent % len(containers)]
            rqi = peer.send({"op": 1, "to": path, "ty": 4, "pc": {"m2m:cin": {"con": con}}})
            outstanding[rqi] = (con, path, time.monotonic())
            sent += 1
        with peer.cond:
            peer.cond.wait(0.05)
            done = [r for r in outstanding if r in peer.responses]
        now = time.monotonic()
        for rqi in done:
            con, path, _ = outstanding.pop(rqi)
            rsc = peer.responses[rqi].get("rsc")
            if rsc == 2001:
                out.ack(con, path)
            else:
                with out.lock:
                    out.failed.append(con)
                    out.errors.append(f"{con}: rsc {rsc}")
            on_progress()
        for rqi, (con, _path, t0) in list(outstanding.items()):
            if now - t0 > timeout:
                outstanding.pop(rqi)
                with out.lock:
                    out.unanswered.append(con)
                on_progress()
    with out.lock:
        out.duplicates.extend(peer.duplicates)


def stored_instances(http_url: str, path: str) -> list[dict[str, Any]]:
    r = requests.get(
        f"{http_url}/{path}",
        params={"rcn": "8", "ty": "4"},
        headers={"X-M2M-Origin": "CAdmin", "X-M2M-RI": "check", "X-M2M-RVI": "3"},
        timeout=60,
    )
    r.raise_for_status()
    return list(r.json()["m2m:cnt"].get("m2m:cin", []))


def container(http_url: str, path: str) -> dict[str, Any]:
    r = requests.get(
        f"{http_url}/{path}",
        headers={"X-M2M-Origin": "CAdmin", "X-M2M-RI": "check", "X-M2M-RVI": "3"},
        timeout=30,
    )
    return dict(r.json()["m2m:cnt"])
