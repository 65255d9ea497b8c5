"""Process lifecycle shared by the bindings: readiness, draining and in-flight accounting."""

from __future__ import annotations

import threading
import time


class Lifecycle:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._in_flight = 0
        self.draining = False

    def begin(self) -> None:
        with self._cond:
            self._in_flight += 1

    def end(self) -> None:
        with self._cond:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._cond.notify_all()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def drain(self) -> None:
        """Stop taking new work (readiness turns false)."""
        self.draining = True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight; False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._in_flight > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True


class ExpirySweeper:
    """Deletes expired resources periodically; with several replicas only the holder of the
    database lease sweeps (the lease outlives one interval, so a dead holder is replaced)."""

    def __init__(self, cse: object, interval: float, holder: str) -> None:
        from m2mcloud.cse.core import CSE

        assert isinstance(cse, CSE)
        self.cse = cse
        self.interval = interval
        self.holder = holder
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.swept = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="expiry-sweep", daemon=True)
        self._thread.start()

    def set_interval(self, seconds: float) -> float:
        old, self.interval = self.interval, seconds
        self._wake.set()
        return old

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)

    def run_once(self) -> int:
        now = self.cse.clock()
        if not self.cse.store.try_lease("expiry-sweep", self.holder, self.interval * 3, now):
            return 0
        n = self.cse.sweep_expired()
        self.swept += n
        return n

    def _run(self) -> None:
        import logging

        log = logging.getLogger(__name__)
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.run_once()
            except Exception:
                log.exception("expiry sweep failed; retrying next interval")
