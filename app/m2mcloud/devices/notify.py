"""Commands to devices: each device may own a command container `cmd` with a subscription whose
notification URI is the device's own AE-ID, so the CSE delivers through the AE's pointOfAccess.
MQTT devices receive those notifications on their own connection; HTTP devices share one small
notification server of the simulator, one path per device."""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
import time
from typing import Any

from m2mcloud.devices.stats import Recorder

log = logging.getLogger("m2mcloud.devices.notify")


def command_latency(sgn: dict[str, Any]) -> float | None:
    """Seconds from a command's `ts` (epoch seconds inside the command's content, when the
    sender put one there) to now; None when the command carries no such time."""
    try:
        rep = sgn["nev"]["rep"]
        cin = rep.get("m2m:cin") or {}
        con = json.loads(cin["con"])
        sent = float(con["ts"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return max(0.0, time.time() - sent)


def own_address(towards: str = "192.0.2.1") -> str:
    """The local address used to reach `towards` (no packet is sent); loopback if none."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((towards, 9))
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"


class NotificationServer:
    """Answers every oneM2M notification with 2000 and counts the commands (not verifications)."""

    def __init__(self, recorder: Recorder, host: str, port: int, advertise: str) -> None:
        outer = self
        self.recorder = recorder

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0) or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                    sgn = body.get("m2m:sgn", {}) if isinstance(body, dict) else {}
                except ValueError:
                    sgn = {}
                    outer.recorder.phase("commands", error="bad-notification")
                if sgn and not sgn.get("vrq"):
                    outer.recorder.phase("commands", latency=command_latency(sgn))
                self.send_response(200)
                self.send_header("X-M2M-RSC", "2000")
                self.send_header("X-M2M-RI", self.headers.get("X-M2M-RI", ""))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug(fmt, *args)

        self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.base_url = f"http://{advertise}:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="devices-notify", daemon=True
        )
        self.thread.start()

    def url_for(self, device_name: str) -> str:
        return f"{self.base_url}/{device_name}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
