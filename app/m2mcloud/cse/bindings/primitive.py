"""The JSON serialisation of request/response primitives (TS-0004 clause 8, short names), used by
the MQTT binding (TS-0010) and for notifications sent over MQTT."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from m2mcloud.cse.bindings.params import parse_drt, parse_filter, parse_rt
from m2mcloud.cse.constants import Operation
from m2mcloud.cse.errors import bad_request
from m2mcloud.cse.request import Request, Response, parse_rcn
from m2mcloud.cse.timeutil import parse_ts_or_duration

_FC_SCALARS = (
    "fu",
    "fo",
    "lim",
    "ofst",
    "lvl",
    "sts",
    "stb",
    "sza",
    "szb",
    "cra",
    "crb",
    "ms",
    "us",
    "exa",
    "exb",
)


def request_from_primitive(
    p: Mapping[str, Any], attribute_names: frozenset[str], binding: str = "mqtt"
) -> Request:
    """A request primitive (JSON object) -> Request; 4000 for missing or malformed fields."""
    missing = [k for k in ("op", "to", "rqi") if k not in p or p[k] in (None, "")]
    if missing:
        raise bad_request(f"the request primitive lacks {', '.join(missing)}")
    try:
        op = Operation(int(p["op"]))
    except (TypeError, ValueError):
        raise bad_request(f"op={p['op']!r} is not an operation (1..5)") from None
    if op == Operation.DISCOVERY:
        raise bad_request("op=6 is not an operation; discovery is a RETRIEVE with fc.fu=1")
    for key in ("to", "rqi"):
        if not isinstance(p[key], str):
            raise bad_request(f"{key} must be a string")
    fr = p.get("fr")
    if fr is not None and not isinstance(fr, str):
        raise bad_request("fr must be a string")
    ty = p.get("ty")
    if ty is not None and (isinstance(ty, bool) or not isinstance(ty, int)):
        raise bad_request(f"ty={ty!r} must be an integer resource type")
    pc = p.get("pc")
    if pc is not None and not isinstance(pc, dict):
        raise bad_request("pc (primitive content) must be a JSON object")
    if op in (Operation.CREATE, Operation.UPDATE) and pc is None:
        raise bad_request("CREATE and UPDATE need primitive content (pc)")
    fc_in = p.get("fc") or {}
    if not isinstance(fc_in, dict):
        raise bad_request("fc (filter criteria) must be a JSON object")
    params: dict[str, list[str]] = {}
    for key, value in fc_in.items():
        values = value if isinstance(value, list) else [value]
        params[key] = [str(v) for v in values]
    fc = parse_filter(params, attribute_names)
    rvi = p.get("rvi")
    req = Request(
        op=op,
        to=p["to"],
        fr=fr,
        rqi=p["rqi"],
        rvi=str(rvi) if rvi is not None else None,
        ty=ty,
        pc=pc,
        fc=fc,
        ot=p.get("ot"),
        vsi=p.get("vsi"),
        binding=binding,
    )
    req.rcn = parse_rcn(p.get("rcn"), op, fc.is_discovery)
    rt = p.get("rt")
    if isinstance(rt, dict):
        if isinstance(rt.get("nu"), list):
            req.rtu = [str(u) for u in rt["nu"]]
        rt = rt.get("rtv")
    if rt is not None:
        req.rt = parse_rt(rt)
    if p.get("drt") is not None:
        req.drt = parse_drt(p["drt"])
    now = time.time()
    if p.get("rp") not in (None, ""):
        req.rp_raw = str(p["rp"])
    for key, attr in (("rqet", "rqet"), ("rset", "rset"), ("oet", "oet"), ("rp", "rp")):
        if p.get(key) not in (None, ""):
            try:
                setattr(req, attr, parse_ts_or_duration(str(p[key]), now))
            except ValueError as exc:
                raise bad_request(f"{key}: {exc}") from None
    return req


def response_primitive(resp: Response, *, to: str | None, fr: str) -> dict[str, Any]:
    out: dict[str, Any] = {"rsc": int(resp.rsc), "rqi": resp.rqi}
    if resp.pc is not None:
        out["pc"] = resp.pc
    if to:
        out["to"] = to
    out["fr"] = fr
    if resp.rvi:
        out["rvi"] = resp.rvi
    if resp.ot:
        out["ot"] = resp.ot
    if resp.vsi:
        out["vsi"] = resp.vsi
    return out
