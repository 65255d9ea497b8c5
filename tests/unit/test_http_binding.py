"""TS-0009 HTTP binding: headers, addressing forms, status codes, malformed input."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import M2MClient, NotificationReceiver


def test_cse_base_attributes_and_headers(client: M2MClient) -> None:
    r = client.retrieve("cse-in", headers={"X-M2M-VSI": "vendor-1"})
    assert (r.rsc, r.status) == (2000, 200)
    cb = r["m2m:cb"]
    assert cb["ri"] == "id-in" and cb["rn"] == "cse-in" and cb["csi"] == "/id-in"
    assert cb["ty"] == 5 and cb["pi"] == "" and cb["cst"] == 1 and "rr" not in cb
    assert set(cb["srt"]) >= {1, 2, 3, 4, 5, 9, 23}
    assert "3" in cb["srv"] and "ctm" in cb
    assert cb["poa"][0].startswith("http://") and cb["poa"][0].endswith(":8080")
    assert r.headers["x-m2m-rvi"] == "3"
    assert r.headers["x-m2m-vsi"] == "vendor-1"
    assert r.headers["x-m2m-ri"].startswith("rqi-")
    assert r.headers["x-m2m-ot"]
    assert r.headers["content-type"].startswith("application/json")


def test_addressing_forms_reach_the_same_resource(client: M2MClient, ae: dict[str, Any]) -> None:
    ri = ae["cnt"]["ri"]
    forms = [
        "cse-in/app/data",
        "-/app/data",
        ri,
        "~/id-in/cse-in/app/data",
        f"~/id-in/{ri}",
        "_/m2mcloud.test/id-in/cse-in/app/data",
        f"_/m2mcloud.test/id-in/{ri}",
    ]
    for form in forms:
        r = client.retrieve(form, origin="Capp")
        assert r.rsc == 2000, (form, r.body)
        assert r["m2m:cnt"]["ri"] == ri


def test_wrong_sp_id_and_unknown_cse(client: M2MClient) -> None:
    assert client.retrieve("_/other.sp/id-in/cse-in").rsc == 4000
    assert client.retrieve("~/id-other/cse-in").rsc == 5103


def test_unsupported_release_version_is_4001(client: M2MClient) -> None:
    r = client.retrieve("cse-in", headers={"X-M2M-RVI": "1"})
    assert r.rsc == 4001


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(b"{not json", 4000), (b"[1,2]", 4000), (b"", 4000)],
)
def test_malformed_bodies_are_bad_requests(client: M2MClient, raw: bytes, expected: int) -> None:
    r = client.request("POST", "cse-in", ty=3, raw=raw)
    assert r.rsc == expected
    assert r.status == 400
    assert "m2m:dbg" in r.body


def test_content_type_ty_must_be_valid(client: M2MClient) -> None:
    r = client.request(
        "POST",
        "cse-in",
        body={"m2m:cnt": {}},
        headers={"Content-Type": "application/json;ty=wrong"},
    )
    assert r.rsc == 4000
    assert client.create("cse-in", 999, {"m2m:cnt": {}}).rsc == 4000
    assert client.create("cse-in", 3, {"m2m:ae": {}}).rsc == 4000


def test_unsupported_media_type(client: M2MClient) -> None:
    r = client.request(
        "POST", "cse-in", raw=b"<m2m:cnt/>", headers={"Content-Type": "application/xml;ty=3"}
    )
    assert r.rsc == 4015 and r.status == 415


def test_request_identifier_is_required(client: M2MClient) -> None:
    r = client.request("GET", "cse-in", headers={"X-M2M-RI": ""})
    assert r.rsc == 4000


def test_missing_originator_is_a_bad_request(client: M2MClient) -> None:
    assert client.retrieve("cse-in", origin=None).rsc == 4000
    assert client.create("cse-in", 3, {"m2m:cnt": {}}, origin=None).rsc == 4000


def test_oversize_body_refused_and_nothing_stored(client: M2MClient, ae: dict[str, Any]) -> None:
    big = "x" * (1_048_576 + 10)
    r = client.create("cse-in/app/data", 4, {"m2m:cin": {"con": big}}, origin="Capp")
    assert r.rsc == 4000
    assert "limit" in r.body["m2m:dbg"]
    assert client.retrieve("cse-in/app/data", origin="Capp")["m2m:cnt"]["cni"] == 0


def test_request_expiration(client: M2MClient) -> None:
    assert client.retrieve("cse-in", headers={"X-M2M-RET": "-1000"}).rsc == 4008
    assert client.retrieve("cse-in", headers={"X-M2M-RET": "20000101T000000"}).rsc == 4008
    assert client.retrieve("cse-in", headers={"X-M2M-RET": "10000"}).rsc == 2000
    r = client.retrieve("cse-in", headers={"X-M2M-RET": "1000", "X-M2M-OET": "5000"})
    assert r.rsc == 4008


def test_unknown_query_parameter_is_rejected(client: M2MClient) -> None:
    assert client.retrieve("cse-in", params={"xxx": "yyy"}).rsc == 4000
    assert client.retrieve("cse-in", params={"fu": "4223"}).rsc == 4000
    assert client.retrieve("cse-in", params={"rt": "99"}).rsc == 4000
    assert client.retrieve("cse-in", params={"rcn": "9"}).rsc == 4000


def test_no_response_request_is_accepted_and_executed(
    client: M2MClient, ae: dict[str, Any]
) -> None:
    r = client.create(
        "cse-in/app/data",
        4,
        {"m2m:cin": {"con": "later", "rn": "c1"}},
        origin="Capp",
        params={"rt": "5"},
    )
    assert r.rsc == 1000 and r.status == 202
    import time

    for _ in range(50):
        if client.retrieve("cse-in/app/data/c1", origin="Capp").rsc == 2000:
            break
        time.sleep(0.05)
    assert client.retrieve("cse-in/app/data/c1", origin="Capp")["m2m:cin"]["con"] == "later"


def _poll_request(client: M2MClient, uri: str, origin: str) -> dict[str, Any]:
    import time

    for _ in range(100):
        req = client.retrieve(f"~/id-in/{uri}", origin=origin)["m2m:req"]
        if req["rs"] == 1:
            return dict(req)
        time.sleep(0.05)
    raise AssertionError("the non-blocking request did not complete")


def test_non_blocking_synchronous_request(client: M2MClient, ae: dict[str, Any]) -> None:
    r = client.create(
        "cse-in/app",
        3,
        {"m2m:cnt": {"rn": "nb"}},
        origin="Capp",
        params={"rt": "1", "rp": "PT30S"},
        headers={"X-M2M-VSI": "v1"},
    )
    assert r.rsc == 1001 and r.status == 202
    req = _poll_request(client, r["m2m:uri"], "Capp")
    assert req["org"] == "Capp" and req["op"] == 1 and req["tg"] == "cse-in/app"
    assert req["mi"]["rt"]["rtv"] == 1 and req["mi"]["vsi"] == "v1" and "st" not in req
    assert req["ors"]["rsc"] == 2001 and req["ors"]["pc"]["m2m:cnt"]["rn"] == "nb"
    assert client.retrieve("cse-in/app/nb", origin="Capp").rsc == 2000
    missing = client.retrieve("cse-in/nothing", origin="Capp", params={"rt": "1"})
    assert missing.rsc == 1001
    assert _poll_request(client, missing["m2m:uri"], "Capp")["ors"]["rsc"] == 4004
    assert client.retrieve(f"~/id-in/{r['m2m:uri']}", origin="Cother").rsc == 4103
    assert client.create("cse-in", 17, {"m2m:req": {}}).rsc == 4005
    assert client.create("cse-in", 17, {"m2m:req": {}}, origin="Capp").rsc == 4005
    short = client.retrieve(
        "cse-in", origin="Capp", params={"rt": "1"}, headers={"X-M2M-RET": "60000"}
    )
    req = _poll_request(client, short["m2m:uri"], "Capp")
    assert "rp" not in req["mi"]
    from m2mcloud.cse.timeutil import parse_ts

    assert parse_ts(req["et"]) - parse_ts(req["ct"]) < 120  # the request's expiry, not 300 s


def test_non_blocking_asynchronous_request(
    client: M2MClient, ae: dict[str, Any], receiver: NotificationReceiver
) -> None:
    r = client.retrieve(
        "cse-in/app/data", origin="Capp", params={"rt": "2"}, headers={"X-M2M-RTU": receiver.url}
    )
    assert r.rsc == 1002
    got = receiver.wait_for(1)
    rsp = got[0]["m2m:rsp"]
    assert rsp["rsc"] == 2000 and rsp["pc"]["m2m:cnt"]["rn"] == "data"


def test_operational_endpoints(client: M2MClient) -> None:
    t = client.transport
    status, _, body = t("GET", "/healthz", {}, None, None)
    assert status == 200
    status, _, body = t("GET", "/readyz", {}, None, None)
    assert status == 200 and b'"ready":true' in body.replace(b" ", b"")
    client.retrieve("cse-in")
    status, _, body = t("GET", "/metrics", {}, None, None)
    assert status == 200
    assert b'm2m_requests_total{binding="http",op="RETRIEVE",rsc="2000"' in body
    assert b"m2m_request_duration_seconds_bucket" in body


def test_upper_tester_status_and_reset(client: M2MClient) -> None:
    client.create("cse-in", 3, {"m2m:cnt": {"rn": "gone"}})
    status, headers, _ = client.transport("POST", "/__ut__", {"X-M2M-UTCMD": "status"}, None, None)
    lowered = {k.lower(): v for k, v in headers.items()}
    assert status == 200 and lowered["x-m2m-utrsp"] == "RUNNING"
    status, _, _ = client.transport("POST", "/__ut__", {"X-M2M-UTCMD": "Reset"}, None, None)
    assert status == 200
    assert client.retrieve("cse-in/gone").rsc == 4004
    assert client.retrieve("cse-in").rsc == 2000


def test_http_root_prefix(config: Any) -> None:
    import dataclasses

    from m2mcloud.cse.app import build_runtime
    from tests.support import falcon_transport

    rt = build_runtime(dataclasses.replace(config, http_root="/onem2m"))
    try:
        c = M2MClient(falcon_transport(rt.app))
        assert c.retrieve("onem2m/cse-in").rsc == 2000
        assert c.retrieve("onem2m/~/id-in/cse-in").rsc == 2000
        assert c.retrieve("cse-in").rsc == 4004
        reg = c.create(
            "onem2m/cse-in", 2, {"m2m:ae": {"api": "Nx", "rr": True, "srv": ["3"]}}, origin="Croot"
        )
        assert reg.headers["content-location"] == "cse-in/Croot"
    finally:
        rt.store.close()


def test_cbor_requests_and_responses(client: M2MClient) -> None:
    import cbor2

    body = cbor2.dumps({"m2m:ae": {"rn": "cb", "api": "Ncbor", "rr": True, "srv": ["3"]}})
    status, headers, content = client.transport(
        "POST",
        "/cse-in",
        {
            "X-M2M-Origin": "Ccbor",
            "X-M2M-RI": "c1",
            "X-M2M-RVI": "3",
            "Content-Type": "application/cbor;ty=2",
            "Accept": "application/cbor",
        },
        body,
        None,
    )
    lowered = {k.lower(): v for k, v in headers.items()}
    assert status == 201 and lowered["x-m2m-rsc"] == "2001"
    assert lowered["content-type"] == "application/cbor;ty=2"
    assert cbor2.loads(content)["m2m:ae"]["aei"] == "Ccbor"
    status, headers, _ = client.transport(
        "POST",
        "/cse-in",
        {
            "X-M2M-Origin": "Cx",
            "X-M2M-RI": "c2",
            "X-M2M-RVI": "3",
            "Content-Type": "application/cbor;ty=2",
        },
        b"\xff\x00",
        None,
    )
    assert {k.lower(): v for k, v in headers.items()}["x-m2m-rsc"] == "4000"
