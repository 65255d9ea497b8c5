"""<node> (ty 14) and <mgmtObj> (ty 13) for device management (TS-0001 9.6.18/9.6.15, annex D).

A <mgmtObj> is named after its specialization: `m2m:fwr`, `m2m:mem`, `m2m:bat` ... with the
management definition `mgd` fixing which one; the CSE stores and serves them (it does not drive
a device-management protocol behind them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from m2mcloud.cse.constants import MGMT_MGD, MGMT_TPE, ResourceType
from m2mcloud.cse.errors import bad_request
from m2mcloud.cse.resources.attributes import (
    ANY,
    BOOL,
    COMMON,
    DICT,
    NONNEG,
    NP,
    STR,
    STRLIST,
    Attr,
    M,
    O,
)
from m2mcloud.cse.resources.base import ResourceKind
from m2mcloud.cse.store import Resource

if TYPE_CHECKING:
    from m2mcloud.cse.core import CSE
    from m2mcloud.cse.request import Request


class NodeKind(ResourceKind):
    ty = ResourceType.NOD
    parents = frozenset({ResourceType.CSEBASE})
    rn_prefix = "nod"
    attributes: ClassVar = {
        **COMMON,
        "cr": Attr(ANY, O, NP),
        "ni": Attr(STR, M, O),
        "hcl": Attr(STR, O, O),
        "hael": Attr(STRLIST, O, O),
        "hsl": Attr(STRLIST, O, O),
        "mgca": Attr(STR, O, O),
        "rms": Attr(STR, O, O),
        "nid": Attr(STR, O, O),
        "nty": Attr(NONNEG, O, O),
    }


_MGMT_COMMON: dict[str, Attr] = {
    **COMMON,
    "mgd": Attr(NONNEG, M, NP),
    "obis": Attr(STRLIST, O, O),
    "obps": Attr(STRLIST, O, O),
    "dc": Attr(STR, O, O),
    "mgs": Attr(ANY, NP, NP),
    "cmlk": Attr(STRLIST, O, O),
}
_SPECIALIZATION: dict[int, dict[str, Attr]] = {
    1001: {
        "vr": Attr(STR, M, O),
        "fwn": Attr(STR, M, O),
        "url": Attr(STR, M, O),
        "ud": Attr(BOOL, M, O),
        "uds": Attr(DICT, O, O),
    },
    1002: {
        "vr": Attr(STR, M, O),
        "swn": Attr(STR, M, O),
        "url": Attr(STR, M, O),
        "ins": Attr(BOOL, O, O),
        "acts": Attr(DICT, O, O),
        "in": Attr(BOOL, O, O),
        "un": Attr(BOOL, O, O),
        "act": Attr(BOOL, O, O),
        "dea": Attr(BOOL, O, O),
    },
    1003: {"mma": Attr(NONNEG, O, O), "mmt": Attr(NONNEG, O, O)},
    1004: {"ant": Attr(STR, O, O), "ldv": Attr(STRLIST, O, O)},
    1005: {
        "dvd": Attr(STR, O, O),
        "dvt": Attr(STR, O, O),
        "awi": Attr(STR, O, O),
        "sli": Attr(NONNEG, O, O),
        "sld": Attr(NONNEG, O, O),
        "ss": Attr(STR, O, O),
        "lnh": Attr(STRLIST, O, O),
    },
    1006: {"btl": Attr(NONNEG, O, O), "bts": Attr(NONNEG, O, O)},
    1007: {
        name: Attr(STR, O, O)
        for name in (
            "dlb",
            "man",
            "mod",
            "dty",
            "fwv",
            "swv",
            "hwv",
            "osv",
            "cnty",
            "loc",
            "syst",
            "spur",
            "purl",
            "ptl",
            "dvnm",
            "mfdl",
            "mfd",
            "smod",
        )
    }
    | {"dlb": Attr(STRLIST, O, O)},
    1008: {
        "can": Attr(STR, O, O),
        "att": Attr(BOOL, O, O),
        "cas": Attr(DICT, O, O),
        "ena": Attr(BOOL, O, O),
        "dis": Attr(BOOL, O, O),
        "cus": Attr(DICT, O, O),
    },
    1009: {"rbo": Attr(BOOL, O, O), "far": Attr(BOOL, O, O)},
    1010: {
        "lgt": Attr(NONNEG, O, O),
        "lgd": Attr(STR, O, O),
        "lgst": Attr(NONNEG, O, O),
        "lga": Attr(BOOL, O, O),
        "lgo": Attr(BOOL, O, O),
    },
}
_ATTRIBUTES = {MGMT_TPE[mgd]: {**_MGMT_COMMON, **extra} for mgd, extra in _SPECIALIZATION.items()}


class MgmtObjKind(ResourceKind):
    ty = ResourceType.MGO
    parents = frozenset({ResourceType.NOD})
    rn_prefix = "mgo"
    attributes: ClassVar = _MGMT_COMMON

    def wrapper_of(self, pc: Any) -> str:
        if isinstance(pc, dict) and len(pc) == 1:
            (key,) = pc
            if key in MGMT_MGD:
                return str(key)
        names = ", ".join(sorted(MGMT_MGD))
        raise bad_request(f"a mgmtObj must be one object named after its specialization: {names}")

    def attributes_for(self, tpe: str) -> Mapping[str, Attr]:
        return _ATTRIBUTES.get(tpe, _MGMT_COMMON)

    def on_create(
        self, cse: CSE, req: Request, parent: Resource, res: Resource, body: dict[str, Any]
    ) -> None:
        expected = MGMT_MGD[self.wrapper_of(req.pc)]
        if body["mgd"] != expected:
            raise bad_request(f"mgd {body['mgd']} does not match {MGMT_TPE[expected]} ({expected})")
