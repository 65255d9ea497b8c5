from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.support import M2MClient, Mosquitto, free_port, http_transport


class CSEProcess:
    """A real `m2mcloud cse serve` process (waitress) on a free loopback port."""

    def __init__(self, env: dict[str, str], args: list[str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        full_env = {
            **os.environ,
            "M2M_HTTP_HOST": "127.0.0.1",
            "M2M_HTTP_PORT": str(self.port),
            **env,
        }
        self.log_file = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "m2mcloud", "cse", "serve", *args],
            env=full_env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        self.client = M2MClient(http_transport(self.url))

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"CSE exited with {self.proc.returncode}: {self.log()}")
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"CSE not ready after {timeout}s: {self.log()}")

    def log(self) -> str:
        if not self.log_file.closed:
            self.log_file.flush()
        return self.log_path.read_text(errors="replace")

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.log_file.close()


@pytest.fixture
def cse_process(tmp_path: Path, db_url: str) -> Iterator[Callable[..., CSEProcess]]:
    started: list[CSEProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, ready: bool = True) -> CSEProcess:
        base = {
            "M2M_DATA_DIR": str(tmp_path),
            "M2M_DB_URL": db_url,
            "M2M_LOG_LEVEL": "INFO",
            "M2M_MQTT": "false",
        }
        p = CSEProcess({**base, **(env or {})}, list(args), tmp_path / f"cse{len(started)}.log")
        started.append(p)
        if ready:
            p.wait_ready()
        return p

    yield start
    for p in started:
        if p.proc.poll() is None:
            p.terminate(signal.SIGKILL)


@pytest.fixture
def mqtt_cse(
    cse_process: Callable[..., CSEProcess], mosquitto: Mosquitto
) -> Callable[..., CSEProcess]:
    """Start CSE processes with the MQTT binding on the test's Mosquitto broker."""

    def start(**env: str) -> CSEProcess:
        return cse_process(
            env={
                "M2M_MQTT": "true",
                "M2M_MQTT_HOST": "127.0.0.1",
                "M2M_MQTT_PORT": str(mosquitto.port),
                **env,
            }
        )

    return start
