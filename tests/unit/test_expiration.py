"""expirationTime: defaults, caps, validation, and the background sweep."""

from __future__ import annotations

import time
from typing import Any

from m2mcloud.cse.app import Runtime
from m2mcloud.cse.timeutil import format_ts, parse_ts
from tests.support import M2MClient


def test_default_and_capped_expiration(client: M2MClient, ae: dict[str, Any]) -> None:
    cnt = ae["cnt"]
    assert parse_ts(cnt["ct"]) < parse_ts(cnt["et"])
    far = client.create("cse-in/app", 3, {"m2m:cnt": {"et": "88881231T235959"}}, origin="Capp")
    assert far.rsc == 2001 and far["m2m:cnt"]["et"] < "88881231T235959"
    past = client.create(
        "cse-in/app", 3, {"m2m:cnt": {"et": format_ts(time.time() - 60)}}, origin="Capp"
    )
    assert past.rsc == 4000
    assert (
        client.create("cse-in/app", 3, {"m2m:cnt": {"et": "tomorrow"}}, origin="Capp").rsc == 4000
    )
    reset = client.update("cse-in/app/data", {"m2m:cnt": {"et": None}}, origin="Capp")
    assert reset.rsc == 2004 and "et" in reset["m2m:cnt"]


def test_expired_resources_disappear_with_children(
    client: M2MClient, runtime: Runtime, ae: dict[str, Any]
) -> None:
    soon = format_ts(time.time() + 1.0)
    short = client.create("cse-in/app", 3, {"m2m:cnt": {"rn": "short", "et": soon}}, origin="Capp")
    assert short.rsc == 2001
    child = client.create("cse-in/app/short", 4, {"m2m:cin": {"con": "x"}}, origin="Capp")
    child_ri = child["m2m:cin"]["ri"]
    time.sleep(1.2)
    assert client.retrieve("cse-in/app/short", origin="Capp").rsc == 4004  # gone at once
    deadline = time.time() + 5
    while time.time() < deadline and runtime.store.get(child_ri) is not None:
        time.sleep(0.1)
    assert runtime.store.get(child_ri) is None  # and the sweep deleted the subtree


def test_max_instance_age(client: M2MClient, ae: dict[str, Any]) -> None:
    client.update("cse-in/app/data", {"m2m:cnt": {"mia": 1}}, origin="Capp")
    for i in range(3):
        client.create("cse-in/app/data", 4, {"m2m:cin": {"con": str(i)}}, origin="Capp")
    assert client.retrieve("cse-in/app/data", origin="Capp")["m2m:cnt"]["cni"] == 3
    time.sleep(1.3)
    cnt = client.retrieve("cse-in/app/data", origin="Capp")["m2m:cnt"]
    assert (cnt["cni"], cnt["cbs"]) == (0, 0)
