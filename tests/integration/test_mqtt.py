"""The MQTT binding (TS-0010) with a real Mosquitto and real CSE processes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.conftest import CSEProcess
from tests.support import Mosquitto, MQTTPeer

pytestmark = pytest.mark.integration

AE = {"api": "Nmqtt.test", "rr": True, "srv": ["3"]}


@pytest.fixture
def peer(mosquitto: Mosquitto) -> Iterator[MQTTPeer]:
    p = MQTTPeer(mosquitto.port, "Cmqtt")
    yield p
    p.close()


def test_same_results_as_http(mqtt_cse: Callable[..., CSEProcess], peer: MQTTPeer) -> None:
    cse = mqtt_cse()
    reg = peer.request(
        {"op": 1, "to": "cse-in", "ty": 2, "pc": {"m2m:ae": {"rn": "dev", **AE}}}, reg=True
    )
    assert reg["rsc"] == 2001 and reg["pc"]["m2m:ae"]["aei"] == "Cmqtt"
    assert reg["to"] == "Cmqtt" and reg["fr"] == "/id-in" and reg["rvi"] == "3"
    cnt = peer.request(
        {"op": 1, "to": "cse-in/dev", "ty": 3, "pc": {"m2m:cnt": {"rn": "t", "mni": 3}}}
    )
    assert cnt["rsc"] == 2001
    for i in range(5):
        r = peer.request(
            {"op": 1, "to": "/id-in/cse-in/dev/t", "ty": 4, "pc": {"m2m:cin": {"con": str(i)}}}
        )
        assert r["rsc"] == 2001
    la = peer.request({"op": 2, "to": "cse-in/dev/t/la"})
    assert la["rsc"] == 2000 and la["pc"]["m2m:cin"]["con"] == "4"
    disc = peer.request({"op": 2, "to": "cse-in/dev", "fc": {"fu": 1, "ty": [4]}})
    assert len(disc["pc"]["m2m:uril"]) == 3
    denied = peer.request({"op": 2, "to": "cse-in/dev", "fr": "Cstranger"})
    assert denied["rsc"] == 4103
    upd = peer.request({"op": 3, "to": "cse-in/dev/t", "pc": {"m2m:cin": {"con": "x"}}})
    assert upd["rsc"] == 4000
    # the same state over HTTP
    cnt_http = cse.client.retrieve("cse-in/dev/t", origin="Cmqtt")["m2m:cnt"]
    assert (cnt_http["cni"], cnt_http["cbs"]) == (3, 3)
    assert peer.request({"op": 4, "to": "cse-in/dev"})["rsc"] == 2002
    assert not peer.duplicates
    assert cse.terminate() == 0
    assert "stopped cleanly" in cse.log()


def test_bad_input_gets_error_responses_and_never_kills_the_cse(
    mqtt_cse: Callable[..., CSEProcess], peer: MQTTPeer
) -> None:
    cse = mqtt_cse(M2M_MAX_REQUEST_BYTES="2000")
    peer.publish_raw(b"{not json")
    rqi_missing_op = peer.send({"to": "cse-in"})
    no_to = peer.send({"op": 2, "to": ""})
    big = peer.send({"op": 1, "to": "cse-in", "ty": 3, "pc": {"m2m:cnt": {"lbl": ["x" * 3000]}}})
    assert peer.wait(rqi_missing_op)["rsc"] == 4000
    assert peer.wait(no_to)["rsc"] == 4000
    assert peer.wait(big)["rsc"] == 4000
    assert peer.wait("")["rsc"] == 4000  # the non-JSON payload: no rqi to echo
    peer.publish_raw(b"{}", serialization="xml")
    time.sleep(0.5)
    assert [b["rsc"] for t, b in peer.all_responses if t.endswith("/xml")] == [4015]
    ok = peer.request({"op": 2, "to": "cse-in", "fr": "CAdmin"})
    assert ok["rsc"] == 2000  # still serving
    assert cse.proc.poll() is None


def test_notifications_to_an_ae_reached_over_mqtt(
    mqtt_cse: Callable[..., CSEProcess], mosquitto: Mosquitto, peer: MQTTPeer
) -> None:
    mqtt_cse()
    poa = f"mqtt://127.0.0.1:{mosquitto.port}"
    reg = peer.request(
        {"op": 1, "to": "cse-in", "ty": 2, "pc": {"m2m:ae": {"rn": "watch", "poa": [poa], **AE}}},
        reg=True,
    )
    assert reg["rsc"] == 2001
    peer.request({"op": 1, "to": "cse-in/watch", "ty": 3, "pc": {"m2m:cnt": {"rn": "c"}}})
    other = MQTTPeer(mosquitto.port, "Cother")
    try:
        other.request(
            {"op": 1, "to": "cse-in", "ty": 2, "pc": {"m2m:ae": {"rn": "o", **AE}}}, reg=True
        )
        # Cother subscribes Cmqtt (reached via its mqtt:// poa): a verification request first
        sub = other.request(
            {
                "op": 1,
                "to": "cse-in/o",
                "ty": 23,
                "pc": {"m2m:sub": {"nu": ["Cmqtt"], "enc": {"net": [3]}}},
            }
        )
        assert sub["rsc"] == 2001, sub
        first = peer.wait_incoming(1)[0]
        assert first["op"] == 5 and first["pc"]["m2m:sgn"]["vrq"] is True
        other.request({"op": 1, "to": "cse-in/o", "ty": 3, "pc": {"m2m:cnt": {"rn": "new"}}})
        got = peer.wait_incoming(2)
        assert got[1]["pc"]["m2m:sgn"]["nev"]["rep"]["m2m:cnt"]["rn"] == "new"
        # a target that refuses verification: 5204, nothing stored
        peer.answer_rsc = 4103
        refused = other.request(
            {"op": 1, "to": "cse-in/o", "ty": 23, "pc": {"m2m:sub": {"rn": "no", "nu": ["Cmqtt"]}}}
        )
        assert refused["rsc"] == 5204
        assert other.request({"op": 2, "to": "cse-in/o/no"})["rsc"] == 4004
    finally:
        other.close()


def test_lost_broker_shows_in_readyz_and_http_keeps_working(
    mqtt_cse: Callable[..., CSEProcess], mosquitto: Mosquitto
) -> None:
    cse = mqtt_cse()
    mosquitto.stop()
    deadline = time.time() + 10
    while time.time() < deadline and requests.get(cse.url + "/readyz", timeout=5).ok:
        time.sleep(0.1)
    r = requests.get(cse.url + "/readyz", timeout=5)
    assert r.status_code == 503 and "mqtt" in r.json()["problems"]
    assert cse.client.register("during", origin="Cduring").rsc == 2001
    mosquitto.start()  # same port
    deadline = time.time() + 40
    while time.time() < deadline and not requests.get(cse.url + "/readyz", timeout=5).ok:
        time.sleep(0.3)
    assert requests.get(cse.url + "/readyz", timeout=5).status_code == 200
    p = MQTTPeer(mosquitto.port, "Cafter")
    try:
        assert p.request({"op": 2, "to": "cse-in", "fr": "CAdmin"})["rsc"] == 2000
    finally:
        p.close()


def test_replicas_share_the_work_exactly_once(
    mqtt_cse: Callable[..., CSEProcess], peer: MQTTPeer
) -> None:
    a, b = mqtt_cse(), mqtt_cse()
    peer.request({"op": 1, "to": "cse-in", "ty": 2, "pc": {"m2m:ae": {"rn": "r", **AE}}}, reg=True)
    peer.request({"op": 1, "to": "cse-in/r", "ty": 3, "pc": {"m2m:cnt": {"rn": "c"}}})
    rqis = [
        peer.send({"op": 1, "to": "cse-in/r/c", "ty": 4, "pc": {"m2m:cin": {"con": str(i)}}})
        for i in range(200)
    ]
    answers = [peer.wait(rqi, timeout=30) for rqi in rqis]
    assert all(x["rsc"] == 2001 for x in answers)
    assert not peer.duplicates
    assert a.client.retrieve("cse-in/r/c")["m2m:cnt"]["cni"] == 200

    def handled(cse: CSEProcess) -> float:
        text = requests.get(cse.url + "/metrics", timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith('m2m_requests_total{binding="mqtt",op="CREATE"')
        )

    counts = handled(a), handled(b)
    assert sum(counts) == 202  # AE registration is a CREATE too: 1 + 1 + 200
    assert min(counts) > 0, counts  # both replicas took a share


def test_broker_with_tls_and_passwords(
    cse_process: Callable[..., CSEProcess], tmp_path: Path
) -> None:
    broker = Mosquitto(tmp_path / "tls-broker", users={"cse": "s3cret", "dev": "devpw"}, tls=True)
    broker.start()
    try:
        cse = cse_process(
            env={
                "M2M_MQTT": "true",
                "M2M_MQTT_HOST": "127.0.0.1",
                "M2M_MQTT_PORT": str(broker.port),
                "M2M_MQTT_TLS": "true",
                "M2M_MQTT_CA_FILE": str(broker.ca_file),
                "M2M_MQTT_USERNAME": "cse",
                "M2M_MQTT_PASSWORD": "s3cret",
            }
        )
        assert "s3cret" not in cse.log()
        peer = MQTTPeer(broker.port, "Ctls", ca_file=broker.ca_file, auth=("dev", "devpw"))
        try:
            reg = peer.request(
                {"op": 1, "to": "cse-in", "ty": 2, "pc": {"m2m:ae": {"rn": "tls", **AE}}}, reg=True
            )
            assert reg["rsc"] == 2001
        finally:
            peer.close()
    finally:
        broker.cleanup()


def test_wrong_broker_password_keeps_the_cse_unready(
    cse_process: Callable[..., CSEProcess], tmp_path: Path
) -> None:
    broker = Mosquitto(tmp_path / "auth-broker", users={"cse": "right"})
    broker.start()
    try:
        cse = cse_process(
            ready=False,
            env={
                "M2M_MQTT": "true",
                "M2M_MQTT_HOST": "127.0.0.1",
                "M2M_MQTT_PORT": str(broker.port),
                "M2M_MQTT_USERNAME": "cse",
                "M2M_MQTT_PASSWORD": "wrong",
            },
        )
        deadline = time.time() + 20
        problems: dict[str, str] = {}
        while time.time() < deadline:
            try:
                r = requests.get(cse.url + "/readyz", timeout=2)
                problems = r.json()["problems"]
                if "mqtt" in problems and "refused" in problems["mqtt"]:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        assert "refused" in problems.get("mqtt", ""), problems
        assert cse.client.retrieve("cse-in").rsc == 2000  # HTTP still serves
    finally:
        broker.cleanup()


def test_cbor_serialization_over_mqtt(
    mqtt_cse: Callable[..., CSEProcess], mosquitto: Mosquitto
) -> None:
    import cbor2
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    mqtt_cse()
    got: list[dict[str, Any]] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cbor-peer", protocol=mqtt.MQTTv311)
    c.on_message = lambda _c, _u, m: got.append(cbor2.loads(m.payload))
    c.connect("127.0.0.1", mosquitto.port)
    c.loop_start()
    try:
        c.subscribe("/oneM2M/reg_resp/Ccbor/id-in/cbor", qos=1)
        time.sleep(0.3)
        primitive = {
            "op": 1,
            "to": "cse-in",
            "fr": "Ccbor",
            "rqi": "cb-1",
            "rvi": "3",
            "ty": 2,
            "pc": {"m2m:ae": {"rn": "cbor", **AE}},
        }
        c.publish("/oneM2M/reg_req/Ccbor/id-in/cbor", cbor2.dumps(primitive), qos=1)
        deadline = time.time() + 10
        while not got and time.time() < deadline:
            time.sleep(0.05)
        assert got and got[0]["rsc"] == 2001 and got[0]["pc"]["m2m:ae"]["aei"] == "Ccbor"
    finally:
        c.loop_stop()
        c.disconnect()
