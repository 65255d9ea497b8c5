"""A stand-in CSE on MQTT: answers every oneM2M request primitive with success and stores
nothing. With it the simulator's own ceiling (simulator + broker) is measured apart from the CSE.

It takes requests through a shared subscription, like the CSE's replicas, so several echo
processes split the work."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import time
from types import FrameType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from m2mcloud.net import no_delay

log = logging.getLogger("m2mcloud.devices.echo")

_ANSWER = {1: 2001, 2: 2000, 3: 2004, 4: 2002, 5: 2000}


def _answer(payload: bytes, cse_id: str) -> tuple[str, bytes] | None:
    try:
        req = json.loads(payload)
        fr = req["fr"]
        rsc = _ANSWER.get(int(req["op"]), 4000)
    except (ValueError, KeyError, TypeError):
        return None
    resp: dict[str, Any] = {
        "rsc": rsc,
        "rqi": req.get("rqi"),
        "to": fr,
        "fr": f"/{cse_id}",
        "rvi": req.get("rvi", "3"),
    }
    if int(req["op"]) == 1 and int(req.get("ty", 0)) == 2:
        resp["pc"] = {
            "m2m:ae": {"aei": fr, "rn": (req.get("pc") or {}).get("m2m:ae", {}).get("rn")}
        }
    return fr, json.dumps(resp, separators=(",", ":")).encode()


def _serve_one(host: str, port: int, cse_id: str, index: int) -> int:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"m2mcloud-echo-{os.getpid()}-{index}"
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.on_socket_open = no_delay
    answered = {"n": 0}

    def on_connect(c: mqtt.Client, u: Any, flags: Any, rc: Any, props: Any) -> None:
        c.subscribe(
            [
                (f"$share/m2mcloud-echo//oneM2M/req/+/{cse_id}/json", 1),
                (f"$share/m2mcloud-echo//oneM2M/reg_req/+/{cse_id}/json", 1),
            ]
        )

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        out = _answer(bytes(msg.payload), cse_id)
        if out is None:
            return
        fr, body = out
        kind = "reg_resp" if msg.topic.startswith("/oneM2M/reg_req/") else "resp"
        c.publish(f"/oneM2M/{kind}/{fr}/{cse_id}/json", body, msg.qos)
        answered["n"] += 1

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        client.disconnect()

    def on_subscribe(c: mqtt.Client, u: Any, mid: int, codes: Any, props: Any) -> None:
        print(f"m2mcloud devices echo: answering requests to {cse_id} on {host}:{port}", flush=True)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        client.connect(host, port, 60)
    except OSError as exc:
        print(f"m2mcloud devices echo: cannot reach the MQTT broker {host}:{port}: {exc}")
        return 3
    client.loop_forever()
    log.info("echo %d answered %d requests", index, answered["n"])
    return 0


def serve_echo(host: str, port: int, cse_id: str = "id-in", processes: int = 1) -> int:
    if processes <= 1:
        return _serve_one(host, port, cse_id, 0)
    procs = [
        multiprocessing.Process(target=_serve_one, args=(host, port, cse_id, i), daemon=True)
        for i in range(processes)
    ]
    for p in procs:
        p.start()

    def forward(signum: int, _frame: FrameType | None) -> None:
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while any(p.is_alive() for p in procs):
        time.sleep(0.2)
    return max((p.exitcode or 0) for p in procs)
