"""Test helpers: real services (a private PostgreSQL cluster, a notification receiver) and a thin
oneM2M client over Falcon's TestClient or a real HTTP server."""

from __future__ import annotations

import glob
import http.server
import itertools
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_rqi = itertools.count(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Reply:
    rsc: int
    status: int
    body: Any
    headers: dict[str, str]

    def __getitem__(self, key: str) -> Any:
        return self.body[key]


class M2MClient:
    """oneM2M over HTTP: `client.create("cse-in", 2, {"m2m:ae": {...}}, origin="C")`."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport  # falcon TestClient or a requests.Session with base URL

    def request(
        self,
        method: str,
        path: str,
        *,
        origin: str | None = "CAdmin",
        ty: int | None = None,
        body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        h = {"X-M2M-RI": f"rqi-{next(_rqi)}", "X-M2M-RVI": "3", "Accept": "application/json"}
        if origin is not None:
            h["X-M2M-Origin"] = origin
        if body is not None or raw is not None or ty is not None:
            h["Content-Type"] = "application/json" + (f";ty={ty}" if ty is not None else "")
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        status, resp_headers, content = self.transport(
            method, "/" + path.lstrip("/"), h, data, params
        )
        lowered = {k.lower(): v for k, v in resp_headers.items()}
        parsed = json.loads(content) if content else None
        return Reply(int(lowered.get("x-m2m-rsc", 0)), status, parsed, lowered)

    def create(self, path: str, ty: int, body: Any, **kw: Any) -> Reply:
        return self.request("POST", path, ty=ty, body=body, **kw)

    def retrieve(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def update(self, path: str, body: Any, **kw: Any) -> Reply:
        return self.request("PUT", path, body=body, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.request("DELETE", path, **kw)

    def register(self, rn: str, origin: str = "C", **attrs: Any) -> Reply:
        body = {"rn": rn, "api": "Nm2mcloud.test", "rr": True, "srv": ["3"], **attrs}
        reply = self.create("cse-in", 2, {"m2m:ae": body}, origin=origin)
        assert reply.rsc == 2001, reply.body
        return reply


def falcon_transport(app: Any) -> Any:
    from falcon import testing

    client = testing.TestClient(app)

    def send(
        method: str,
        path: str,
        headers: dict[str, str],
        data: bytes | None,
        params: dict[str, Any] | None,
    ) -> tuple[int, dict[str, str], bytes]:
        r = client.simulate_request(
            method,
            path,
            headers=headers,
            body=data,
            params=params,
            params_csv=False,
            remote_addr="127.0.0.1",
        )
        return r.status_code, dict(r.headers), r.content

    return send


def http_transport(base_url: str) -> Any:
    import requests

    session = requests.Session()

    def send(
        method: str,
        path: str,
        headers: dict[str, str],
        data: bytes | None,
        params: dict[str, Any] | None,
    ) -> tuple[int, dict[str, str], bytes]:
        r = session.request(
            method, base_url + path, headers=headers, data=data, params=params, timeout=30
        )
        return r.status_code, dict(r.headers), r.content

    return send


# -- a real notification receiver --------------------------------------------------------------


class NotificationReceiver:
    """An HTTP server that records oneM2M notifications and answers with a chosen RSC."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.answer_rsc = 2000
        self.fail_next = 0  # answer that many POSTs with HTTP 503 (not recorded)
        self.cond = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if "cbor" in self.headers.get("Content-Type", ""):
                    import cbor2

                    body = cbor2.loads(raw)
                else:
                    body = json.loads(raw or b"null")
                with outer.cond:
                    if outer.fail_next > 0:
                        outer.fail_next -= 1
                        self.send_response(503)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    outer.received.append(body)
                    outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                    outer.cond.notify_all()
                self.send_response(200 if outer.answer_rsc < 4000 else 400)
                self.send_header("X-M2M-RSC", str(outer.answer_rsc))
                self.send_header("X-M2M-RI", self.headers.get("X-M2M-RI", ""))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return list(self.received)

    def events(self) -> list[dict[str, Any]]:
        """Notifications other than verification requests."""
        return [n for n in self.received if "vrq" not in n.get("m2m:sgn", {})]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- a private PostgreSQL cluster ---------------------------------------------------------------


class PostgresCluster:
    """A throw-away PostgreSQL cluster on a free loopback port (initdb + pg_ctl, run as the
    `postgres` user when we are root, since PostgreSQL refuses to run as root)."""

    def __init__(self, base: Path) -> None:
        bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bindirs:
            raise FileNotFoundError(
                "PostgreSQL server binaries not found under /usr/lib/postgresql"
            )
        self.bindir = Path(bindirs[-1])
        if os.geteuid() == 0:
            # The server runs as `postgres`: its directory must be reachable for that user,
            # which a root-only temporary directory (pytest, tempfile) is not.
            import tempfile

            base = Path(tempfile.mkdtemp(prefix=f"m2m-{base.name}-", dir="/tmp"))
            base.chmod(0o755)
        self.base = base
        self.data = base / "data"
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self._counter = itertools.count(1)

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self.as_user, *cmd], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(self.base, "postgres", "postgres")
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        opts = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            opts,
            "-w",
            "-l",
            str(self.base / "log"),
            "start",
        )

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self) -> str:
        import psycopg

        name = f"m2m_test_{os.getpid()}_{next(self._counter)}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- a real Mosquitto broker ----------------------------------------------------------------------


class Mosquitto:
    """A private Mosquitto broker (Debian package) on a free loopback port, optionally with a
    password file (`users`: name -> password), as the tests and benchmarks need it."""

    def __init__(self, base: Path, users: dict[str, str] | None = None, tls: bool = False) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise FileNotFoundError("mosquitto not installed (apt-get install mosquitto)")
        self.binary = binary
        if os.geteuid() == 0:
            # mosquitto drops to its own user: its files must sit in a directory it can reach
            # (pytest's tmp_path is root-only), so use a world-traversable one of our own.
            import tempfile

            base = Path(tempfile.mkdtemp(prefix=f"m2m-{base.name}-", dir="/tmp"))
            base.chmod(0o755)
        self.base = base
        self.port = free_port()
        self.users = users or {}
        self.tls = tls
        self.ca_file = base / "ca.crt"
        self.proc: subprocess.Popen[bytes] | None = None

    def _make_certificates(self) -> list[str]:
        """A throw-away CA and a server certificate for 127.0.0.1 (openssl)."""
        b = self.base

        def ssl(*args: str) -> None:
            subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

        ssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            str(b / "ca.key"),
            "-out",
            str(self.ca_file),
        )
        ssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(b / "server.key"),
            "-out",
            str(b / "server.csr"),
        )
        (b / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        ssl(
            "x509",
            "-req",
            "-in",
            str(b / "server.csr"),
            "-CA",
            str(self.ca_file),
            "-CAkey",
            str(b / "ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            str(b / "san.ext"),
            "-out",
            str(b / "server.crt"),
        )
        return [
            f"cafile {self.ca_file}",
            f"certfile {b / 'server.crt'}",
            f"keyfile {b / 'server.key'}",
        ]

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            "max_inflight_messages 1000",
            "max_queued_messages 100000",
            "set_tcp_nodelay true",
            f"log_dest file {self.base / 'mosquitto.log'}",
        ]
        if self.tls and not self.ca_file.exists():
            lines += self._make_certificates()
        elif self.tls:
            lines += [
                f"cafile {self.ca_file}",
                f"certfile {self.base / 'server.crt'}",
                f"keyfile {self.base / 'server.key'}",
            ]
        if self.users:
            pwfile = self.base / "passwd"
            pwfile.write_text("".join(f"{u}:{p}\n" for u, p in self.users.items()))
            subprocess.run(["mosquitto_passwd", "-U", str(pwfile)], check=True, timeout=30)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines.append("allow_anonymous true")
        conf = self.base / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.base, "mosquitto", "mosquitto")
            for f in self.base.iterdir():
                shutil.chown(f, "mosquitto", "mosquitto")
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self.log()}") from None
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def log(self) -> str:
        path = self.base / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class MQTTPeer:
    """A oneM2M entity on MQTT (TS-0010) for tests: sends request primitives to the CSE and
    collects its responses; can also answer requests the CSE sends to it (notifications)."""

    def __init__(
        self,
        port: int,
        originator: str,
        cse_id: str = "id-in",
        answer_rsc: int = 2000,
        *,
        ca_file: Path | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.originator, self.cse_id, self.answer_rsc = originator, cse_id, answer_rsc
        self.responses: dict[str, dict[str, Any]] = {}
        self.duplicates: list[str] = []
        self.incoming: list[dict[str, Any]] = []  # requests the CSE sent to this entity
        self.all_responses: list[tuple[str, dict[str, Any]]] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"peer-{originator}-{next(_rqi)}",
            protocol=mqtt.MQTTv311,
        )
        self.client.on_message = self._on_message
        self.client.on_socket_open = lambda _c, _u, sock: sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file))
        if auth is not None:
            self.client.username_pw_set(*auth)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        subs = [
            (f"/oneM2M/resp/{originator}/{cse_id}/+", 1),
            (f"/oneM2M/reg_resp/{originator}/{cse_id}/json", 1),
            (f"/oneM2M/req/{cse_id}/{originator}/json", 1),
        ]
        self.client.subscribe(subs)
        time.sleep(0.3)  # let the SUBACK arrive before anything is published

    def _on_message(self, client: Any, _u: Any, msg: Any) -> None:
        body = json.loads(msg.payload)
        with self.cond:
            if "/req/" in msg.topic:
                self.incoming.append(body)
                answer = {"rsc": self.answer_rsc, "rqi": body.get("rqi"), "fr": self.originator}
                client.publish(
                    f"/oneM2M/resp/{self.cse_id}/{self.originator}/json", json.dumps(answer), qos=1
                )
            else:
                rqi = body.get("rqi", "")
                self.all_responses.append((msg.topic, body))
                if rqi in self.responses:
                    self.duplicates.append(rqi)
                self.responses[rqi] = body
            self.cond.notify_all()

    def send(self, primitive: dict[str, Any], *, reg: bool = False) -> str:
        primitive = {"fr": self.originator, "rvi": "3", "rqi": f"mq-{next(_rqi)}", **primitive}
        kind = "reg_req" if reg else "req"
        self.client.publish(
            f"/oneM2M/{kind}/{self.originator}/{self.cse_id}/json", json.dumps(primitive), qos=1
        )
        return str(primitive["rqi"])

    def publish_raw(
        self, payload: bytes, *, kind: str = "req", serialization: str = "json"
    ) -> None:
        self.client.publish(
            f"/oneM2M/{kind}/{self.originator}/{self.cse_id}/{serialization}", payload, qos=1
        )

    def wait(self, rqi: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while rqi not in self.responses:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no response to {rqi} in {timeout} s")
                self.cond.wait(left)
            return self.responses[rqi]

    def request(
        self, primitive: dict[str, Any], *, reg: bool = False, timeout: float = 10
    ) -> dict[str, Any]:
        return self.wait(self.send(primitive, reg=reg), timeout)

    def wait_incoming(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.incoming) < count and time.monotonic() < deadline:
                self.cond.wait(max(0.0, deadline - time.monotonic()))
            return list(self.incoming)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
