"""<subscription> (ty 23): event notification criteria and targets (TS-0001 9.6.8)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from m2mcloud.cse.constants import RSC, Operation, ResourceType
from m2mcloud.cse.errors import CSEError, bad_request
from m2mcloud.cse.resources.attributes import (
    ANY,
    BOOL,
    COMMON,
    DICT,
    NONEMPTY_STRLIST,
    NONNEG,
    NP,
    POSINT,
    STR,
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

SUPPORTED_NET = frozenset({1, 2, 3, 4})
_ENC_KEYS = {"net", "atr", "chty", "om", "exc", "mi", "nfc"}


class SubscriptionKind(ResourceKind):
    ty = ResourceType.SUB
    parents = frozenset(
        {
            ResourceType.CSEBASE,
            ResourceType.AE,
            ResourceType.CNT,
            ResourceType.ACP,
            ResourceType.GRP,
            ResourceType.NOD,
            ResourceType.MGO,
        }
    )
    rn_prefix = "sub"
    attributes: ClassVar = {
        **COMMON,
        "cr": Attr(ANY, O, NP),
        "nu": Attr(NONEMPTY_STRLIST, M, O),
        "enc": Attr(DICT, O, O),
        "exc": Attr(POSINT, O, O),
        "nct": Attr(int_in(1, 2, 3), O, O),
        "nfu": Attr(STR, O, O),
        "gpi": Attr(STR, O, NP),
        "bn": Attr(DICT, O, O),
        "rl": Attr(DICT, O, O),
        "psn": Attr(POSINT, O, O),
        "pn": Attr(int_in(1, 2), O, O),
        "nsp": Attr(NONNEG, O, O),
        "ln": Attr(BOOL, O, O),
        "nec": Attr(STR, O, O),
        "su": Attr(STR, O, NP),
    }

    def on_create(
        self, cse: CSE, req: Request, parent: Resource, res: Resource, body: dict[str, Any]
    ) -> None:
        if not cse.access.allowed(req.originator, parent, Operation.RETRIEVE):
            raise CSEError(
                RSC.SUBSCRIPTION_CREATOR_HAS_NO_PRIVILEGE,
                f"originator {req.originator} may not retrieve the subscribed-to "
                "resource, so it cannot subscribe to it",
            )
        res.attrs["enc"] = normalise_enc(body.get("enc"))
        if body.get("bn") is not None:
            res.attrs["bn"] = normalise_bn(body["bn"])
        res.attrs.setdefault("nct", 1)
        check_criteria(cse, parent, res)
        if "cr" in body:
            res.attrs["cr"] = req.originator
        # A verification request goes to every target that is not the subscriber itself.
        cse.notifier.verify(res, req.originator)

    def on_update(self, cse: CSE, req: Request, res: Resource, changes: dict[str, Any]) -> None:
        if "enc" in changes:
            res.attrs["enc"] = normalise_enc(res.attrs.get("enc"))
        if changes.get("bn") is not None:
            res.attrs["bn"] = normalise_bn(changes["bn"])
            cse.notifier.flush(res.ri)  # new batching rules start with an empty batch
        if "enc" in changes or "nct" in changes:
            parent = cse.store.get(res.pi or "")
            if parent is not None:
                check_criteria(cse, parent, res)
        if "nu" in changes:
            cse.notifier.verify(res, req.originator, only=changes["nu"])


DEFAULT_BATCH_SECONDS = 60


def normalise_bn(bn: dict[str, Any]) -> dict[str, Any]:
    """batchNotify: `num` notifications and/or `dur` (ISO 8601 duration); with only `num` the
    CSE adds a duration (seconds) so that a quiet subscription still flushes its batch."""
    from m2mcloud.cse.timeutil import parse_duration

    unknown = set(bn) - {"num", "dur"}
    if unknown:
        raise bad_request(f"batchNotify (bn) has unknown elements {sorted(unknown)}")
    num, dur = bn.get("num"), bn.get("dur")
    if num is None and dur is None:
        raise bad_request("batchNotify (bn) needs num and/or dur")
    if num is not None and (isinstance(num, bool) or not isinstance(num, int) or num < 1):
        raise bad_request(f"bn.num must be a positive integer, got {num!r}")
    if dur is not None:
        try:
            if parse_duration(dur) <= 0:
                raise ValueError(dur)
        except ValueError:
            raise bad_request(f"bn.dur {dur!r} must be a positive duration such as PT2S") from None
    out = dict(bn)
    out.setdefault("dur", DEFAULT_BATCH_SECONDS)
    return out


def normalise_enc(enc: dict[str, Any] | None) -> dict[str, Any]:
    """Default eventNotificationCriteria is net=[1] (update of the resource)."""
    enc = dict(enc or {})
    unknown = set(enc) - _ENC_KEYS
    if unknown:
        raise bad_request(
            f"eventNotificationCriteria (enc) has unknown element(s) {sorted(unknown)}"
        )
    net = enc.get("net", [1])
    if (
        not isinstance(net, list)
        or not net
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in net)
    ):
        raise bad_request("enc.net must be a non-empty list of notificationEventType integers")
    bad = [n for n in net if not 1 <= n <= 8]
    if bad:
        raise bad_request(f"enc.net has invalid notificationEventType value(s) {bad}")
    if 8 in net:
        raise bad_request("notificationEventType 8 (missing data) applies to <timeSeries> only")
    unsupported = [n for n in net if n not in SUPPORTED_NET]
    if unsupported:
        raise CSEError(
            RSC.NOT_IMPLEMENTED,
            f"notificationEventType(s) {unsupported} are not supported by this CSE",
        )
    enc["net"] = net
    if "atr" in enc and (
        not isinstance(enc["atr"], list) or not all(isinstance(a, str) for a in enc["atr"])
    ):
        raise bad_request("enc.atr must be a list of attribute names")
    if "chty" in enc and (
        not isinstance(enc["chty"], list) or not all(isinstance(t, int) for t in enc["chty"])
    ):
        raise bad_request("enc.chty must be a list of resource types")
    return enc


def check_criteria(cse: CSE, parent: Resource, sub: Resource) -> None:
    """Combinations the standard rules out: modified-attributes content for anything but
    updates, and child types the subscribed-to resource cannot have."""
    from m2mcloud.cse.core import KINDS

    enc = sub.attrs["enc"]
    if sub.attrs.get("nct") == 2 and any(n != 1 for n in enc["net"]):
        raise bad_request(
            "notificationContentType 2 (modified attributes) only fits "
            "notificationEventType 1 (update)"
        )
    for chty in enc.get("chty", []):
        kind = KINDS.get(ResourceType(chty)) if chty in {int(t) for t in ResourceType} else None
        if kind is None or parent.ty not in kind.parents:
            raise bad_request(f"enc.chty {chty} is not a child type of a {parent.tpe}")
