"""<request> (ty 17) and non-blocking requests (TS-0001 8.2.2, TS-0004 7.3.2.2).

With rt=1 (nonBlockingRequestSynch) the CSE answers 1001 at once with the address of a
<request> resource, runs the operation in the background and records the outcome there; the
originator polls it. With rt=2 (nonBlockingRequestAsynch) it answers 1002 and also sends the
outcome as a response primitive to the addresses given in the request (X-M2M-RTU / rt.nu), or
to the originator's pointOfAccess when none were given.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from m2mcloud.cse.constants import RSC, ResourceType, ResponseType
from m2mcloud.cse.resources.attributes import ANY, COMMON, NP, Attr
from m2mcloud.cse.resources.base import ResourceKind
from m2mcloud.cse.store import Resource
from m2mcloud.cse.timeutil import format_ts

if TYPE_CHECKING:
    from m2mcloud.cse.core import CSE
    from m2mcloud.cse.request import Request, Response

log = logging.getLogger(__name__)

COMPLETED, FAILED, PENDING = 1, 2, 3
DEFAULT_PERSISTENCE = 300.0  # seconds a <request> stays when the request named no rp


class RequestKind(ResourceKind):
    ty = ResourceType.REQ
    parents = frozenset({ResourceType.CSEBASE})
    rn_prefix = "req"
    updatable = False
    creatable = False  # only the CSE creates them, for non-blocking requests
    attributes: ClassVar = {
        **COMMON,
        **{name: Attr(ANY, NP, NP) for name in ("op", "tg", "org", "rid", "mi", "pc", "rs", "ors")},
    }


def accept_non_blocking(cse: CSE, req: Request) -> Response:
    """Record a <request> resource, start the operation in the background, answer 1001/1002."""
    from m2mcloud.cse.request import Response

    now = cse.clock()
    ri = RequestKind.rn_prefix + cse.new_id()
    # The <request> lives for the result persistence asked for, else as long as the request
    # itself may (its expiration), else a default.
    if req.rp is not None and req.rp > now:
        et = req.rp
    elif req.rset or req.rqet:
        et = max(req.rset or 0.0, req.rqet or 0.0)
    else:
        et = now + DEFAULT_PERSISTENCE
    mi: dict[str, Any] = {"rt": {"rtv": int(req.rt)}}
    if req.rp_raw:
        mi["rp"] = req.rp_raw
    for key, value in (
        ("ty", req.ty),
        ("ot", req.ot),
        ("vsi", req.vsi),
        ("rcn", req.rcn),
        ("drt", req.drt),
    ):
        if value is not None:
            mi[key] = int(value) if key == "rcn" else value
    if req.rtu is not None:
        mi["rt"]["nu"] = req.rtu
    attrs: dict[str, Any] = {
        "op": int(req.op),
        "tg": req.to,
        "org": req.originator,
        "rid": req.rqi,
        "mi": mi,
        "rs": PENDING,
        "lbl": [req.originator] if req.originator else [],
    }
    if req.pc is not None:
        attrs["pc"] = req.pc
    base = cse.store.get(cse.cse_base_ri)
    assert base is not None
    res = Resource(
        ri=ri,
        ty=ResourceType.REQ,
        rn=ri,
        pi=base.ri,
        srn=f"{base.srn}/{ri}",
        ct=now,
        lt=now,
        et=et,
        owner=req.originator,
        creator=req.originator,
        attrs=attrs,
    )
    cse.store.create(res)
    threading.Thread(
        target=_complete, args=(cse, req, res), name=f"nonblocking-{ri}", daemon=True
    ).start()
    rsc = (
        RSC.ACCEPTED_NON_BLOCKING_SYNCH
        if req.rt == ResponseType.NON_BLOCKING_SYNCH
        else RSC.ACCEPTED_NON_BLOCKING_ASYNCH
    )
    return Response(rsc=rsc, pc={"m2m:uri": ri})


def _complete(cse: CSE, req: Request, res: Resource) -> None:
    blocking = replace(req, rt=ResponseType.BLOCKING)
    resp = cse.handle(blocking)
    result: dict[str, Any] = {
        "rsc": int(resp.rsc),
        "rqi": req.rqi,
        "to": req.originator,
        "fr": cse.config.csi,
        "ot": format_ts(cse.clock()),
    }
    if resp.pc is not None:
        result["pc"] = resp.pc
    current = cse.store.get(res.ri)
    if current is not None:
        current.attrs["rs"] = COMPLETED
        current.attrs["ors"] = result
        current.lt = max(cse.clock(), current.lt + 1e-6)
        cse.store.update(current)
    if req.rt == ResponseType.NON_BLOCKING_ASYNCH:
        targets = req.rtu if req.rtu is not None else [req.originator]
        for target in targets:
            if target:
                cse.notifier.enqueue(target, {"m2m:rsp": result})
    log.debug("non-blocking request %s finished: %s", req.rqi, int(resp.rsc))
    time.sleep(0)  # let the scheduler run waiting pollers
