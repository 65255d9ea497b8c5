"""<AE> (ty 2): application entity registration (TS-0001 10.2.2.2, TS-0004 7.4.5)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from m2mcloud.cse.constants import KNOWN_RELEASES, RSC, ResourceType
from m2mcloud.cse.errors import CSEError, bad_request
from m2mcloud.cse.resources.attributes import (
    BOOL,
    COMMON,
    NONEMPTY_STRLIST,
    NP,
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
    from m2mcloud.cse.request import Request


class AEKind(ResourceKind):
    ty = ResourceType.AE
    parents = frozenset({ResourceType.CSEBASE})
    rn_prefix = "ae"
    attributes: ClassVar = {
        **COMMON,
        "api": Attr(STR, M, NP),
        "apn": Attr(STR, O, O),
        "aei": Attr(STR, NP, NP),
        "poa": Attr(STRLIST, O, O),
        "rr": Attr(BOOL, M, O),
        "nl": Attr(STR, O, O),
        "csz": Attr(STRLIST, O, O),
        "srv": Attr(NONEMPTY_STRLIST, M, O),
        "or": Attr(STR, O, O),
        "nfu": Attr(STRLIST, O, O),
        "esi": Attr(STRLIST, O, O),
        "regs": Attr(STR, O, O),
        "trps": Attr(BOOL, O, O),
        "scp": Attr(STRLIST, O, O),
        "tren": Attr(BOOL, O, O),
        "ape": Attr(STR, O, O),
        "lrt": Attr(int_in(1, 2, 3), O, O),
    }

    @staticmethod
    def assign_aei(cse: CSE, originator: str) -> str:
        """The AE-ID for a registration from `originator` (TS-0001 table 7.2-1):
        empty or 'C' -> a new C-AE-ID; 'S' -> a new S-AE-ID; 'C...'/'S...' -> kept."""
        if originator in ("", "C"):
            return "C" + cse.new_id()
        if originator == "S":
            if not cse.config.allow_s_originator:
                raise CSEError(
                    RSC.SECURITY_ASSOCIATION_REQUIRED,
                    "registration with an S-AE-ID is not allowed by this CSE",
                )
            return "S" + cse.new_id()
        if originator[0] in "CS" and "/" not in originator:
            if originator[0] == "S" and not cse.config.allow_s_originator:
                raise CSEError(
                    RSC.SECURITY_ASSOCIATION_REQUIRED,
                    "registration with an S-AE-ID is not allowed by this CSE",
                )
            if cse.store.get(originator) is not None:
                raise CSEError(
                    RSC.ORIGINATOR_HAS_ALREADY_REGISTERED,
                    f"originator {originator} is already registered",
                )
            return originator
        raise CSEError(
            RSC.SECURITY_ASSOCIATION_REQUIRED,
            f"originator {originator!r} cannot register an AE: use 'C', 'S', empty, "
            "or an AE-ID starting with C or S",
        )

    def on_create(
        self, cse: CSE, req: Request, parent: Resource, res: Resource, body: dict[str, Any]
    ) -> None:
        api = body["api"]
        # Release 2a/3 clients may still send the lower-case prefixes of earlier releases.
        prefixes = "RNrn" if req.rvi in (None, "2a", "3") else "RN"
        if not api or api[0] not in prefixes:
            raise bad_request(
                f"App-ID (api) {api!r} must start with 'R' (registered) or 'N' (non-registered)"
            )
        if api[0] == "R" and len(api) < 2:
            raise bad_request("a registered App-ID (api) needs characters after 'R'")
        for release in body["srv"]:
            if release not in KNOWN_RELEASES:
                raise bad_request(
                    f"supportedReleaseVersions (srv) {release!r} is not one of "
                    f"{list(KNOWN_RELEASES)}"
                )
        check_serializations(body.get("csz"))
        res.attrs["aei"] = res.ri
        res.owner = res.ri
        res.creator = res.ri

    def on_update(self, cse: CSE, req: Request, res: Resource, changes: dict[str, Any]) -> None:
        check_serializations(changes.get("csz"))
        for release in res.attrs.get("srv", []):
            if release not in KNOWN_RELEASES:
                raise bad_request(f"supportedReleaseVersions (srv) {release!r} is not supported")


SERIALIZATIONS = frozenset(
    {"application/json", "application/cbor", "application/xml", "application/vnd.onem2m-res+json"}
)


def check_serializations(csz: list[str] | None) -> None:
    for media in csz or []:
        if media not in SERIALIZATIONS:
            raise bad_request(
                f"contentSerialization (csz) {media!r} is not a oneM2M "
                f"serialization ({', '.join(sorted(SERIALIZATIONS))})"
            )
