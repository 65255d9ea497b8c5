"""<container> and <contentInstance>: limits, counters, virtual resources, immutability."""

from __future__ import annotations

from typing import Any

from tests.support import M2MClient


def cin(client: M2MClient, path: str, con: str, origin: str = "Capp", **kw: Any) -> Any:
    return client.create(
        path, 4, {"m2m:cin": {"con": con, "cnf": "text/plain:0", **kw}}, origin=origin
    )


def test_container_create_and_update(client: M2MClient, ae: dict[str, Any]) -> None:
    cnt = ae["cnt"]
    assert cnt["cni"] == 0 and cnt["cbs"] == 0 and cnt["st"] == 0 and "cr" not in cnt
    r = client.update(
        "cse-in/app/data", {"m2m:cnt": {"lbl": ["t"], "mni": 10, "mbs": 9999}}, origin="Capp"
    )
    assert r.rsc == 2004
    body = r["m2m:cnt"]
    assert (body["mni"], body["mbs"], body["st"], body["lbl"]) == (10, 9999, 1, ["t"])
    assert client.update("cse-in/app/data", {"m2m:cnt": {}}, origin="Capp").rsc == 2004
    assert client.update("cse-in/app/data", {"m2m:cnt": {"mni": -1}}, origin="Capp").rsc == 4000
    assert client.update("cse-in/app/data", {"m2m:cnt": {"cni": 3}}, origin="Capp").rsc == 4000


def test_creator_attribute(client: M2MClient, ae: dict[str, Any]) -> None:
    r = client.create("cse-in/app", 3, {"m2m:cnt": {"cr": None}}, origin="Capp")
    assert r.rsc == 2001 and r["m2m:cnt"]["cr"] == "Capp"
    assert client.create("cse-in/app", 3, {"m2m:cnt": {"cr": "x"}}, origin="Capp").rsc == 4000


def test_nested_containers_and_generated_names(client: M2MClient, ae: dict[str, Any]) -> None:
    r = client.create("cse-in/app/data", 3, {"m2m:cnt": {}}, origin="Capp")
    assert r.rsc == 2001
    rn = r["m2m:cnt"]["rn"]
    assert client.retrieve(f"cse-in/app/data/{rn}", origin="Capp").rsc == 2000


def test_mni_keeps_newest_and_counts_exact(client: M2MClient, ae: dict[str, Any]) -> None:
    client.update("cse-in/app/data", {"m2m:cnt": {"mni": 3}}, origin="Capp")
    for i, value in enumerate(["a", "b", "c", "d"]):
        assert cin(client, "cse-in/app/data", value).rsc == 2001
        cnt = client.retrieve("cse-in/app/data", origin="Capp")["m2m:cnt"]
        assert cnt["cni"] == min(i + 1, 3)
    assert client.retrieve("cse-in/app/data/la", origin="Capp")["m2m:cin"]["con"] == "d"
    assert client.retrieve("cse-in/app/data/ol", origin="Capp")["m2m:cin"]["con"] == "b"
    r = client.update("cse-in/app/data", {"m2m:cnt": {"mni": 1}}, origin="Capp")
    assert r["m2m:cnt"]["cni"] == 1 and r["m2m:cnt"]["cbs"] == 1
    assert client.retrieve("cse-in/app/data/ol", origin="Capp")["m2m:cin"]["con"] == "d"


def test_mbs_limits_and_rejects_oversize_instance(client: M2MClient, ae: dict[str, Any]) -> None:
    client.update("cse-in/app/data", {"m2m:cnt": {"mbs": 30}}, origin="Capp")
    assert cin(client, "cse-in/app/data", "x" * 30).rsc == 2001
    assert cin(client, "cse-in/app/data", "x" * 31).rsc == 5207
    for _ in range(10):
        assert cin(client, "cse-in/app/data", "y" * 10).rsc == 2001
    cnt = client.retrieve("cse-in/app/data", origin="Capp")["m2m:cnt"]
    assert (cnt["cni"], cnt["cbs"]) == (3, 30)


def test_content_instance_rules(client: M2MClient, ae: dict[str, Any]) -> None:
    r = cin(client, "cse-in/app/data", "21.5", rn="first")
    assert r.rsc == 2001
    body = r["m2m:cin"]
    assert body["cs"] == 4 and body["con"] == "21.5" and "acpi" not in body
    assert body["pi"] == ae["cnt"]["ri"]
    assert (
        client.update("cse-in/app/data/first", {"m2m:cin": {"con": "x"}}, origin="Capp").rsc == 4005
    )
    assert cin(client, "cse-in/app/data", "dup", rn="first").rsc == 4105
    assert cin(client, "cse-in/app", "wrong parent").rsc == 4108
    for bad_cnf in ("text", "text/plain", "text/plain:9", "text/plain:0:0:0"):
        assert cin(client, "cse-in/app/data", "v", cnf=bad_cnf).rsc == 4000, bad_cnf
    assert client.create("cse-in/app/data", 4, {"m2m:cin": {"con": 23}}, origin="Capp").rsc == 4000
    assert (
        client.create(
            "cse-in/app/data", 4, {"m2m:cin": {"con": "v", "acpi": ["x"]}}, origin="Capp"
        ).rsc
        == 4000
    )
    assert client.create("cse-in/app/data", 4, {"m2m:cin": {}}, origin="Capp").rsc == 4000
    cnt = client.retrieve("cse-in/app/data", origin="Capp")["m2m:cnt"]
    assert (cnt["cni"], cnt["cbs"]) == (1, 4)  # failed creates left nothing behind


def test_la_ol_on_empty_container_and_delete_through_them(
    client: M2MClient, ae: dict[str, Any]
) -> None:
    assert client.retrieve("cse-in/app/data/la", origin="Capp").rsc == 4004
    for v in "abc":
        cin(client, "cse-in/app/data", v)
    assert client.delete("cse-in/app/data/ol", origin="Capp").rsc == 2002
    assert client.delete("cse-in/app/data/la", origin="Capp").rsc == 2002
    assert client.retrieve("cse-in/app/data/la", origin="Capp")["m2m:cin"]["con"] == "b"
    cnt = client.retrieve("cse-in/app/data", origin="Capp")["m2m:cnt"]
    assert (cnt["cni"], cnt["cbs"]) == (1, 1)


def test_delete_container_removes_subtree(client: M2MClient, ae: dict[str, Any]) -> None:
    r = cin(client, "cse-in/app/data", "v")
    ri = r["m2m:cin"]["ri"]
    assert client.delete("cse-in/app/data", origin="Capp").rsc == 2002
    assert client.retrieve(ri, origin="Capp").rsc == 4004
    assert client.retrieve("cse-in/app/data", origin="Capp").rsc == 4004


def test_result_content_on_create(client: M2MClient, ae: dict[str, Any]) -> None:
    path = "cse-in/app/data"
    body = {"m2m:cin": {"con": "v"}}
    r0 = client.create(path, 4, body, origin="Capp", params={"rcn": "0"})
    assert r0.rsc == 2001 and r0.body is None
    r2 = client.create(path, 4, body, origin="Capp", params={"rcn": "2"})
    assert r2["m2m:uri"].startswith("cse-in/app/data/")
    r3 = client.create(path, 4, body, origin="Capp", params={"rcn": "3"})
    assert r3["m2m:rce"]["m2m:cin"]["con"] == "v" and r3["m2m:rce"]["uri"].startswith(path)
    r9 = client.create(
        "cse-in/app", 3, {"m2m:cnt": {"mni": 5, "lbl": ["x"]}}, origin="Capp", params={"rcn": "9"}
    )
    assert "ri" in r9["m2m:cnt"] and "mni" not in r9["m2m:cnt"] and "lbl" not in r9["m2m:cnt"]


def test_disable_retrieval(client: M2MClient, ae: dict[str, Any]) -> None:
    client.create("cse-in/app", 3, {"m2m:cnt": {"rn": "secret", "disr": True}}, origin="Capp")
    for i in range(3):
        cin(client, "cse-in/app/secret", str(i), rn=f"c{i}")
    for path in ("cse-in/app/secret/c0", "cse-in/app/secret/la", "cse-in/app/secret/ol"):
        assert client.retrieve(path, origin="Capp").rsc == 4005, path
    refs = client.retrieve("cse-in/app/secret", origin="Capp", params={"rcn": "6"})
    assert refs["m2m:rrl"]["rrf"] == []
    found = client.retrieve("cse-in/app", origin="Capp", params={"fu": "1", "ty": "4"})
    assert all("secret" not in u for u in found["m2m:uril"])
    r = client.update("cse-in/app/secret", {"m2m:cnt": {"disr": False}}, origin="Capp")
    assert r.rsc == 2004 and r["m2m:cnt"]["disr"] is False and r["m2m:cnt"]["cni"] == 0
    assert cin(client, "cse-in/app/secret", "again", rn="c0").rsc == 2001


def test_deletion_count(client: M2MClient, ae: dict[str, Any]) -> None:
    cin(client, "cse-in/app/data", "once-twice", rn="d", dcnt=2)
    seen = [
        client.retrieve("cse-in/app/data/d", origin="Capp")["m2m:cin"]["dcnt"] for _ in range(2)
    ]
    assert seen == [2, 1]
    assert client.retrieve("cse-in/app/data/d", origin="Capp").rsc == 4004
    assert client.retrieve("cse-in/app/data", origin="Capp")["m2m:cnt"]["cni"] == 0
