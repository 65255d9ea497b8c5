"""Access control: admin, owners, ACP grants (acor/acop, wildcards, chty), acpi changes."""

from __future__ import annotations

from typing import Any

from tests.support import M2MClient


def acp(
    client: M2MClient,
    parent: str,
    pv: list[dict[str, Any]],
    pvs: list[dict[str, Any]],
    *,
    origin: str = "CAdmin",
    rn: str | None = None,
) -> Any:
    body: dict[str, Any] = {"pv": {"acr": pv}, "pvs": {"acr": pvs}}
    if rn:
        body["rn"] = rn
    return client.create(parent, 1, {"m2m:acp": body}, origin=origin)


def test_acp_attributes_and_self_privileges(client: M2MClient) -> None:
    acor = ["Ctest", "Canother*", "Cyet*Originator"]
    r = acp(
        client,
        "cse-in",
        [{"acor": acor, "acop": 63}],
        [{"acor": ["Ctest"], "acop": 63}],
        rn="policy",
    )
    assert r.rsc == 2001
    assert r["m2m:acp"]["pv"]["acr"][0]["acor"] == acor
    assert client.retrieve("cse-in/policy", origin="Cwrong").rsc == 4103
    assert client.update("cse-in/policy", {"m2m:acp": {"lbl": ["a"]}}, origin="Ctest").rsc == 2004
    assert client.update("cse-in/policy", {"m2m:acp": {"pvs": {}}}, origin="Ctest").rsc == 4000
    assert client.update("cse-in/policy", {"m2m:acp": {"pvs": None}}, origin="Ctest").rsc == 4000
    assert client.create("cse-in", 1, {"m2m:acp": {"pv": {"acr": []}}}).rsc == 4000
    assert acp(client, "cse-in", [], []).rsc == 4000  # empty pvs
    bad_acop = acp(client, "cse-in", [{"acor": ["x"], "acop": 64}], [{"acor": ["x"], "acop": 1}])
    assert bad_acop.rsc == 4000
    assert client.delete("cse-in/policy", origin="Cwrong").rsc == 4103
    assert client.delete("cse-in/policy", origin="Ctest").rsc == 2002


def test_foreign_originator_needs_a_grant(client: M2MClient, ae: dict[str, Any]) -> None:
    client.register("guest", origin="Cguest")
    assert client.create("cse-in/app", 3, {"m2m:cnt": {}}, origin="Cguest").rsc == 4103
    assert (
        client.create("cse-in/app/data", 4, {"m2m:cin": {"con": "x"}}, origin="Cguest").rsc == 4103
    )
    assert client.create("cse-in", 3, {"m2m:cnt": {}}, origin="Cguest").rsc == 4103
    policy = acp(
        client,
        "cse-in/app",
        [{"acor": ["Cguest"], "acop": 1 | 2 | 32}],
        [{"acor": ["Capp"], "acop": 63}],
        origin="Capp",
    )
    ri = policy["m2m:acp"]["ri"]
    assert client.update("cse-in/app/data", {"m2m:cnt": {"acpi": [ri]}}, origin="Capp").rsc == 2004
    assert (
        client.create(
            "cse-in/app/data", 4, {"m2m:cin": {"con": "x", "rn": "g"}}, origin="Cguest"
        ).rsc
        == 2001
    )
    assert client.retrieve("cse-in/app/data/la", origin="Cguest").rsc == 2000
    assert (
        client.update("cse-in/app/data", {"m2m:cnt": {"lbl": ["x"]}}, origin="Cguest").rsc == 4103
    )
    assert client.delete("cse-in/app/data/g", origin="Cguest").rsc == 4103
    r = client.retrieve("cse-in/app/data", origin="Cguest", params={"fu": "1", "ty": "4"})
    assert len(r["m2m:uril"]) == 1


def test_wildcards_and_all(client: M2MClient) -> None:
    client.create("cse-in", 3, {"m2m:cnt": {"rn": "open"}})
    policy = acp(
        client,
        "cse-in",
        [{"acor": ["Cyet*Originator"], "acop": 2}, {"acor": ["all"], "acop": 32}],
        [{"acor": ["CAdmin"], "acop": 63}],
    )
    client.update("cse-in/open", {"m2m:cnt": {"acpi": [policy["m2m:acp"]["ri"]]}})
    assert client.retrieve("cse-in/open", origin="CyetAnotherOriginator").rsc == 2000
    assert client.retrieve("cse-in/open", origin="CyetAnother").rsc == 4103
    assert client.retrieve("cse-in/open", origin="Canyone", params={"fu": "1"}).rsc == 2000


def test_acp_child_type_restriction(client: M2MClient, ae: dict[str, Any]) -> None:
    client.register("g2", origin="Cg2")
    policy = acp(
        client,
        "cse-in/app",
        [{"acor": ["Cg2"], "acop": 1, "acod": [{"chty": [4]}]}],
        [{"acor": ["Capp"], "acop": 63}],
        origin="Capp",
    )
    client.update(
        "cse-in/app/data", {"m2m:cnt": {"acpi": [policy["m2m:acp"]["ri"]]}}, origin="Capp"
    )
    assert client.create("cse-in/app/data", 4, {"m2m:cin": {"con": "x"}}, origin="Cg2").rsc == 2001
    assert client.create("cse-in/app/data", 3, {"m2m:cnt": {}}, origin="Cg2").rsc == 4103


def test_acpi_change_rules(client: M2MClient, ae: dict[str, Any]) -> None:
    p1 = acp(client, "cse-in", [{"acor": ["Cpv"], "acop": 63}], [{"acor": ["Cpvs"], "acop": 63}])
    ri = p1["m2m:acp"]["ri"]
    path = "cse-in/app/data"
    assert client.update(path, {"m2m:cnt": {"acpi": [ri], "lbl": ["a"]}}, origin="Capp").rsc == 4000
    assert client.update(path, {"m2m:cnt": {"acpi": ["nope"]}}, origin="Capp").rsc == 4000
    assert client.update(path, {"m2m:cnt": {"acpi": []}}, origin="Capp").rsc == 4000
    assert client.update(path, {"m2m:cnt": {"acpi": [ri]}}, origin="Capp").rsc == 2004
    # now only the policy decides: the owner lost access, Cpv may update, only Cpvs may re-point
    assert client.retrieve(path, origin="Capp").rsc == 4103
    assert client.update(path, {"m2m:cnt": {"lbl": ["b"]}}, origin="Cpv").rsc == 2004
    assert client.update(path, {"m2m:cnt": {"acpi": None}}, origin="Cpv").rsc == 4103
    assert client.update(path, {"m2m:cnt": {"acpi": None}}, origin="Cpvs").rsc == 2004
    assert client.retrieve(path, origin="Capp").rsc == 2000


def test_custodian_replaces_creator(client: M2MClient, ae: dict[str, Any]) -> None:
    r = client.create("cse-in/app", 3, {"m2m:cnt": {"rn": "kept", "cstn": "Ckeeper"}})
    assert r.rsc == 2001
    assert client.retrieve("cse-in/app/kept", origin="Ckeeper").rsc == 2000
    assert client.retrieve("cse-in/app/kept", origin="Capp").rsc == 4103
    assert client.delete("cse-in/app/kept", origin="Ckeeper").rsc == 2002


def test_deleted_policies_do_not_lock_the_owner_out(client: M2MClient, ae: dict[str, Any]) -> None:
    policy = acp(
        client,
        "cse-in/app",
        [{"acor": ["Cother"], "acop": 63}],
        [{"acor": ["Cother"], "acop": 63}],
        origin="Capp",
        rn="only",
    )
    assert (
        client.update(
            "cse-in/app", {"m2m:ae": {"acpi": [policy["m2m:acp"]["ri"]]}}, origin="Capp"
        ).rsc
        == 2004
    )
    assert client.retrieve("cse-in/app", origin="Capp").rsc == 4103  # the policy decides
    assert client.delete("cse-in/app/only", origin="Cother").rsc == 2002
    assert client.retrieve("cse-in/app", origin="Capp").rsc == 2000  # creator again
    assert client.update("cse-in/app", {"m2m:ae": {"acpi": None}}, origin="Capp").rsc == 2004
