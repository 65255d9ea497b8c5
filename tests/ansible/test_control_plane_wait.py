"""kube_control_plane waits for the API server's /readyz (after init, and on every later run before
it uses the API) for kube_control_plane_api_timeout seconds, then fails with a sentence naming the
node, the last answer and the variable. The role's own init.yml runs here (kubeadm init skipped: its
admin.conf exists) with the bundle's real kubectl against a local HTTP endpoint."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ansible.bundle_bin import KUBE_BIN, run_role_tasks

KUBECTL = KUBE_BIN / "kubectl"

pytestmark = pytest.mark.skipif(
    not KUBECTL.exists(), reason=f"no kubectl in the offline bundle at {KUBECTL}"
)


class Readyz(http.server.BaseHTTPRequestHandler):
    """/readyz answers 503 for the first `unready` requests, then `ok`."""

    unready = 0
    seen = 0

    def do_GET(self) -> None:
        type(self).seen += 1
        ready = self.path.startswith("/readyz") and type(self).seen > type(self).unready
        body = b"ok" if ready else b"[-]etcd failed: reason withheld\nreadyz check failed"
        self.send_response(200 if ready else 503)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    Readyz.seen = 0
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Readyz)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()


def wait(tmp_path: Path, port: int, timeout: int) -> tuple[int, str]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "users": [{"name": "u", "user": {}}],
        })
    )  # fmt: skip
    (tmp_path / "admin.conf").write_text("initialised\n")
    extra = {
        "kube_control_plane_api_timeout": timeout,
        "_kube_control_plane_admin_conf": str(tmp_path / "admin.conf"),
        "_kube_control_plane_config_file": str(tmp_path / "kubeadm-config.yaml"),
        "_kube_control_plane_kubectl": [str(KUBECTL), "--kubeconfig", str(kubeconfig)],
    }
    return run_role_tasks(tmp_path, "kube_control_plane", "init.yml", extra)


def test_an_api_server_that_becomes_ready_is_waited_for(
    tmp_path: Path, server: http.server.ThreadingHTTPServer
) -> None:
    Readyz.unready = 2
    rc, out = wait(tmp_path, server.server_address[1], timeout=30)
    assert rc == 0, out
    assert Readyz.seen == 3, out  # two 503s, then ok
    # ... all asked inside one module run (a module run is what costs an emulated node its CPU).
    assert "FAILED - RETRYING" not in out, out


def test_an_api_server_that_stays_unready_fails_after_the_timeout_with_its_answer(
    tmp_path: Path, server: http.server.ThreadingHTTPServer
) -> None:
    Readyz.unready = 1000
    rc, out = wait(tmp_path, server.server_address[1], timeout=10)
    assert rc == 2, out
    assert Readyz.seen in (2, 3), out  # every 5 s for 10 s, then no more
    assert "did not answer /readyz within 10 s, tried every 5 s" in out, out
    assert "(last answer: Error from server (ServiceUnavailable)" in out, out


def test_an_api_server_that_never_answers_fails_with_a_sentence(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    rc, out = wait(tmp_path, port, timeout=10)
    assert rc == 2, out
    assert "The API server on localhost did not answer /readyz within 10 s" in out, out
    assert f"The connection to the server 127.0.0.1:{port} was refused" in out, out
    assert "raise kube_control_plane_api_timeout" in out, out
