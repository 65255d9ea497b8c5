"""Request parameters shared by the bindings: rcn, rt, drt and the filter criteria (TS-0004
7.3.3.17), parsed from text (HTTP query strings) or JSON values (MQTT `fc`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from m2mcloud.cse.constants import ResponseType
from m2mcloud.cse.errors import bad_request
from m2mcloud.cse.request import FilterCriteria
from m2mcloud.cse.timeutil import parse_ts

_INT_FIELDS = ("sts", "stb", "sza", "szb", "lim", "ofst", "lvl")
_TIME_FIELDS = ("cra", "crb", "ms", "us", "exa", "exb")
FILTER_KEYS = frozenset({"fu", "ty", "lbl", "cty", "fo", *_INT_FIELDS, *_TIME_FIELDS})
OTHER_KEYS = frozenset(
    {
        "rcn",
        "rt",
        "rp",
        "drt",
        "arp",
        "atrl",
        "rtu",
        "gid",
        "sqi",
        "smf",
        "gq",
        "catr",
        "nrf",
        "ppt",
        "rpts",
    }
)


def _ints(name: str, values: Sequence[Any]) -> list[int]:
    out: list[int] = []
    for v in values:
        for part in str(v).replace("+", " ").split():
            try:
                out.append(int(part))
            except ValueError:
                raise bad_request(f"{name}={v!r} must be an integer") from None
    return out


def _int(name: str, value: Any, minimum: int = 0) -> int:
    try:
        n = int(str(value))
    except ValueError:
        raise bad_request(f"{name}={value!r} must be an integer") from None
    if n < minimum:
        raise bad_request(f"{name}={value!r} must be at least {minimum}")
    return n


def parse_filter(
    params: Mapping[str, Sequence[Any]], attribute_names: frozenset[str]
) -> FilterCriteria:
    fc = FilterCriteria()
    for key, values in params.items():
        if not values:
            continue
        value = values[-1]
        if key == "fu":
            fc.fu = _int(key, value)
            if fc.fu not in (1, 2):
                raise bad_request(f"filterUsage fu={value!r} must be 1 (discovery) or 2")
        elif key == "ty":
            fc.ty = _ints(key, values)
        elif key == "lbl":
            fc.lbl = [p for v in values for p in str(v).replace("+", " ").split()]
        elif key == "cty":
            fc.cty = [p for v in values for p in str(v).replace("+", " ").split()]
        elif key == "fo":
            fc.fo = _int(key, value)
            if fc.fo not in (1, 2):
                raise bad_request(f"filterOperation fo={value!r} must be 1 (AND) or 2 (OR)")
        elif key in _INT_FIELDS:
            setattr(fc, key, _int(key, value, minimum=1 if key == "lvl" else 0))
        elif key in _TIME_FIELDS:
            try:
                setattr(fc, key, parse_ts(str(value)))
            except ValueError as exc:
                raise bad_request(f"{key}: {exc}") from None
        elif key in OTHER_KEYS:
            continue
        elif key in attribute_names:
            fc.attrs[key] = str(value)
        else:
            raise bad_request(f"unknown request parameter {key!r}")
    return fc


def parse_rt(value: Any) -> ResponseType:
    try:
        return ResponseType(_int("rt", value))
    except ValueError:
        raise bad_request(f"responseType rt={value!r} is not 1..5") from None


def parse_drt(value: Any) -> int:
    drt = _int("drt", value)
    if drt not in (1, 2):
        raise bad_request(f"discoveryResultType drt={value!r} must be 1 or 2")
    return drt
