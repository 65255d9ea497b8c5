"""A real OCI registry for tests: CNCF Distribution's `registry`, built here from the Go module
proxy (no registry is reachable from this project's machines) and cached by version outside the
repository (~3 min the first time, then instant)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

GO = shutil.which("go")
REGISTRY_MODULE = "github.com/distribution/distribution/v3/cmd/registry"
REGISTRY_VERSION = "v3.1.2"  # CNCF Distribution, the reference registry
TOOLS = Path.home() / ".cache/m2mcloud/tools"
GO_CACHE = Path.home() / ".cache/m2mcloud-go"  # airgap_bundle_go_cache_dir: warm after the bundle


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def registry_binary() -> Path:
    """The cached registry binary, built with `go install` when missing (skips without Go)."""
    binary = TOOLS / f"registry-{REGISTRY_VERSION}" / "registry"
    if binary.is_file():
        return binary
    if GO is None:
        pytest.skip("no Go toolchain on PATH: the test registry is built from the Go module proxy")
    gobin = binary.parent.with_suffix(".partial")
    env = dict(
        os.environ, GOTOOLCHAIN="local", GOFLAGS="-buildvcs=false", CGO_ENABLED="0",
        GOBIN=str(gobin), GOMODCACHE=str(GO_CACHE / "gomodcache"),
        GOCACHE=str(GO_CACHE / "gocache"), GOPATH=str(GO_CACHE / "gopath"),
    )  # fmt: skip
    env.setdefault("GOPROXY", "https://proxy.golang.org")
    proc = subprocess.run(
        ["nice", "-n", "10", GO, "install", f"{REGISTRY_MODULE}@{REGISTRY_VERSION}"],
        env=env, capture_output=True, text=True, timeout=1500, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    gobin.rename(binary.parent)
    return binary


@contextlib.contextmanager
def serve_registry(home: Path, host: str = "127.0.0.1", log_level: str = "warn") -> Iterator[str]:
    """A registry speaking plain HTTP on `host` (filesystem storage under `home`): host:port.
    Its log is home/registry.log (at "info", a line per request with the client's address)."""
    binary = registry_binary()
    address = f"{host}:{free_port(host)}"
    (home / "config.yml").write_text(
        json.dumps({  # JSON is YAML
            "version": 0.1, "log": {"level": log_level},
            "storage": {"filesystem": {"rootdirectory": str(home / "data")}},
            "http": {"addr": address},
        })
    )  # fmt: skip
    log = (home / "registry.log").open("w")
    proc = subprocess.Popen(
        [str(binary), "serve", str(home / "config.yml")],
        stdout=log, stderr=subprocess.STDOUT,
        env=dict(os.environ, OTEL_TRACES_EXPORTER="none"),
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(
                f"the registry did not answer on {address}: {(home / 'registry.log').read_text()}"
            )
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def manifest_digest(address: str, repository: str, tag: str) -> str | None:
    """The manifest digest the registry's `repository:tag` points to, or None if it has none."""
    request = urllib.request.Request(
        f"http://{address}/v2/{repository}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return str(answer.headers["Docker-Content-Digest"])
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise
