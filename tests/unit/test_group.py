"""<group>: members, type consistency, limits and fan-out."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import M2MClient


@pytest.fixture
def members(client: M2MClient, ae: dict[str, Any]) -> list[str]:
    ris = [ae["cnt"]["ri"]]
    for rn in ("d2", "d3"):
        ris.append(
            client.create("cse-in/app", 3, {"m2m:cnt": {"rn": rn}}, origin="Capp")["m2m:cnt"]["ri"]
        )
    return ris


def grp(client: M2MClient, **attrs: Any) -> Any:
    return client.create("cse-in/app", 9, {"m2m:grp": attrs}, origin="Capp")


def test_group_members(client: M2MClient, members: list[str]) -> None:
    r = grp(client, rn="g", mt=3, mnm=10, mid=[members[0], members[1], members[0]])
    assert r.rsc == 2001
    g = r["m2m:grp"]
    assert g["cnm"] == 2 and g["mid"] == members[:2] and g["mtv"] is True and "st" not in g
    r = client.update("cse-in/app/g", {"m2m:grp": {"mid": members}}, origin="Capp")
    assert r["m2m:grp"]["cnm"] == 3
    small = grp(client, rn="small", mt=3, mnm=2, mid=members[:2])
    assert small.rsc == 2001
    assert (
        client.update("cse-in/app/small", {"m2m:grp": {"mid": members}}, origin="Capp").rsc == 6010
    )
    assert client.retrieve("cse-in/app/small", origin="Capp")["m2m:grp"]["cnm"] == 2
    assert grp(client, mt=3, mnm=10, mid=["nothere"]).rsc == 4004
    assert client.retrieve("cse-in/app/g", origin="Cwrong").rsc == 4103


def test_member_type_consistency(client: M2MClient, members: list[str]) -> None:
    mixed = [*members, "Capp"]
    dropped = grp(client, mt=3, mnm=10, mid=mixed, csy=1)
    assert dropped["m2m:grp"]["cnm"] == 3
    assert grp(client, mt=3, mnm=10, mid=mixed, csy=2).rsc == 4110
    made_mixed = grp(client, mt=3, mnm=10, mid=mixed, csy=3)
    assert made_mixed["m2m:grp"]["mt"] == 0 and made_mixed["m2m:grp"]["cnm"] == 4


def test_deleted_member_leaves_the_group(client: M2MClient, members: list[str]) -> None:
    grp(client, rn="g", mt=3, mnm=10, mid=members)
    client.delete("cse-in/app/d3", origin="Capp")
    g = client.retrieve("cse-in/app/g", origin="Capp")["m2m:grp"]
    assert g["cnm"] == 2 and members[2] not in g["mid"]


def test_fan_out(client: M2MClient, members: list[str]) -> None:
    grp(client, rn="g", mt=3, mnm=10, mid=members)
    r = client.create(
        "cse-in/app/g/fopt", 4, {"m2m:cin": {"con": "all", "cnf": "text/plain:0"}}, origin="Capp"
    )
    assert r.rsc == 2000
    rsps = r["m2m:agr"]["m2m:rsp"]
    assert [x["rsc"] for x in rsps] == [2001, 2001, 2001]
    for x in rsps:
        assert client.retrieve(x["to"], origin="Capp")["m2m:cin"]["con"] == "all"
    la = client.retrieve("cse-in/app/g/fopt/la", origin="Capp")["m2m:agr"]["m2m:rsp"]
    assert [x["pc"]["m2m:cin"]["con"] for x in la] == ["all"] * 3
    up = client.update("cse-in/app/g/fopt", {"m2m:cnt": {"lbl": ["t"]}}, origin="Capp")
    assert [x["rsc"] for x in up["m2m:agr"]["m2m:rsp"]] == [2004] * 3
    denied = client.retrieve("cse-in/app/g/fopt", origin="Cwrong")
    assert denied.rsc == 4103
    gone = client.delete("cse-in/app/g/fopt", origin="Capp")
    assert [x["rsc"] for x in gone["m2m:agr"]["m2m:rsp"]] == [2002] * 3
    assert client.retrieve("cse-in/app/g", origin="Capp")["m2m:grp"]["cnm"] == 0
