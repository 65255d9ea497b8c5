"""The bundle's own Go source (roles/airgap_bundle/files/src): its unit tests, with the Go
toolchain and module cache the bundle build uses (GOTOOLCHAIN=local, the Go module proxy)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.ansible.bundle_bin import ROOT

GO = shutil.which("go")  # airgap_bundle_go
CACHE = Path.home() / ".cache/m2mcloud-go"  # airgap_bundle_go_cache_dir


@pytest.mark.skipif(GO is None, reason="no Go toolchain on PATH (the source bundle needs one too)")
def test_the_nfs_provisioners_go_tests_pass() -> None:
    env = dict(
        os.environ,
        GOTOOLCHAIN="local",
        GOFLAGS="-buildvcs=false",
        GOMODCACHE=str(CACHE / "gomodcache"),
        GOCACHE=str(CACHE / "gocache"),
        GOPATH=str(CACHE / "gopath"),
    )
    env.setdefault("GOPROXY", "https://proxy.golang.org")
    proc = subprocess.run(
        [str(GO), "test", "-count=1", "-v", "./..."],
        cwd=ROOT / "roles/airgap_bundle/files/src/nfs-subdir-provisioner",
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    for name in ("TestLeaderElectionDefaultsAndSlowControlPlane",
                 "TestLeaderElectionRefusesWhatTheElectorWouldPanicOn"):  # fmt: skip
        assert f"--- PASS: {name}" in out, out[-4000:]
