"""<subscription>: verification, notification content, event types, counters, deletion."""

from __future__ import annotations

import time
from typing import Any

from tests.support import M2MClient, NotificationReceiver


def sub(client: M2MClient, path: str, nu: list[str], origin: str = "Capp", **attrs: Any) -> Any:
    return client.create(path, 23, {"m2m:sub": {"nu": nu, **attrs}}, origin=origin)


def test_verification_then_notifications(
    client: M2MClient, ae: dict[str, Any], receiver: NotificationReceiver
) -> None:
    r = sub(
        client, "cse-in/app/data", [receiver.url], rn="s1", enc={"net": [1, 3]}, su=receiver.url
    )
    assert r.rsc == 2001, r.body
    s = r["m2m:sub"]
    assert s["nct"] == 1 and s["enc"]["net"] == [1, 3] and s["nu"] == [receiver.url]
    first = receiver.received[0]["m2m:sgn"]
    assert first["vrq"] is True and first["sur"].endswith(s["ri"])
    assert receiver.headers[0]["content-type"] == "application/json"
    assert receiver.headers[0]["x-m2m-origin"] == "/id-in"

    client.create("cse-in/app/data", 4, {"m2m:cin": {"con": "21"}}, origin="Capp")
    client.update("cse-in/app/data", {"m2m:cnt": {"lbl": ["x"]}}, origin="Capp")
    got = receiver.wait_for(3)
    events = [n["m2m:sgn"]["nev"] for n in got[1:]]
    assert [e["net"] for e in events] == [3, 1]
    assert events[0]["rep"]["m2m:cin"]["con"] == "21"
    assert events[1]["rep"]["m2m:cnt"]["lbl"] == ["x"]

    assert client.delete("cse-in/app/data/s1", origin="Capp").rsc == 2002
    got = receiver.wait_for(4)
    assert got[3]["m2m:sgn"]["sud"] is True


def test_verification_failure_is_5204_and_nothing_stored(
    client: M2MClient, ae: dict[str, Any], receiver: NotificationReceiver
) -> None:
    receiver.answer_rsc = 4005
    r = sub(client, "cse-in/app/data", [receiver.url], rn="refused")
    assert r.rsc == 5204
    assert client.retrieve("cse-in/app/data/refused", origin="Capp").rsc == 4004
    unreachable = sub(client, "cse-in/app/data", ["http://127.0.0.1:9/x"], rn="dead")
    assert unreachable.rsc == 5204
    assert client.retrieve("cse-in/app/data/dead", origin="Capp").rsc == 4004


def test_no_verification_for_the_subscriber_itself(client: M2MClient, ae: dict[str, Any]) -> None:
    r = sub(client, "cse-in/app/data", ["Capp"], rn="self")
    assert r.rsc == 2001


def test_ae_target_without_poa_fails_verification(client: M2MClient, ae: dict[str, Any]) -> None:
    client.register("other", origin="Cother")
    assert sub(client, "cse-in/app/data", ["Cother"]).rsc == 5204


def test_notification_to_ae_poa(
    client: M2MClient, ae: dict[str, Any], receiver: NotificationReceiver
) -> None:
    client.update("cse-in/app", {"m2m:ae": {"poa": [receiver.url]}}, origin="Capp")
    client.register("watcher", origin="Cwatch", poa=[receiver.url])
    acp = client.create(
        "cse-in/app",
        1,
        {
            "m2m:acp": {
                "pv": {"acr": [{"acor": ["Cwatch", "Capp"], "acop": 63}]},
                "pvs": {"acr": [{"acor": ["Capp"], "acop": 63}]},
            }
        },
        origin="Capp",
    )
    client.update("cse-in/app/data", {"m2m:cnt": {"acpi": [acp["m2m:acp"]["ri"]]}}, origin="Capp")
    r = sub(client, "cse-in/app/data", ["Cwatch"], origin="Cwatch", enc={"net": [3]})
    assert r.rsc == 2001, r.body
    assert client.create("cse-in/app/data", 4, {"m2m:cin": {"con": "v"}}, origin="Capp").rsc == 2001
    assert len(receiver.wait_for(1)) >= 1
    assert receiver.events()[-1]["m2m:sgn"]["nev"]["net"] == 3


def test_content_types_and_filters(
    client: M2MClient, ae: dict[str, Any], receiver: NotificationReceiver
) -> None:
    sub(client, "cse-in/app/data", [receiver.url], nct=2)
    sub(client, "cse-in/app/data", [receiver.url], nct=3, enc={"net": [3]})
    sub(client, "cse-in/app/data", [receiver.url], enc={"net": [1], "atr": ["lbl"]})
    client.update("cse-in/app/data", {"m2m:cnt": {"mni": 5}}, origin="Capp")
    client.update("cse-in/app/data", {"m2m:cnt": {"lbl": ["b"]}}, origin="Capp")
    cin = client.create("cse-in/app/data", 4, {"m2m:cin": {"con": "v"}}, origin="Capp")
    receiver.wait_for(3 + 4)
    time.sleep(0.2)
    reps = [n["m2m:sgn"]["nev"]["rep"] for n in receiver.events()]
    assert {"m2m:cnt": {"mni": 5}} in reps  # nct=2: only what was sent
    assert {"m2m:cnt": {"lbl": ["b"]}} in reps
    assert {"m2m:uri": cin["m2m:cin"]["ri"]} in reps  # nct=3
    full = [r for r in reps if "m2m:cnt" in r and "ri" in r["m2m:cnt"]]
    assert len(full) == 1 and full[0]["m2m:cnt"]["lbl"] == ["b"]  # atr=lbl: mni update skipped


def test_invalid_subscriptions(
    client: M2MClient, ae: dict[str, Any], receiver: NotificationReceiver
) -> None:
    path = "cse-in/app/data"
    assert sub(client, path, [receiver.url], nct=2, enc={"net": [3]}).rsc == 4000
    assert sub(client, path, [receiver.url], enc={"net": [99]}).rsc == 4000
    assert sub(client, path, [receiver.url], enc={"chty": [2]}).rsc == 4000
    assert sub(client, path, []).rsc == 4000
    assert client.create(path, 23, {"m2m:sub": {"enc": {"net": [1]}}}, origin="Capp").rsc == 4000
    assert sub(client, path, [receiver.url], origin="Cstranger").rsc == 4103


def test_expiration_counter_ends_subscription(
    client: M2MClient, ae: dict[str, Any], receiver: NotificationReceiver
) -> None:
    sub(client, "cse-in/app", [receiver.url], rn="twice", exc=2, enc={"net": [3]}, su=receiver.url)
    client.create("cse-in/app", 3, {"m2m:cnt": {"rn": "c1"}}, origin="Capp")
    assert client.retrieve("cse-in/app/twice", origin="Capp").rsc == 2000
    client.create("cse-in/app", 3, {"m2m:cnt": {"rn": "c2"}}, origin="Capp")
    assert client.retrieve("cse-in/app/twice", origin="Capp").rsc == 4004
    got = receiver.wait_for(4)
    assert got[-1]["m2m:sgn"].get("sud") is True


def test_deleting_subscribed_resource_notifies(
    client: M2MClient, ae: dict[str, Any], receiver: NotificationReceiver
) -> None:
    sub(client, "cse-in/app/data", [receiver.url], enc={"net": [2]}, su=receiver.url)
    client.delete("cse-in/app/data", origin="Capp")
    got = receiver.wait_for(3)
    kinds = [
        ("sud" if n["m2m:sgn"].get("sud") else n["m2m:sgn"].get("nev", {}).get("net"))
        for n in got[1:]
    ]
    assert kinds == [2, "sud"]


def test_delete_child_event(
    client: M2MClient, ae: dict[str, Any], receiver: NotificationReceiver
) -> None:
    sub(client, "cse-in/app/data", [receiver.url], enc={"net": [4]})
    client.update("cse-in/app/data", {"m2m:cnt": {"mni": 1}}, origin="Capp")
    client.create("cse-in/app/data", 4, {"m2m:cin": {"con": "a", "rn": "a"}}, origin="Capp")
    client.create("cse-in/app/data", 4, {"m2m:cin": {"con": "b", "rn": "b"}}, origin="Capp")
    client.delete("cse-in/app/data/b", origin="Capp")
    got = receiver.wait_for(2)
    time.sleep(0.2)
    events = receiver.events()
    # pruning "a" by mni is not a deletion event; deleting "b" is
    assert [e["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["rn"] for e in events] == ["b"]
    assert len(got) == 2


def test_notify_is_forwarded_to_the_ae(
    client: M2MClient, ae: dict[str, Any], receiver: NotificationReceiver
) -> None:
    client.update("cse-in/app", {"m2m:ae": {"poa": [receiver.url]}}, origin="Capp")
    sgn = {"m2m:sgn": {"nev": {"rep": {"m2m:cin": {"con": "x"}}, "net": 3}, "sur": "/x/y"}}
    r = client.request("POST", "cse-in/app", body=sgn, origin="Capp")
    assert r.rsc == 2000
    assert receiver.wait_for(1)[0] == sgn
    assert client.request("POST", "cse-in/app", body=sgn, origin="Cstranger").rsc == 4103
    assert client.request("POST", "cse-in/app/data", body=sgn, origin="Capp").rsc == 4005
    receiver.answer_rsc = 4004
    assert client.request("POST", "cse-in/app", body=sgn, origin="Capp").rsc == 4004


def _aggregates(receiver: NotificationReceiver) -> list[list[dict[str, Any]]]:
    return [n["m2m:agn"]["m2m:sgn"] for n in receiver.received if "m2m:agn" in n]


def test_batch_notify_by_number(
    client: M2MClient, ae: dict[str, Any], receiver: NotificationReceiver
) -> None:
    r = sub(client, "cse-in/app/data", [receiver.url], bn={"num": 3})
    assert r["m2m:sub"]["bn"]["num"] == 3 and r["m2m:sub"]["bn"]["dur"] > 0
    for i in range(4):
        client.update("cse-in/app/data", {"m2m:cnt": {"lbl": [str(i)]}}, origin="Capp")
    receiver.wait_for(2)  # verification + one aggregate
    time.sleep(0.3)
    batches = _aggregates(receiver)
    assert len(batches) == 1
    assert [s["nev"]["rep"]["m2m:cnt"]["lbl"] for s in batches[0]] == [["0"], ["1"], ["2"]]


def test_batch_notify_by_duration_and_latest_only(
    client: M2MClient, ae: dict[str, Any], receiver: NotificationReceiver
) -> None:
    r = sub(client, "cse-in/app/data", [receiver.url], bn={"dur": "PT1S"}, ln=True)
    assert r["m2m:sub"]["bn"]["dur"] == "PT1S" and "num" not in r["m2m:sub"]["bn"]
    for i in range(3):
        client.update("cse-in/app/data", {"m2m:cnt": {"lbl": [str(i)]}}, origin="Capp")
    time.sleep(0.5)
    assert _aggregates(receiver) == []  # held back until the duration is over
    receiver.wait_for(2, timeout=5)
    batches = _aggregates(receiver)
    assert len(batches) == 1 and len(batches[0]) == 1
    assert batches[0][0]["nev"]["rep"]["m2m:cnt"]["lbl"] == ["2"]
    assert receiver.headers[-1]["x-m2m-ec"] == "4"


def test_deleting_a_batching_subscription_flushes_it(
    client: M2MClient, ae: dict[str, Any], receiver: NotificationReceiver
) -> None:
    sub(client, "cse-in/app/data", [receiver.url], rn="b", bn={"num": 5}, su=receiver.url)
    client.update("cse-in/app/data", {"m2m:cnt": {"lbl": ["x"]}}, origin="Capp")
    client.delete("cse-in/app/data/b", origin="Capp")
    got = receiver.wait_for(3)
    assert "m2m:agn" in got[1] and got[2]["m2m:sgn"]["sud"] is True
    assert sub(client, "cse-in/app/data", [receiver.url], bn={"num": 0}).rsc == 4000
    assert sub(client, "cse-in/app/data", [receiver.url], bn={"dur": "soon"}).rsc == 4000


def test_delivery_is_retried_then_given_up(
    client: M2MClient, ae: dict[str, Any], receiver: NotificationReceiver, runtime: Any
) -> None:
    sub(client, "cse-in/app/data", [receiver.url], enc={"net": [3]})
    receiver.fail_next = 1  # the first attempt fails, the retry gets through
    client.create("cse-in/app/data", 4, {"m2m:cin": {"con": "retried"}}, origin="Capp")
    got = receiver.wait_for(2)
    assert got[1]["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"] == "retried"
    receiver.fail_next = 100  # more than notify_retries (2): given up, counted, not retried forever
    client.create("cse-in/app/data", 4, {"m2m:cin": {"con": "lost"}}, origin="Capp")
    deadline = time.time() + 10
    while time.time() < deadline and runtime.cse.notifier.failed == 0:
        time.sleep(0.05)
    assert runtime.cse.notifier.failed == 1
    assert receiver.fail_next == 100 - 2  # exactly notify_retries attempts were made


def test_notifications_in_the_serialization_the_ae_asks_for(
    client: M2MClient, ae: dict[str, Any], receiver: NotificationReceiver
) -> None:
    client.update(
        "cse-in/app",
        {"m2m:ae": {"poa": [receiver.url], "csz": ["application/cbor", "application/json"]}},
        origin="Capp",
    )
    assert sub(client, "cse-in/app/data", ["Capp"], enc={"net": [3]}).rsc == 2001
    client.create("cse-in/app/data", 4, {"m2m:cin": {"con": "binary"}}, origin="Capp")
    got = receiver.wait_for(1)
    assert receiver.headers[0]["content-type"] == "application/cbor"
    assert got[0]["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"] == "binary"
