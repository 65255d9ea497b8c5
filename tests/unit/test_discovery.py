"""Discovery (fu=1), filter criteria and result content."""

from __future__ import annotations

import time
from typing import Any

import pytest

from m2mcloud.cse.timeutil import format_ts
from tests.support import M2MClient


@pytest.fixture
def tree(client: M2MClient, ae: dict[str, Any]) -> dict[str, str]:
    before = format_ts(time.time() - 1)
    client.update("cse-in/app/data", {"m2m:cnt": {"lbl": ["cntLbl"]}}, origin="Capp")
    client.create("cse-in/app", 3, {"m2m:cnt": {"rn": "data2"}}, origin="Capp")
    for cnt, con, cnf in (("data", "aValue", "text/plain:0"), ("data2", "bValue", "text/x:0")):
        for i in range(5):
            r = client.create(
                f"cse-in/app/{cnt}",
                4,
                {"m2m:cin": {"con": con, "cnf": cnf, "lbl": [f"tag:{i}"]}},
                origin="Capp",
            )
            assert r.rsc == 2001
    return {"before": before, "after": format_ts(time.time() + 1)}


def disc(client: M2MClient, path: str = "cse-in/app", **params: Any) -> Any:
    return client.retrieve(path, origin="Capp", params={"fu": "1", **params})


def test_discovery_by_type_label_and_time(client: M2MClient, tree: dict[str, str]) -> None:
    assert disc(client, ty="3")["m2m:uril"] == ["cse-in/app/data", "cse-in/app/data2"]
    assert len(disc(client, ty="4")["m2m:uril"]) == 10
    assert len(disc(client, ty="3 4")["m2m:uril"]) == 12
    assert (
        len(
            client.retrieve("cse-in/app", origin="Capp", params={"fu": "1", "ty": ["3", "4"]})[
                "m2m:uril"
            ]
        )
        == 12
    )
    assert len(disc(client, lbl="tag:0")["m2m:uril"]) == 2
    assert len(disc(client, lbl="tag:0 tag:1")["m2m:uril"]) == 4
    assert len(disc(client, ty="3", lbl="tag:0", fo="2")["m2m:uril"]) == 4
    assert len(disc(client, cty="text/plain:0")["m2m:uril"]) == 5
    assert len(disc(client, cni="5")["m2m:uril"]) == 2
    assert len(disc(client, crb=tree["before"])["m2m:uril"]) == 0
    assert len(disc(client, cra=tree["before"])["m2m:uril"]) > 0
    assert len(disc(client, cra=tree["after"])["m2m:uril"]) == 0
    assert len(disc(client, us=tree["before"])["m2m:uril"]) == 0
    assert len(disc(client, exb=tree["before"])["m2m:uril"]) == 0
    assert len(disc(client, szb="100")["m2m:uril"]) == 10
    assert len(disc(client, ty="4", lim="3")["m2m:uril"]) == 3
    assert len(disc(client, ty="4", ofst="8")["m2m:uril"]) == 2
    assert disc(client, lvl="1")["m2m:uril"] == ["cse-in/app/data", "cse-in/app/data2"]
    assert disc(client, path="cse-in/app/data", con="a*", ty="4")["m2m:uril"][0].startswith(
        "cse-in/app/data/"
    )


def test_discovery_result_forms(client: M2MClient, tree: dict[str, str]) -> None:
    unstructured = disc(client, ty="3", drt="2")["m2m:uril"]
    assert all("/" not in u for u in unstructured)
    refs = disc(client, ty="3", rcn="6")["m2m:rrl"]["rrf"]
    assert [(r["nm"], r["typ"]) for r in refs] == [("data", 3), ("data2", 3)]
    for bad in ("1", "4", "5", "8"):
        assert disc(client, ty="3", rcn=bad).rsc == 4000
    assert client.retrieve("cse-in/nothing", params={"fu": "1"}).rsc == 4004
    assert disc(client, szb="-1").rsc == 4000


def test_retrieve_result_content(client: M2MClient, tree: dict[str, str]) -> None:
    get = lambda **p: client.retrieve("cse-in/app", origin="Capp", params=p)  # noqa: E731
    nested = get(rcn="4")["m2m:ae"]
    assert nested["rn"] == "app"
    assert [c["rn"] for c in nested["m2m:cnt"]] == ["data", "data2"]
    assert all(len(c["m2m:cin"]) == 5 for c in nested["m2m:cnt"])
    only_cnt = get(rcn="4", ty="3")["m2m:ae"]
    assert len(only_cnt["m2m:cnt"]) == 2 and "m2m:cin" not in only_cnt["m2m:cnt"][0]
    refs = get(rcn="5", ty="3")["m2m:ae"]
    assert refs["rn"] == "app" and len(refs["ch"]) == 2
    flat = get(rcn="8", ty="4")["m2m:ae"]
    assert "rn" not in flat and len(flat["m2m:cin"]) == 10
    assert get(rcn="8", ty="1")["m2m:ae"] == {}
    assert len(get(rcn="6")["m2m:rrl"]["rrf"]) == 12
    assert get(rcn="1", ty="3")["m2m:ae"]["rn"] == "app"
    assert get(rcn="11").rsc == 4000
    assert get(rcn="9").rsc == 4000


def test_discovery_filters_by_access(client: M2MClient, tree: dict[str, str]) -> None:
    client.register("peer", origin="Cpeer")
    client.create("cse-in/peer", 3, {"m2m:cnt": {"rn": "mine"}}, origin="Cpeer")
    r = client.retrieve("cse-in", origin="Cpeer", params={"fu": "1", "ty": "3"})
    assert r["m2m:uril"] == ["cse-in/peer/mine"]


def test_apply_relative_path(client: M2MClient, tree: dict[str, str]) -> None:
    client.create("cse-in/app/data", 3, {"m2m:cnt": {"rn": "sub"}}, origin="Capp")
    r = client.retrieve(
        "cse-in/app", origin="Capp", params={"fu": "1", "ty": "3", "lvl": "1", "arp": "sub"}
    )
    assert r["m2m:uril"] == ["cse-in/app/data/sub"]  # data2 has no "sub": it drops out
