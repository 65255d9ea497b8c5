"""<node> and <mgmtObj> specializations."""

from __future__ import annotations

from tests.support import M2MClient


def test_node_and_management_objects(client: M2MClient) -> None:
    assert client.create("cse-in", 14, {"m2m:nod": {"rn": "n1", "ni": "urn:sn:1234"}}).rsc == 2001
    mem = client.create(
        "cse-in/n1", 13, {"m2m:mem": {"rn": "mem", "mgd": 1003, "mma": 10, "mmt": 100}}
    )
    assert mem.rsc == 2001 and mem["m2m:mem"]["mma"] == 10 and mem["m2m:mem"]["ty"] == 13
    for rn in ("b1", "b2"):
        assert (
            client.create(
                "cse-in/n1", 13, {"m2m:bat": {"rn": rn, "mgd": 1006, "btl": 50, "bts": 1}}
            ).rsc
            == 2001
        )
    flat = client.retrieve("cse-in/n1", params={"rcn": "8", "ty": "13"})["m2m:nod"]
    assert len(flat["m2m:bat"]) == 2 and len(flat["m2m:mem"]) == 1
    assert client.update("cse-in/n1/mem", {"m2m:mem": {"mma": 20}})["m2m:mem"]["mma"] == 20
    assert client.update("cse-in/n1/mem", {"m2m:mem": {"mgd": 1006}}).rsc == 4000
    assert client.update("cse-in/n1/mem", {"m2m:bat": {"btl": 1}}).rsc == 4000
    assert client.create("cse-in/n1", 13, {"m2m:bat": {"mgd": 1003}}).rsc == 4000
    assert client.create("cse-in/n1", 13, {"m2m:xyz": {"mgd": 9}}).rsc == 4000
    assert client.create("cse-in/n1", 13, {"m2m:mem": {"mma": 1}}).rsc == 4000  # mgd missing
    assert client.create("cse-in", 13, {"m2m:mem": {"mgd": 1003}}).rsc == 4108
    assert client.create("cse-in", 14, {"m2m:nod": {}}).rsc == 4000  # ni missing
    assert client.delete("cse-in/n1").rsc == 2002
    assert client.retrieve("cse-in/n1/mem").rsc == 4004
