"""oneM2M timestamps: ISO 8601 basic format `YYYYMMDDTHHMMSS[,ffffff]`, UTC (m2m:timestamp)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_TS = re.compile(r"^(\d{8}T\d{6})(?:[,.](\d{1,6}))?(Z|[+-]\d{2}:?\d{2})?$")
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


_last_second: list[tuple[int, str]] = [(-1, "")]


def format_ts(epoch: float) -> str:
    """Epoch seconds -> `20261125T142626,123456`. The seconds part is formatted once per second
    (a create formats several timestamps: strftime was a visible share of its CPU)."""
    second = int(epoch // 1)
    micros = round((epoch - second) * 1_000_000)
    if micros == 1_000_000:
        second, micros = second + 1, 0
    cached = _last_second[0]  # one tuple read: safe without a lock under concurrent threads
    if cached[0] != second:
        cached = (second, datetime.fromtimestamp(second, UTC).strftime("%Y%m%dT%H%M%S"))
        _last_second[0] = cached
    return f"{cached[1]},{micros:06d}"


def parse_ts(value: object) -> float:
    """A oneM2M timestamp (or epoch number, or ISO 8601 duration relative to now is NOT accepted
    here) -> epoch seconds. Raises ValueError with the offending value."""
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be a string like 20261125T120000, got {value!r}")
    m = _TS.match(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not a oneM2M timestamp (YYYYMMDDTHHMMSS[,ffffff])")
    base, frac, tz = m.groups()
    try:
        dt = datetime.strptime(base, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid date/time") from None
    epoch = dt.timestamp()
    if frac:
        epoch += int(frac.ljust(6, "0")) / 1_000_000
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        epoch -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return epoch


def parse_duration(value: object) -> float:
    """An ISO 8601 duration (`PT2S`, `P1DT2H`) or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value.strip())
        if m and any(m.groups()):
            days, hours, minutes, seconds = m.groups()
            whole = int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes or 0) * 60
            return whole + float(seconds or 0)
    raise ValueError(f"{value!r} is not an ISO 8601 duration such as PT2S")


def parse_ts_or_duration(value: str, now: float) -> float:
    """X-M2M-RET/OET accept an absolute timestamp or a relative duration in milliseconds
    (TS-0009 6.4.x): return the absolute epoch."""
    text = value.strip()
    try:
        return now + float(text) / 1000.0  # relative, in milliseconds (may be fractional)
    except ValueError:
        pass
    m = _DURATION.match(text)
    if m and any(m.groups()):
        days, hours, minutes, seconds = m.groups()
        return (
            now
            + int(days or 0) * 86400
            + int(hours or 0) * 3600
            + int(minutes or 0) * 60
            + float(seconds or 0)
        )
    return parse_ts(text)
