"""Traffic profiles: the aggregate rate of readings over time as piecewise-linear segments.

A profile answers two questions exactly: the target rate at time t, and how many readings should
have been offered by time t (the integral of the rate), which the scheduler uses so that rounding
never drifts: after a 10 s ramp from 0 to 100/s exactly 500 readings have been offered.

Profiles come from CLI flags (constant, step, ramp) or a YAML file:

    segments:                  # any sequence; `rate` for a flat segment, `from`/`to` for a ramp
      - {duration: 30, from: 0, to: 500}
      - {duration: 60, rate: 500}
      - {duration: 30, from: 500, to: 0}

or the shorthand forms `{kind: constant, rate: 50, duration: 60}`, `{kind: ramp, base_rate: 0,
rate: 500, ramp_up: 30, plateau: 60, ramp_down: 30}` and `{kind: step, steps: [[10, 50], [10,
200]]}`.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class ProfileError(ValueError):
    """The profile cannot be used; the message says which part and why."""


@dataclass(frozen=True)
class Segment:
    duration: float
    start_rate: float
    end_rate: float

    def rate_at(self, dt: float) -> float:
        if self.duration <= 0:
            return self.end_rate
        return self.start_rate + (self.end_rate - self.start_rate) * (dt / self.duration)

    def count_until(self, dt: float) -> float:
        """Readings offered in the first `dt` seconds of this segment (trapezoid area)."""
        dt = min(max(dt, 0.0), self.duration)
        return dt * (self.start_rate + self.rate_at(dt)) / 2.0


class Profile:
    """A sequence of segments starting at t = 0."""

    def __init__(self, segments: Sequence[Segment], name: str = "custom") -> None:
        if not segments:
            raise ProfileError("a profile needs at least one segment")
        for i, s in enumerate(segments):
            if not (s.duration > 0 and math.isfinite(s.duration)):
                raise ProfileError(f"segment {i + 1}: duration must be a positive number")
            if s.start_rate < 0 or s.end_rate < 0:
                raise ProfileError(f"segment {i + 1}: rates cannot be negative")
        self.segments = tuple(segments)
        self.name = name
        self._starts: list[float] = []
        self._counts: list[float] = []
        t = n = 0.0
        for s in self.segments:
            self._starts.append(t)
            self._counts.append(n)
            t += s.duration
            n += s.count_until(s.duration)
        self.duration = t
        self.total = n

    def _index(self, t: float) -> int:
        return max(0, bisect_right(self._starts, t) - 1)

    def rate_at(self, t: float) -> float:
        if t < 0 or t >= self.duration:
            return 0.0
        i = self._index(t)
        return self.segments[i].rate_at(t - self._starts[i])

    def count_until(self, t: float) -> float:
        """Readings the profile asks for in [0, t)."""
        if t <= 0:
            return 0.0
        if t >= self.duration:
            return self.total
        i = self._index(t)
        return self._counts[i] + self.segments[i].count_until(t - self._starts[i])

    @property
    def peak_rate(self) -> float:
        return max(max(s.start_rate, s.end_rate) for s in self.segments)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "duration_s": self.duration,
            "total_readings": round(self.total),
            "peak_rate": self.peak_rate,
            "segments": [
                {"duration": s.duration, "from": s.start_rate, "to": s.end_rate}
                for s in self.segments
            ],
        }


def constant(rate: float, duration: float) -> Profile:
    return Profile([Segment(duration, rate, rate)], "constant")


def steps(pairs: Sequence[tuple[float, float]]) -> Profile:
    return Profile([Segment(d, r, r) for d, r in pairs], "step")


def ramp(
    base_rate: float, rate: float, ramp_up: float, plateau: float, ramp_down: float
) -> Profile:
    """Ramp up from `base_rate` to `rate`, hold, ramp back down: the holiday-departure peak.
    Zero-length phases are left out."""
    segments = [
        Segment(d, a, b)
        for d, a, b in (
            (ramp_up, base_rate, rate),
            (plateau, rate, rate),
            (ramp_down, rate, base_rate),
        )
        if d > 0
    ]
    return Profile(segments, "ramp")


def parse_steps(text: str) -> list[tuple[float, float]]:
    """'10:50,10:200' -> [(10, 50), (10, 200)]."""
    pairs = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            seconds, rate = part.split(":")
            pairs.append((float(seconds), float(rate)))
        except ValueError:
            raise ProfileError(
                f"step {part!r}: write steps as seconds:rate, e.g. --steps 10:50,10:200"
            ) from None
    if not pairs:
        raise ProfileError("a step profile needs --steps seconds:rate[,seconds:rate...]")
    return pairs


def from_mapping(data: Mapping[str, Any]) -> Profile:
    """A profile from the YAML forms described in the module docstring."""
    try:
        if "segments" in data:
            segments = []
            for i, seg in enumerate(data["segments"]):
                if "rate" in seg:
                    start = end = float(seg["rate"])
                elif "from" in seg and "to" in seg:
                    start, end = float(seg["from"]), float(seg["to"])
                else:
                    raise ProfileError(f"segment {i + 1}: give `rate`, or `from` and `to`")
                segments.append(Segment(float(seg["duration"]), start, end))
            return Profile(segments, str(data.get("name", "custom")))
        kind = data.get("kind")
        if kind == "constant":
            return constant(float(data["rate"]), float(data["duration"]))
        if kind == "step":
            raw = data["steps"]
            pairs = (
                parse_steps(raw) if isinstance(raw, str) else [(float(d), float(r)) for d, r in raw]
            )
            return steps(pairs)
        if kind == "ramp":
            return ramp(
                float(data.get("base_rate", 0.0)),
                float(data["rate"]),
                float(data.get("ramp_up", 0.0)),
                float(data.get("plateau", 0.0)),
                float(data.get("ramp_down", 0.0)),
            )
    except KeyError as exc:
        raise ProfileError(f"profile is missing {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ProfileError):
            raise
        raise ProfileError(f"profile has a value that is not a number: {exc}") from None
    raise ProfileError(
        "a profile file needs `segments:` or `kind:` constant, step or ramp (see docs/devices.md)"
    )


def load_file(path: str | Path) -> Profile:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ProfileError(f"cannot read profile file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"profile file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ProfileError(f"profile file {path} must hold a mapping (segments: or kind:)")
    return from_mapping(data)


class Schedule:
    """Turns a profile into "send this many readings now": offered(t) tracks floor(count_until)."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.issued = 0

    def due(self, t: float) -> int:
        """Readings to send now so that the total issued reaches the profile's count at t."""
        target = math.floor(self.profile.count_until(t) + 1e-9)
        n = target - self.issued
        if n <= 0:
            return 0
        self.issued = target
        return n

    def finished(self, t: float) -> bool:
        return t >= self.profile.duration
