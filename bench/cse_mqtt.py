"""contentInstance CREATE over MQTT (QoS 1) through a real Mosquitto into one CSE process.

    python -m bench.cse_mqtt [--engine sqlite|postgresql] [--seconds 20] [--clients 8]
                             [--window 4]

Each client is one MQTT connection (its own originator and container) keeping `window` requests
outstanding. Target (issue #3): >= 1,000 creates/s, p99 <= 50 ms, 0 lost.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from tests.support import Mosquitto

from bench.harness import Client, Result, cse_process, database, machine_line, rss_mb
from m2mcloud.net import no_delay

AE = {"api": "Nbench", "rr": False, "srv": ["3"]}


class Publisher:
    def __init__(self, port: int, name: str, window: int) -> None:
        self.name, self.window = name, window
        self.sent: dict[str, float] = {}
        self.latencies: list[float] = []
        self.errors = 0
        self.cond = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"bench-{name}", protocol=mqtt.MQTTv311
        )
        self.client.max_inflight_messages_set(window * 2)
        self.client.on_message = self._on_message
        self.client.on_socket_open = no_delay
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"/oneM2M/resp/{name}/id-in/json", qos=1)
        self.client.loop_start()
        time.sleep(0.2)
        self.seq = 0

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        now = time.perf_counter()
        with self.cond:
            t0 = self.sent.pop(body.get("rqi"), None)
            if t0 is not None:
                self.latencies.append(now - t0)
                if body.get("rsc") != 2001:
                    self.errors += 1
            self.cond.notify_all()

    def run(self, until: float) -> None:
        payload = {
            "op": 1,
            "to": f"cse-in/{self.name}/data",
            "fr": self.name,
            "ty": 4,
            "rvi": "3",
            "pc": {
                "m2m:cin": {
                    "cnf": "application/json:0",
                    "con": '{"temperature":21.4,"ts":1764000000}',
                }
            },
        }
        topic = f"/oneM2M/req/{self.name}/id-in/json"
        while time.perf_counter() < until:
            with self.cond:
                while len(self.sent) >= self.window:
                    self.cond.wait(0.5)
                self.seq += 1
                rqi = f"{self.name}-{self.seq}"
                self.sent[rqi] = time.perf_counter()
            payload["rqi"] = rqi
            self.client.publish(topic, json.dumps(payload), qos=1)

    def finish(self, grace: float) -> int:
        deadline = time.perf_counter() + grace
        with self.cond:
            while self.sent and time.perf_counter() < deadline:
                self.cond.wait(0.2)
            lost = len(self.sent)
        self.client.disconnect()
        self.client.loop_stop()
        return lost


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
            pubs = [Publisher(broker.port, n, window) for n in names]
            warm = [threading.Thread(target=p.run, args=(time.perf_counter() + 2,)) for p in pubs]
            for t in warm:
                t.start()
            for t in warm:
                t.join()
            for p in pubs:
                p.finish(10)
            pubs = [Publisher(broker.port, n, window) for n in names]
            start = time.perf_counter()
            threads = [threading.Thread(target=p.run, args=(start + seconds,)) for p in pubs]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            lost = sum(p.finish(10) for p in pubs)
            elapsed = time.perf_counter() - start
            result = Result(f"{engine}: MQTT CREATE cin ({clients}x{window})")
            result.latencies = [x for p in pubs for x in p.latencies]
            result.ok = len(result.latencies) - sum(p.errors for p in pubs)
            result.errors = sum(p.errors for p in pubs)
            result.seconds = elapsed
            print(result.line())
            print(
                f"{engine}: lost (no response within 10 s after the run) = {lost}; "
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
