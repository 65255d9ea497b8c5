"""<container> (ty 3) and <contentInstance> (ty 4) (TS-0001 9.6.6/9.6.7)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from m2mcloud.cse.constants import RSC, ResourceType
from m2mcloud.cse.errors import CSEError, bad_request
from m2mcloud.cse.resources.attributes import (
    ANY,
    BOOL,
    COMMON,
    NONNEG,
    NP,
    POSINT,
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


class ContainerKind(ResourceKind):
    ty = ResourceType.CNT
    parents = frozenset({ResourceType.CSEBASE, ResourceType.AE, ResourceType.CNT})
    rn_prefix = "cnt"
    attributes: ClassVar = {
        **COMMON,
        "cr": Attr(ANY, O, NP),
        "mni": Attr(NONNEG, O, O),
        "mbs": Attr(NONNEG, O, O),
        "mia": Attr(NONNEG, O, O),
        "cni": Attr(ANY, NP, NP),
        "cbs": Attr(ANY, NP, NP),
        "li": Attr(STR, O, O),
        "or": Attr(STR, O, O),
        "disr": Attr(BOOL, O, O),
    }

    def on_create(
        self, cse: CSE, req: Request, parent: Resource, res: Resource, body: dict[str, Any]
    ) -> None:
        res.attrs["cni"] = 0
        res.attrs["cbs"] = 0

    def on_update(self, cse: CSE, req: Request, res: Resource, changes: dict[str, Any]) -> None:
        # Lowered mni/mbs prune inside the store's update transaction (the container is locked).
        if "mia" in changes:
            cse.apply_mia(res)
        if "disr" in changes and not res.attrs.get("disr"):
            before = cse.store.get(res.ri)
            if before is not None and before.attrs.get("disr"):
                # Instances written while retrieval was disabled are never served: drop them.
                for cin in cse.store.children(res.ri, ResourceType.CIN):
                    cse.store.delete(cin)


def content_size(con: Any) -> int:
    """contentSize: bytes of the content as sent (a string's UTF-8 length, else its JSON)."""
    if isinstance(con, str):
        return len(con.encode())
    return len(json.dumps(con, separators=(",", ":")).encode())


class ContentInstanceKind(ResourceKind):
    ty = ResourceType.CIN
    parents = frozenset({ResourceType.CNT})
    rn_prefix = "cin"
    updatable = False
    attributes: ClassVar = {
        **COMMON,
        "cr": Attr(ANY, O, NP),
        "cnf": Attr(STR, O, NP),
        "cs": Attr(ANY, NP, NP),
        "con": Attr(STR, M, NP),
        "or": Attr(STR, O, NP),
        "conr": Attr(STR, O, NP),
        "dgt": Attr(STR, O, NP),
        "dcnt": Attr(POSINT, O, NP),  # deletionCnt: deleted after that many retrievals
        "acpi": Attr(STRLIST, NP, NP),  # access is governed by the parent container
    }

    def on_create(
        self, cse: CSE, req: Request, parent: Resource, res: Resource, body: dict[str, Any]
    ) -> None:
        if body["con"] is None:
            raise bad_request("content (con) must not be null")
        cnf = body.get("cnf")
        if cnf is not None and not _valid_cnf(cnf):
            raise bad_request(f"contentInfo (cnf) {cnf!r} must look like 'type/subtype[:encoding]'")
        res.cs = content_size(body["con"])
        res.attrs["cs"] = res.cs
        mbs = parent.attrs.get("mbs")
        if mbs is not None and res.cs > mbs:
            raise CSEError(
                RSC.NOT_ACCEPTABLE,
                f"contentSize {res.cs} exceeds the container's maxByteSize {mbs}",
            )
        mia = parent.attrs.get("mia")
        if mia is not None:
            limit = res.ct + mia
            res.et = limit if res.et is None else min(res.et, limit)


def _valid_cnf(cnf: str) -> bool:
    """contentInfo is `type/subtype:encoding[:transferEncoding]` (TS-0004 m2m:contentInfo);
    encoding 0 plain, 1 base64 on strings, 2 base64 on binary."""
    parts = cnf.split(":")
    media = parts[0]
    type_, _, subtype = media.partition("/")
    if not type_ or not subtype or "/" in subtype or len(parts) not in (2, 3):
        return False
    if parts[1] not in ("0", "1", "2"):
        return False
    return len(parts) == 2 or parts[2].isdigit()
