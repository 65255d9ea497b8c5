"""oneM2M HTTP binding (TS-0009): HTTP requests <-> request/response primitives."""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

import falcon

from m2mcloud.cse.bindings import serialization
from m2mcloud.cse.bindings.params import parse_drt, parse_filter, parse_rt
from m2mcloud.cse.constants import RSC, Operation
from m2mcloud.cse.errors import CSEError, bad_request
from m2mcloud.cse.request import Request, Response, parse_rcn
from m2mcloud.cse.timeutil import parse_ts_or_duration

if TYPE_CHECKING:
    from m2mcloud.cse.app import Runtime

log = logging.getLogger(__name__)

_METHODS = {"GET": Operation.RETRIEVE, "PUT": Operation.UPDATE, "DELETE": Operation.DELETE}


def parse_content_type(header: str | None) -> tuple[str, dict[str, str]]:
    if not header:
        return "", {}
    media, *params = (p.strip() for p in header.split(";"))
    out: dict[str, str] = {}
    for p in params:
        key, _, value = p.partition("=")
        out[key.strip().lower()] = value.strip()
    return media.lower(), out


class OneM2MSink:
    """Every path under the HTTP root is a oneM2M target address."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.root = "/" + runtime.config.http_root.strip("/")
        if self.root != "/":
            self.root += "/"
        attribute_names: set[str] = set()
        from m2mcloud.cse.core import KINDS

        for kind in KINDS.values():
            attribute_names.update(kind.attributes)
        self.attribute_names = frozenset(attribute_names)

    def __call__(self, req: falcon.Request, resp: falcon.Response, **_: Any) -> None:
        started = time.perf_counter()
        metrics = self.rt.metrics
        metrics.in_flight.inc()
        self.rt.lifecycle.begin()
        op_name, ty_name = req.method, ""
        try:
            try:
                request = self.to_request(req)
                op_name = request.op.name
                ty_name = str(request.ty or "")
                response = self.rt.cse.handle(request)
            except CSEError as exc:
                response = Response(
                    rsc=exc.rsc,
                    pc={"m2m:dbg": exc.message},
                    rqi=req.get_header("X-M2M-RI") or "",
                    rvi=req.get_header("X-M2M-RVI"),
                    vsi=req.get_header("X-M2M-VSI"),
                )
            self.render(req, resp, response)
            metrics.observe(
                "http", op_name, ty_name, int(response.rsc), time.perf_counter() - started
            )
        finally:
            self.rt.lifecycle.end()
            metrics.in_flight.dec()

    # -- HTTP -> primitive ----------------------------------------------------------------------

    def to_request(self, req: falcon.Request) -> Request:
        path = req.path
        if not path.startswith(self.root) and path + "/" != self.root:
            raise CSEError(RSC.NOT_FOUND, f"{path} is outside the oneM2M root {self.root}")
        to = path[len(self.root) :] if path != self.root.rstrip("/") else ""
        if to.startswith("~/"):
            to = "/" + to[2:]  # SP-relative
        elif to.startswith("_/"):
            to = "//" + to[2:]  # absolute
        media, ct_params = parse_content_type(req.get_header("Content-Type"))
        op: Operation
        ty: int | None = None
        if req.method == "POST":
            if "ty" in ct_params:
                op = Operation.CREATE
                try:
                    ty = int(ct_params["ty"])
                except ValueError:
                    raise bad_request(
                        f"ty={ct_params['ty']!r} in Content-Type is not a resource type number"
                    ) from None
            else:
                op = Operation.NOTIFY
        elif req.method in _METHODS:
            op = _METHODS[req.method]
        else:
            raise CSEError(
                RSC.OPERATION_NOT_ALLOWED, f"HTTP method {req.method} has no oneM2M operation"
            )
        rqi = req.get_header("X-M2M-RI")
        if not rqi:
            raise bad_request("the X-M2M-RI header (request identifier) is missing")
        pc = self._body(
            req, media, needs_body=op in (Operation.CREATE, Operation.UPDATE, Operation.NOTIFY)
        )
        params = self._params(req)
        fc = parse_filter(params, self.attribute_names)
        now = time.time()
        request = Request(
            op=op,
            to=to,
            fr=req.get_header("X-M2M-Origin"),
            rqi=rqi,
            rvi=req.get_header("X-M2M-RVI"),
            ty=ty,
            pc=pc,
            fc=fc,
            ot=req.get_header("X-M2M-OT"),
            vsi=req.get_header("X-M2M-VSI"),
            binding="http",
        )
        request.rcn = parse_rcn(_last(params, "rcn"), op, fc.is_discovery)
        if "rt" in params:
            request.rt = parse_rt(_last(params, "rt"))
        if "drt" in params:
            request.drt = parse_drt(_last(params, "drt"))
        if "rp" in params:
            request.rp_raw = _last(params, "rp")
            request.rp = _time_header("rp", request.rp_raw, now)
        request.arp = _last(params, "arp") or None
        rst = req.get_header("X-M2M-RST")
        if rst:
            request.rset = _time_header("X-M2M-RST", rst, now)
        rtu = req.get_header("X-M2M-RTU")
        if rtu is not None:
            request.rtu = [u for u in rtu.split("&") if u.strip()]
        ret = req.get_header("X-M2M-RET")
        if ret:
            request.rqet = _time_header("X-M2M-RET", ret, now)
        oet = req.get_header("X-M2M-OET")
        if oet:
            request.oet = _time_header("X-M2M-OET", oet, now)
            if request.rqet is not None and request.oet > request.rqet:
                raise CSEError(
                    RSC.REQUEST_TIMEOUT,
                    "the operation execution time (X-M2M-OET) "
                    "is after the request expiration (X-M2M-RET)",
                )
        return request

    def _params(self, req: falcon.Request) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key, value in req.params.items():
            out[key] = value if isinstance(value, list) else [value]
        return out

    def _body(self, req: falcon.Request, media: str, *, needs_body: bool) -> dict[str, Any] | None:
        limit = self.rt.config.max_request_bytes
        length = req.content_length
        if length is not None and length > limit:
            raise bad_request(f"the request body of {length} bytes exceeds the limit of {limit}")
        raw = req.bounded_stream.read(limit + 1)
        if len(raw) > limit:
            raise bad_request(f"the request body exceeds the limit of {limit} bytes")
        if not raw.strip():
            if needs_body:
                raise bad_request("this operation needs a JSON body")
            return None
        if media and media not in serialization.SUPPORTED:
            raise CSEError(
                RSC.UNSUPPORTED_MEDIA_TYPE,
                f"content type {media!r} is not supported; use application/json or "
                "application/cbor",
            )
        try:
            pc = serialization.decode(media, raw)
        except ValueError as exc:
            raise bad_request(f"the body is {exc}") from None
        if not isinstance(pc, dict):
            raise bad_request("the body must be a JSON object")
        return pc

    # -- primitive -> HTTP ----------------------------------------------------------------------

    def render(self, req: falcon.Request, resp: falcon.Response, r: Response) -> None:
        resp.status = falcon.code_to_http_status(r.rsc.http_status)
        resp.set_header("X-M2M-RSC", str(int(r.rsc)))
        if r.rqi:
            resp.set_header("X-M2M-RI", r.rqi)
        if r.rvi:
            resp.set_header("X-M2M-RVI", r.rvi)
        if r.vsi:
            resp.set_header("X-M2M-VSI", r.vsi)
        resp.set_header("X-M2M-OT", r.ot or "")
        if r.location:
            resp.set_header("Content-Location", r.location)
        media = _response_media(req)
        resp.content_type = f"{media};ty={int(r.ty)}" if r.ty is not None and r.pc else media
        resp.data = serialization.encode(media, r.pc) if r.pc is not None else b""


def _response_media(req: falcon.Request) -> str:
    """JSON unless the client asks for CBOR (or the oneM2M media types) in Accept, or sent CBOR
    without saying what it accepts."""
    accept = (req.get_header("Accept") or "").lower()
    for media in (serialization.JSON_ONEM2M, serialization.CBOR_ONEM2M, serialization.CBOR):
        if media in accept and serialization.JSON not in accept:
            return media
    sent, _ = parse_content_type(req.get_header("Content-Type"))
    if serialization.is_cbor(sent) and not accept.strip("*/ "):
        return sent
    return serialization.JSON


def _last(params: dict[str, list[str]], key: str) -> str | None:
    values = params.get(key)
    return values[-1] if values else None


def _time_header(name: str, value: str | None, now: float) -> float:
    try:
        return parse_ts_or_duration(value or "", now)
    except ValueError as exc:
        raise bad_request(f"{name}: {exc}") from None


def new_rqi() -> str:
    return uuid.uuid4().hex
