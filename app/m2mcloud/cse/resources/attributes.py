"""Attribute policies and value checks shared by every resource type (TS-0004 clause 7.4)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from m2mcloud.cse.errors import bad_request
from m2mcloud.cse.timeutil import parse_ts

# Create / update policies: mandatory, optional, not present (must not be sent).
M, O, NP = "M", "O", "NP"

Check = Callable[[str, Any], Any]


def _str(name: str, v: Any) -> Any:
    if not isinstance(v, str):
        raise bad_request(f"attribute {name} must be a string, got {type(v).__name__}")
    return v


def _bool(name: str, v: Any) -> Any:
    if not isinstance(v, bool):
        raise bad_request(f"attribute {name} must be a boolean, got {type(v).__name__}")
    return v


def _nonneg_int(name: str, v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise bad_request(f"attribute {name} must be a non-negative integer, got {v!r}")
    return v


def _pos_int(name: str, v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise bad_request(f"attribute {name} must be a positive integer, got {v!r}")
    return v


def _str_list(name: str, v: Any) -> Any:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise bad_request(f"attribute {name} must be a list of strings")
    return v


def _nonempty_str_list(name: str, v: Any) -> Any:
    _str_list(name, v)
    if not v:
        raise bad_request(f"attribute {name} must not be an empty list")
    return v


def _dict(name: str, v: Any) -> Any:
    if not isinstance(v, dict):
        raise bad_request(f"attribute {name} must be a JSON object")
    return v


def _any(name: str, v: Any) -> Any:
    return v


def _timestamp(name: str, v: Any) -> Any:
    try:
        parse_ts(v)
    except ValueError as exc:
        raise bad_request(f"attribute {name}: {exc}") from None
    return v


def _int_in(*allowed: int) -> Check:
    def check(name: str, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int) or v not in allowed:
            raise bad_request(f"attribute {name} must be one of {list(allowed)}, got {v!r}")
        return v

    return check


STR, BOOL, NONNEG, POSINT, STRLIST, NONEMPTY_STRLIST, DICT, ANY, TIMESTAMP = (
    _str,
    _bool,
    _nonneg_int,
    _pos_int,
    _str_list,
    _nonempty_str_list,
    _dict,
    _any,
    _timestamp,
)
int_in = _int_in


@dataclass(frozen=True)
class Attr:
    check: Check
    create: str = O
    update: str = O


# Common attributes every creatable type accepts (TS-0004 table 9.6.1.3-1: "universal/common").
COMMON: dict[str, Attr] = {
    "rn": Attr(STR, O, NP),
    "ty": Attr(ANY, NP, NP),
    "ri": Attr(ANY, NP, NP),
    "pi": Attr(ANY, NP, NP),
    "ct": Attr(ANY, NP, NP),
    "lt": Attr(ANY, NP, NP),
    "st": Attr(ANY, NP, NP),
    "et": Attr(TIMESTAMP, O, O),
    "lbl": Attr(STRLIST, O, O),
    "acpi": Attr(STRLIST, O, O),
    "daci": Attr(STRLIST, O, O),
    "at": Attr(STRLIST, O, O),
    "aa": Attr(STRLIST, O, O),
    "cstn": Attr(STR, O, O),
}

# Unreserved characters of RFC 3986 minus '/', plus a few oneM2M resource names commonly use.
_RN = re.compile(r"^[A-Za-z0-9\-._~:@!$&'()*+,;=]+$")
RESERVED_NAMES = frozenset({"la", "ol", "fopt"})


def check_rn(rn: Any) -> str:
    if not isinstance(rn, str) or not rn:
        raise bad_request("resource name (rn) must be a non-empty string")
    if len(rn) > 255 or not _RN.match(rn) or rn in (".", ".."):
        raise bad_request(f"resource name {rn!r} contains characters not allowed in a name")
    if rn in RESERVED_NAMES:
        raise bad_request(f"resource name {rn!r} is reserved for a virtual resource")
    return rn


def validate_attributes(
    spec: Mapping[str, Attr], body: Mapping[str, Any], *, create: bool, type_name: str
) -> dict[str, Any]:
    """Check a create/update body against a type's attribute table. Returns the accepted values;
    in an update, `None` values mean "remove this attribute"."""
    out: dict[str, Any] = {}
    for name, value in body.items():
        attr = spec.get(name)
        if attr is None:
            raise bad_request(f"attribute {name!r} is not an attribute of {type_name}")
        policy = attr.create if create else attr.update
        if policy == NP:
            raise bad_request(
                f"attribute {name!r} of {type_name} cannot be "
                f"{'set on create' if create else 'updated'}"
            )
        if value is None:
            if create and name == "cr":
                out[name] = None  # creator: the CSE fills in the originator
                continue
            if create:
                raise bad_request(f"attribute {name!r} of {type_name} must not be null")
            if attr.create == M:
                raise bad_request(f"mandatory attribute {name!r} of {type_name} cannot be removed")
            out[name] = None
            continue
        out[name] = attr.check(name, value)
    if create:
        missing = [n for n, a in spec.items() if a.create == M and n not in body]
        if missing:
            raise bad_request(
                f"mandatory attribute(s) of {type_name} missing: {', '.join(missing)}"
            )
    return out
