"""What the MQTT and HTTP fleets share: the stop flag, the reachability error, and the fleet
interface the runner drives."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol


class UnreachableError(RuntimeError):
    """The CSE or the broker cannot be used at all; the message is one sentence for the operator."""


class StopFlag:
    """Set by Ctrl-C / SIGTERM: `requested` stops new readings, `forced` skips the drain."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.forced = threading.Event()
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        if self.requested.is_set():
            self.forced.set()
            return
        self.reason = reason
        self.requested.set()

    def __bool__(self) -> bool:
        return self.requested.is_set()


Tick = Callable[[float], None]


class Fleet(Protocol):
    def status(self) -> dict[str, int]:
        """Device counts: devices, connected, ready, failed."""

    def open(self) -> None:
        """Check that the platform is reachable; raise `UnreachableError` with a sentence if not."""

    def setup(self, stagger: float, stop: StopFlag, tick: Tick) -> int:
        """Connect and register every device, spread over `stagger` seconds; devices ready."""

    def drive(
        self, due: Callable[[float], int], done: Callable[[float], bool], stop: StopFlag, tick: Tick
    ) -> None:
        """Send `due(now)` readings whenever asked until `done(now)` or a stop."""

    def drain(self, timeout: float, stop: StopFlag) -> int:
        """Wait up to `timeout` s for outstanding answers; the number still unanswered."""

    def cleanup(self, stop: StopFlag) -> None:
        """Delete the devices' AEs."""

    def close(self) -> None:
        """Disconnect everything."""
