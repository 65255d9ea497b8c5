"""What happened during a run, second by second: every reading offered ends in exactly one
outcome — acknowledged (with its latency), an error of some class, or unfinished (still unanswered
when the run stopped) — so `offered == acked + errors + unfinished` always holds."""

from __future__ import annotations

import math
import threading
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values; NaN when there are none."""
    if not sorted_values:
        return math.nan
    rank = math.ceil(p / 100.0 * len(sorted_values))
    return float(sorted_values[min(len(sorted_values), max(rank, 1)) - 1])


@dataclass
class Bucket:
    """One second of the run."""

    offered: int = 0
    acked: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: array[float] = field(default_factory=lambda: array("d"))


@dataclass
class Phase:
    """Counts of a phase without a time series (device setup, clean-up)."""

    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: array[float] = field(default_factory=lambda: array("d"))


class Recorder:
    """Thread-safe collector. Times are `time.monotonic()` values; `start()` sets t = 0."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self.buckets: list[Bucket] = []
        self.setup = Phase()
        self.cleanup = Phase()
        self.unfinished = 0
        self.commands = Phase()
        self.devices_ready = 0
        # Offered readings count in the profile's last second at the latest: the one due exactly
        # at its end is sent a few milliseconds later, and is no traffic of the second after.
        self.horizon: float | None = None

    def start(self, now: float | None = None) -> None:
        with self._lock:
            self.t0 = time.monotonic() if now is None else now
            self.wall0 = time.time() - (time.monotonic() - self.t0)

    def _bucket(self, now: float) -> Bucket:
        i = max(0, int(now - self.t0))
        while len(self.buckets) <= i:
            self.buckets.append(Bucket())
        return self.buckets[i]

    def offered(self, now: float, n: int = 1) -> None:
        with self._lock:
            if self.horizon is not None:
                now = min(now, self.t0 + max(0.0, self.horizon - 0.5))
            self._bucket(now).offered += n

    def acked(self, now: float, latency: float) -> None:
        with self._lock:
            b = self._bucket(now)
            b.acked += 1
            b.latencies.append(latency)

    def error(self, now: float, kind: str, n: int = 1) -> None:
        with self._lock:
            self._bucket(now).errors[kind] += n

    def finish(self, unfinished: int) -> None:
        with self._lock:
            self.unfinished += unfinished

    def phase(self, name: str, *, latency: float | None = None, error: str | None = None) -> None:
        """Count a setup / cleanup / command outcome."""
        with self._lock:
            ph: Phase = getattr(self, name)
            if error is None:
                ph.ok += 1
                if latency is not None:
                    ph.latencies.append(latency)
            else:
                ph.errors[error] += 1

    # -- reading it back ------------------------------------------------------------------------

    def snapshot(self, now: float, window: float = 1.0) -> dict[str, float]:
        """Totals and the rates of the last complete `window` seconds, for live progress."""
        with self._lock:
            offered = sum(b.offered for b in self.buckets)
            acked = sum(b.acked for b in self.buckets)
            errors = sum(sum(b.errors.values()) for b in self.buckets)
            current = max(0, int(now - self.t0))
            first = max(0, current - max(1, int(window)))
            recent = self.buckets[first:current]
            lat = sorted(x for b in recent for x in b.latencies)
            seconds = max(1, len(recent))
            return {
                "t": now - self.t0,
                "offered": offered,
                "acked": acked,
                "errors": errors,
                "offered_rate": sum(b.offered for b in recent) / seconds,
                "acked_rate": sum(b.acked for b in recent) / seconds,
                "p50": percentile(lat, 50),
                "p99": percentile(lat, 99),
            }

    def all_latencies(self) -> list[float]:
        with self._lock:
            return sorted(x for b in self.buckets for x in b.latencies)

    def totals(self) -> tuple[int, int, Counter[str]]:
        with self._lock:
            errors: Counter[str] = Counter()
            for b in self.buckets:
                errors.update(b.errors)
            return (
                sum(b.offered for b in self.buckets),
                sum(b.acked for b in self.buckets),
                errors,
            )


def merge_counters(counters: Iterable[Counter[str]]) -> Counter[str]:
    out: Counter[str] = Counter()
    for c in counters:
        out.update(c)
    return out
