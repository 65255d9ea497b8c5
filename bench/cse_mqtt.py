"""contentInstance CREATE over MQTT (QoS 1) through a real Mosquitto into one CSE process.

    python -m bench.cse_mqtt [--engine sqlite|postgresql] [--seconds 20] [--clients 8]
                             [--window 4]

Each client is one MQTT connection (its own originator and container) keeping `window` requests
outstanding. Target (issue #3): >= 1,000 creates/s, p99 <= 50 ms, 0 lost.
"""

from __future__ import annotations

import argparse
import json
import selectors
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from tests.support import Mosquitto

from bench.harness import Client, Result, cse_process, database, machine_line, rss_mb
from m2mcloud.net import no_delay

AE = {"api": "Nbench", "rr": False, "srv": ["3"]}


class Publisher:
    """One MQTT connection (its own originator and container) keeping `window` requests
    outstanding. All publishers run in one thread on one selector (paho's external-loop API):
    the client spends its CPU on MQTT, not on thread switches, so the figure is the CSE's."""

    def __init__(self, port: int, name: str, window: int) -> None:
        self.name, self.window = name, window
        self.sent: dict[str, float] = {}
        self.latencies: list[float] = []
        self.errors = 0
        self.seq = 0
        self.until = 0.0
        self.topic = f"/oneM2M/req/{name}/id-in/json"
        self.payload: dict[str, object] = {
            "op": 1,
            "to": f"cse-in/{name}/data",
            "fr": name,
            "ty": 4,
            "rvi": "3",
            "pc": {
                "m2m:cin": {
                    "cnf": "application/json:0",
                    "con": '{"temperature":21.4,"ts":1764000000}',
                }
            },
        }
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"bench-{name}", protocol=mqtt.MQTTv311
        )
        self.client.max_inflight_messages_set(window * 2)
        self.client.on_message = self._on_message
        self.client.on_socket_open = no_delay
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"/oneM2M/resp/{name}/id-in/json", qos=1)

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        body = json.loads(msg.payload)
        t0 = self.sent.pop(body.get("rqi"), None)
        if t0 is not None:
            self.latencies.append(now - t0)
            if body.get("rsc") != 2001:
                self.errors += 1
        self.fill(now)

    def fill(self, now: float) -> None:
        """Keep `window` requests outstanding until the run ends."""
        while len(self.sent) < self.window and now < self.until:
            self.seq += 1
            rqi = f"{self.name}-{self.seq}"
            self.sent[rqi] = time.perf_counter()
            self.payload["rqi"] = rqi
            self.client.publish(self.topic, json.dumps(self.payload), qos=1)


def drive(pubs: list[Publisher], until: float, grace: float) -> int:
    """Run all publishers on one selector until `until`, then wait up to `grace` seconds for
    outstanding answers. Returns how many requests got no answer (lost)."""
    sel = selectors.DefaultSelector()
    for p in pubs:
        sel.register(p.client.socket(), selectors.EVENT_READ, p)  # type: ignore[arg-type]
        p.until = until
    deadline = until + grace
    last_misc = 0.0
    while True:
        now = time.perf_counter()
        if (now >= until and not any(p.sent for p in pubs)) or now >= deadline:
            break
        for p in pubs:
            p.fill(now)
            if p.client.want_write():
                p.client.loop_write()
        for key, _ in sel.select(timeout=0.05):
            key.data.client.loop_read()
        if now - last_misc > 1:
            last_misc = now
            for p in pubs:
                p.client.loop_misc()
    sel.close()
    lost = sum(len(p.sent) for p in pubs)
    for p in pubs:
        p.client.disconnect()
    return lost


def pubs_ready(port: int, names: list[str], window: int) -> list[Publisher]:
    pubs = [Publisher(port, n, window) for n in names]
    for p in pubs:  # CONNACK and SUBACK before the clock starts
        while not p.client.is_connected():
            p.client.loop(timeout=0.1)
        p.client.loop(timeout=0.1)
    return pubs


def run(engine: str, db_url: str, tmp: Path, seconds: float, clients: int, window: int) -> None:
    broker = Mosquitto(tmp / "mosquitto")
    broker.start()
    try:
        env = {"M2M_MQTT": "true", "M2M_MQTT_HOST": "127.0.0.1", "M2M_MQTT_PORT": str(broker.port)}
        with cse_process(db_url, tmp / "data", extra_env=env) as (port, proc):
            names = [f"Cmq{i}" for i in range(clients)]
            for name in names:
                c = Client(port, name)
                assert c.call("POST", "/cse-in", {"m2m:ae": {"rn": name, **AE}}, ty=2)[0] == 2001
                assert (
                    c.call("POST", f"/cse-in/{name}", {"m2m:cnt": {"rn": "data"}}, ty=3)[0] == 2001
                )
            warm = pubs_ready(broker.port, names, window)
            drive(warm, time.perf_counter() + 2, grace=10)
            pubs = pubs_ready(broker.port, names, window)
            start = time.perf_counter()
            lost = drive(pubs, start + seconds, grace=10)
            elapsed = time.perf_counter() - start
            result = Result(f"{engine}: MQTT CREATE cin ({clients}x{window})")
            result.latencies = [x for p in pubs for x in p.latencies]
            result.ok = len(result.latencies) - sum(p.errors for p in pubs)
            result.errors = sum(p.errors for p in pubs)
            result.seconds = elapsed
            print(result.line())
            acked = sum(len(p.latencies) - p.errors for p in warm + pubs)
            admin = Client(port, "CAdmin")
            stored = sum(admin.call("GET", f"/cse-in/{n}/data")[1]["m2m:cnt"]["cni"] for n in names)
            print(
                f"{engine}: lost (no response within 10 s after the run) = {lost}; "
                f"stored {stored} instances for {acked} acknowledged creates "
                f"({'exactly' if stored == acked else 'MISMATCH:'} once); "
                f"CSE RSS {rss_mb(proc.pid):.0f} MB"
            )
    finally:
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--window", type=int, default=4)
    args = parser.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with database(args.engine, tmp) as url:
            run(args.engine, url, tmp, args.seconds, args.clients, args.window)


if __name__ == "__main__":
    main()
