"""<group> (ty 9): member lists, type consistency and the fanOutPoint (TS-0001 9.6.13)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from m2mcloud.cse.constants import RSC, Operation, ResourceType
from m2mcloud.cse.errors import CSEError
from m2mcloud.cse.resources.attributes import (
    ANY,
    COMMON,
    NONNEG,
    NP,
    POSINT,
    STR,
    STRLIST,
    Attr,
    M,
    O,
    int_in,
)
from m2mcloud.cse.resources.base import ResourceKind
from m2mcloud.cse.store import Resource

if TYPE_CHECKING:
    from m2mcloud.cse.core import CSE
    from m2mcloud.cse.request import Request, Response

MIXED = (0, 24)  # memberType "mixed": 0 in the ACME/TS-0004 test suites, 24 in later releases
ABANDON_MEMBER, ABANDON_GROUP, SET_MIXED = 1, 2, 3


class GroupKind(ResourceKind):
    ty = ResourceType.GRP
    parents = frozenset({ResourceType.CSEBASE, ResourceType.AE})
    rn_prefix = "grp"
    attributes: ClassVar = {
        **COMMON,
        "cr": Attr(ANY, O, NP),
        "mt": Attr(NONNEG, O, NP),
        "cnm": Attr(ANY, NP, NP),
        "mnm": Attr(POSINT, M, O),
        "mid": Attr(STRLIST, M, O),
        "macp": Attr(STRLIST, O, O),
        "mtv": Attr(ANY, NP, NP),
        "csy": Attr(int_in(1, 2, 3), O, NP),
        "gn": Attr(STR, O, O),
        "ssi": Attr(ANY, O, O),
        "nar": Attr(ANY, O, O),
    }

    def on_create(
        self, cse: CSE, req: Request, parent: Resource, res: Resource, body: dict[str, Any]
    ) -> None:
        res.attrs.setdefault("mt", 0)
        set_members(cse, req, res)

    def on_update(self, cse: CSE, req: Request, res: Resource, changes: dict[str, Any]) -> None:
        if "mid" in changes or "mnm" in changes:
            set_members(cse, req, res)


def set_members(cse: CSE, req: Request, group: Resource) -> None:
    """Resolve, de-duplicate and type-check `mid`; keep cnm; enforce mnm (6010)."""
    attrs = group.attrs
    mt, csy = attrs.get("mt", 0), attrs.get("csy", ABANDON_MEMBER)
    members: list[str] = []
    for address in attrs.get("mid", []):
        member = cse.resolve(address).resource  # 4004 when the member does not exist
        if not cse.access.allowed(req.originator, member, Operation.RETRIEVE):
            raise CSEError(
                RSC.RECEIVER_HAS_NO_PRIVILEGE,
                f"originator {req.originator} may not retrieve member {address}",
            )
        if mt not in MIXED and int(member.ty) != mt:
            if csy == ABANDON_GROUP:
                raise CSEError(
                    RSC.GROUP_MEMBER_TYPE_INCONSISTENT,
                    f"member {address} is a {member.tpe}, not of memberType {mt}",
                )
            if csy == ABANDON_MEMBER:
                continue
            mt = attrs["mt"] = 0
        if member.ri not in members:
            members.append(member.ri)
    if len(members) > attrs["mnm"]:
        raise CSEError(
            RSC.MAX_NUMBER_OF_MEMBER_EXCEEDED,
            f"{len(members)} members exceed maxNrOfMembers (mnm) {attrs['mnm']}",
        )
    attrs["mid"] = members
    attrs["cnm"] = len(members)
    attrs["mtv"] = True


def refresh_members(cse: CSE, group: Resource) -> Resource:
    """Members deleted since the last look drop out of `mid` (and `cnm`)."""
    mid = group.attrs.get("mid", [])
    alive = {r.ri for r in cse.store.get_many(mid) if not cse.is_expired(r)}
    if len(alive) == len(mid):
        return group
    new = group.copy()
    new.attrs["mid"] = [m for m in mid if m in alive]
    new.attrs["cnm"] = len(new.attrs["mid"])
    return cse.store.update(new)


def fan_out(cse: CSE, req: Request, group: Resource, rest: str) -> Response:
    """Send the request to every member (plus the path after fopt) and aggregate the answers."""
    from dataclasses import replace

    from m2mcloud.cse.request import Response

    cse.access.check(req.originator, group, Operation.RETRIEVE)
    group = refresh_members(cse, group)
    responses: list[dict[str, Any]] = []
    for member in cse.store.get_many(group.attrs.get("mid", [])):
        to = member.srn + (f"/{rest}" if rest else "")
        sub = replace(req, to=to)
        try:
            resp = cse.execute(sub)
        except CSEError as exc:
            resp = Response(rsc=exc.rsc, pc={"m2m:dbg": exc.message})
        entry: dict[str, Any] = {
            "rsc": int(resp.rsc),
            "rqi": req.rqi,
            "to": resp.location or to,
            "fr": cse.config.csi,
        }
        if req.rvi:
            entry["rvi"] = req.rvi
        if resp.pc is not None:
            entry["pc"] = resp.pc
        responses.append(entry)
    return Response(rsc=RSC.OK, pc={"m2m:agr": {"m2m:rsp": responses}})
