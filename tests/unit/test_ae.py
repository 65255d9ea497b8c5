"""AE registration rules (TS-0001 10.2.2.2; TS-0004 7.4.5)."""

from __future__ import annotations

import pytest

from tests.support import M2MClient

AE = {"api": "Nm2mcloud.test", "rr": True, "srv": ["3"]}


@pytest.mark.parametrize("origin", ["C", "", None])
def test_cse_assigns_a_c_ae_id(client: M2MClient, origin: str | None) -> None:
    r = client.create("cse-in", 2, {"m2m:ae": {"rn": "a1", **AE}}, origin=origin)
    assert r.rsc == 2001 and r.status == 201
    ae = r["m2m:ae"]
    assert ae["aei"].startswith("C") and len(ae["aei"]) > 1
    assert ae["ri"] == ae["aei"]
    assert ae["pi"] == "id-in"
    assert "st" not in ae
    assert r.headers["content-location"] == "cse-in/a1"
    assert r.headers["content-type"] == "application/json;ty=2"


def test_s_originator_gets_an_s_ae_id(client: M2MClient) -> None:
    r = client.create("cse-in", 2, {"m2m:ae": {"rn": "s1", **AE}}, origin="S")
    assert r.rsc == 2001 and r["m2m:ae"]["aei"].startswith("S")


def test_explicit_c_originator_is_kept_and_cannot_register_twice(client: M2MClient) -> None:
    r = client.create("cse-in", 2, {"m2m:ae": {"rn": "a1", **AE}}, origin="Cmine")
    assert r["m2m:ae"]["aei"] == "Cmine"
    again = client.create("cse-in", 2, {"m2m:ae": {"rn": "a2", **AE}}, origin="Cmine")
    assert again.rsc == 4117
    assert client.retrieve("cse-in/a2").rsc == 4004


def test_name_conflict(client: M2MClient) -> None:
    client.register("dup")
    assert client.create("cse-in", 2, {"m2m:ae": {"rn": "dup", **AE}}, origin="C").rsc == 4105


def test_originator_that_is_not_an_ae_id(client: M2MClient) -> None:
    assert client.create("cse-in", 2, {"m2m:ae": AE}, origin="id-in").rsc == 4107


def test_ae_only_under_the_cse_base(client: M2MClient) -> None:
    client.register("parent", origin="Cparent")
    r = client.create("cse-in/parent", 2, {"m2m:ae": AE}, origin="Cparent")
    assert r.rsc == 4108


@pytest.mark.parametrize(
    "body",
    [
        {"rr": True, "srv": ["3"]},  # api missing
        {"api": "Xwrong", "rr": True, "srv": ["3"]},  # api prefix
        {"api": "Nx", "srv": ["3"]},  # rr missing
        {"api": "Nx", "rr": "yes", "srv": ["3"]},  # rr wrong type
        {"api": "Nx", "rr": True},  # srv missing
        {"api": "Nx", "rr": True, "srv": ["9"]},  # unsupported release
        {"api": "Nx", "rr": True, "srv": ["3"], "csz": ["wrong"]},
        {"api": "Nx", "rr": True, "srv": ["3"], "lbl": ["ok", 23]},
        {"api": "Nx", "rr": True, "srv": ["3"], "unknown": 1},
        {"api": "Nx", "rr": True, "srv": ["3"], "rn": "bad name"},
        {"api": "Nx", "rr": True, "srv": ["3"], "rn": "la"},
        {"api": "Nx", "rr": True, "srv": ["3"], "aei": "Cforged"},
        {"api": "Nx", "rr": True, "srv": ["3"], "et": "20000101T000000"},
    ],
)
def test_invalid_registrations_are_bad_requests(client: M2MClient, body: dict) -> None:
    r = client.create("cse-in", 2, {"m2m:ae": body}, origin="Cbad")
    assert r.rsc == 4000, r.body
    assert client.retrieve("Cbad").rsc == 4004  # nothing half-written


def test_registered_api_and_lowercase_prefix_rules(client: M2MClient) -> None:
    ok = client.create("cse-in", 2, {"m2m:ae": {**AE, "api": "Rorg.example.app"}}, origin="C")
    assert ok.rsc == 2001
    lower3 = client.create("cse-in", 2, {"m2m:ae": {**AE, "api": "rlegacy"}}, origin="C")
    assert lower3.rsc == 2001
    lower4 = client.create(
        "cse-in", 2, {"m2m:ae": {**AE, "api": "rlegacy"}}, origin="C", headers={"X-M2M-RVI": "4"}
    )
    assert lower4.rsc == 4000


def test_update_and_delete_rules(client: M2MClient) -> None:
    client.register("u1", origin="Cu1")
    r = client.update(
        "cse-in/u1", {"m2m:ae": {"lbl": ["x"], "poa": ["http://127.0.0.1:1"]}}, origin="Cu1"
    )
    assert r.rsc == 2004 and r["m2m:ae"]["lbl"] == ["x"]
    assert r["m2m:ae"]["lt"] >= r["m2m:ae"]["ct"]
    for bad in ({"ty": 5}, {"pi": "x"}, {"api": "Nother"}, {"unknown": 1}):
        assert client.update("cse-in/u1", {"m2m:ae": bad}, origin="Cu1").rsc == 4000, bad
    assert client.update("cse-in/u1", {"m2m:cnt": {"lbl": []}}, origin="Cu1").rsc == 4000
    assert client.retrieve("cse-in/u1", origin="Cwrong").rsc == 4103
    assert client.delete("cse-in/u1", origin="Cwrong").rsc == 4103
    assert client.delete("cse-in/u1", origin="Cu1").rsc == 2002
    assert client.retrieve("cse-in/u1").rsc == 4004


def test_cse_base_cannot_change(client: M2MClient) -> None:
    assert client.update("cse-in", {"m2m:cb": {"lbl": ["x"]}}).rsc == 4005
    assert client.delete("cse-in").rsc == 4005


def test_cse_base_readable_by_registered_aes_only(client: M2MClient) -> None:
    client.register("reader", origin="Creader")
    assert client.retrieve("cse-in", origin="Creader").rsc == 2000
    assert client.retrieve("cse-in", origin="Cstranger").rsc == 4103


def test_older_release_aes_can_register(client: M2MClient) -> None:
    r = client.create("cse-in", 2, {"m2m:ae": {**AE, "srv": ["2"]}}, origin="Cold")
    assert r.rsc == 2001 and r["m2m:ae"]["srv"] == ["2"]
