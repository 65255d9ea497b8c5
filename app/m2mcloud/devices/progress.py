"""Live progress on the terminal: a line refreshed in place on a tty, or one line per interval
in a log (a Kubernetes Job's output)."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import TextIO

from m2mcloud.devices.stats import Recorder


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}ms"


class Progress:
    def __init__(
        self,
        recorder: Recorder,
        mode: str = "auto",
        interval: float = 1.0,
        stream: TextIO | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "tty" if self.stream.isatty() else "log"
        self.mode = mode
        self.recorder = recorder
        self.interval = interval if mode == "log" else 0.25
        self._next = 0.0
        self._dirty = False

    def _emit(self, text: str) -> None:
        if self.mode == "tty":
            self.stream.write("\r\x1b[2K" + text)
            self._dirty = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def setup_tick(self, status: Callable[[], dict[str, int]]) -> Callable[[float], None]:
        def tick(now: float) -> None:
            if self.mode == "none" or now < self._next:
                return
            self._next = now + self.interval
            s = status()
            self._emit(
                f"setup: {s['ready']}/{s['devices']} devices ready, {s['connected']} connected, "
                f"{s['failed']} failed"
            )

        return tick

    def run_tick(self, target_rate: Callable[[float], float]) -> Callable[[float], None]:
        def tick(now: float) -> None:
            if self.mode == "none" or now < self._next:
                return
            self._next = now + self.interval
            s = self.recorder.snapshot(now)
            self._emit(
                f"t={s['t']:6.1f}s target {target_rate(now):7.1f}/s"
                f"  offered {s['offered_rate']:7.1f}/s"
                f"  acked {s['acked_rate']:7.1f}/s  total {s['acked']:.0f}/{s['offered']:.0f}"
                f"  errors {s['errors']:.0f}  p50 {_ms(s['p50'])}  p99 {_ms(s['p99'])}"
            )

        return tick

    def message(self, text: str) -> None:
        self.done()
        if self.mode != "none":
            self.stream.write(text + "\n")
            self.stream.flush()

    def done(self) -> None:
        if self._dirty:
            self.stream.write("\n")
            self.stream.flush()
            self._dirty = False
        self._next = 0.0
