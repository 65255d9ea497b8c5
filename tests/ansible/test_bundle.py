"""The offline bundle: manifest and cache verification, then the real playbook on a built bundle.

The first half drives the role's manifest logic (stdlib only) on synthetic bundles: real files, real
OCI archive indexes. The second half runs `ansible-playbook playbooks/bundle.yml` on a copy of the
bundle in the default cache; building one from cold takes about 35 minutes on this project's
machines, so without a built bundle those tests skip and say how to make one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.ansible.bundle_bin import PINS, built_bundle_or_skip, bundle_play, recap

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "airgap_bundle"


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mf = _load(ROLE / "module_utils" / "airgap_bundle_manifest.py")


def _oci_archive(path: Path, ref: str, digest: str) -> None:
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": 500,
                "annotations": {"org.opencontainers.image.ref.name": ref},
            }
        ],
    }
    data = json.dumps(index).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("index.json")
        info.size = len(data)
        info.mtime = int(time.time())  # like buildah: archive bytes differ, digest does not
        tar.addfile(info, io.BytesIO(data))


DIGEST = "sha256:" + "ab" * 32
RECIPE = {"module": "k8s.io/pause", "version": "3.10.2", "build": {"kind": "pause"}}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tool").write_bytes(b"\x7fELF tool")
    _oci_archive(tmp_path / "images" / "pause.oci.tar", "registry.k8s.io/pause:3.10.2", DIGEST)
    images = {"pause": {"ref": "registry.k8s.io/pause:3.10.2", "file": "images/pause.oci.tar"}}
    changed, entry = mf.record_component(str(tmp_path), "pause", RECIPE, ["bin/tool"], images)
    assert changed
    assert entry["images"]["pause"]["digest"] == DIGEST
    return tmp_path


def _problems(bundle: Path, recipe: dict[str, object] = RECIPE) -> list[str]:
    return mf.verify(str(bundle), {"pause": mf.recipe_key(recipe)})["pause"]


def test_a_recorded_component_verifies(bundle: Path) -> None:
    assert _problems(bundle) == []
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["files"]["bin/tool"]["sha256"] == hashlib.sha256(b"\x7fELF tool").hexdigest()
    assert set(manifest["files"]) == {"bin/tool", "images/pause.oci.tar"}
    assert manifest["images"]["pause"]["component"] == "pause"


def test_recording_the_same_component_again_changes_nothing(bundle: Path) -> None:
    before = (bundle / "manifest.json").read_text()
    images = {"pause": {"ref": "registry.k8s.io/pause:3.10.2", "file": "images/pause.oci.tar"}}
    changed, _ = mf.record_component(str(bundle), "pause", RECIPE, ["bin/tool"], images)
    assert not changed
    assert (bundle / "manifest.json").read_text() == before


def test_a_file_with_other_content_of_the_same_size_is_caught(bundle: Path) -> None:
    (bundle / "bin" / "tool").write_bytes(b"\x7fELF TOOL")
    assert _problems(bundle) == ["bin/tool does not match its sha256 in the manifest"]


def test_a_missing_file_is_caught(bundle: Path) -> None:
    (bundle / "bin" / "tool").unlink()
    assert _problems(bundle) == ["bin/tool is missing"]


def test_a_changed_recipe_means_rebuild(bundle: Path) -> None:
    other = dict(RECIPE, version="3.10.1")
    assert _problems(bundle, other) == ["its recipe changed (a version or a build setting)"]


def test_an_unknown_component_and_a_broken_manifest_mean_build(bundle: Path) -> None:
    assert mf.verify(str(bundle), {"etcd": "x"})["etcd"] == ["not built yet"]
    (bundle / "manifest.json").write_text("{ not json")
    assert _problems(bundle) == ["not built yet"]


def test_an_image_archive_rebuilt_with_another_digest_is_caught(bundle: Path) -> None:
    # Same checksum bookkeeping would catch the new bytes first; re-record the file only.
    _oci_archive(
        bundle / "images" / "pause.oci.tar", "registry.k8s.io/pause:3.10.2", "sha256:" + "cd" * 32
    )
    manifest = json.loads((bundle / "manifest.json").read_text())
    entry = manifest["components"]["pause"]
    entry["files"]["images/pause.oci.tar"] = mf.file_entry(str(bundle / "images" / "pause.oci.tar"))
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    (problem,) = _problems(bundle)
    assert "does not name registry.k8s.io/pause:3.10.2 at " + DIGEST in problem


def test_archive_bytes_differ_but_the_digest_is_what_is_compared(tmp_path: Path) -> None:
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    _oci_archive(a, "r:1", DIGEST)
    time.sleep(1.1)
    _oci_archive(b, "r:1", DIGEST)
    assert mf.sha256_file(str(a)) != mf.sha256_file(str(b))
    assert mf.oci_archive_refs(str(a)) == mf.oci_archive_refs(str(b)) == {"r:1": DIGEST}


def test_recording_an_archive_without_the_reference_fails(tmp_path: Path) -> None:
    _oci_archive(tmp_path / "x.tar", "registry.k8s.io/pause:3.10.1", DIGEST)
    with pytest.raises(ValueError, match=re.escape("does not hold registry.k8s.io/pause:3.10.2")):
        mf.record_component(
            str(tmp_path),
            "pause",
            RECIPE,
            [],
            {"pause": {"ref": "registry.k8s.io/pause:3.10.2", "file": "x.tar"}},
        )


def test_finalize_writes_sums_that_sha256sum_accepts_and_is_idempotent(bundle: Path) -> None:
    result = mf.finalize(
        str(bundle), ["pause"], {"kube_version": "1.37.2"}, {"pause": "3.10.2"}, True
    )
    assert result["changed"] and result["files"] == 2
    assert (
        mf.finalize(str(bundle), ["pause"], {"kube_version": "1.37.2"}, {"pause": "3.10.2"}, True)[
            "changed"
        ]
        is False
    )
    if shutil.which("sha256sum"):
        check = subprocess.run(
            ["sha256sum", "-c", "SHA256SUMS"],
            cwd=bundle,
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr


def test_finalize_drops_and_prunes_components_no_longer_wanted(bundle: Path) -> None:
    (bundle / "extra").write_bytes(b"x")
    mf.record_component(str(bundle), "extra", {"v": 1}, ["extra"], {})
    result = mf.finalize(str(bundle), ["pause"], {}, {}, prune=True)
    assert result["dropped"] == ["extra"] and result["removed"] == ["extra"]
    assert not (bundle / "extra").exists()
    assert "extra" not in json.loads((bundle / "manifest.json").read_text())["files"]


def test_finalize_refuses_a_bundle_missing_a_component(bundle: Path) -> None:
    with pytest.raises(ValueError, match="never recorded: etcd"):
        mf.finalize(str(bundle), ["pause", "etcd"], {}, {}, prune=False)


def test_local_replaces_of_kubernetes_and_etcd_go_mod() -> None:
    gomod = """module k8s.io/kubernetes
replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/kubelet => ./staging/src/k8s.io/kubelet
\tgithub.com/x/y v1.0.0 => github.com/x/z v1.0.1
)
replace go.etcd.io/etcd/api/v3 => ../api
"""
    assert mf.local_replaces(gomod) == ["k8s.io/api", "k8s.io/kubelet", "go.etcd.io/etcd/api/v3"]


def test_versions_are_pinned_in_one_place_and_the_role_reads_them() -> None:
    pins = yaml.safe_load(
        (ROOT / "inventory" / "lab" / "group_vars" / "all" / "versions.yml").read_text()
    )
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    read = set(re.findall(r"\{\{ (\w+) \|", json.dumps(defaults["airgap_bundle_versions"])))
    assert read == set(pins), "the role's airgap_bundle_versions and versions.yml disagree"
    # No other file under roles/airgap_bundle/ hard-codes a pinned version.
    texts = [p.read_text() for p in ROLE.rglob("*.yml")]
    for name in ("kube_version", "kube_etcd_version", "kube_flannel_version"):
        assert not any(re.search(rf"\b{re.escape(str(pins[name]))}\b", t) for t in texts), name


# --- the real playbook on a built bundle --------------------------------------------------------
# (the default cache's bundle, and how the playbook runs on a copy: tests/ansible/bundle_bin.py)


@pytest.fixture
def bundle_copy(tmp_path: Path) -> Path:
    source = built_bundle_or_skip()
    copy = tmp_path / "bundle"
    subprocess.run(["cp", "-a", "--reflink=auto", str(source), str(copy)], check=True)
    (tmp_path / "work").mkdir()  # a work dir of its own, already there as after any first run
    return copy


def test_playbook_on_a_built_bundle_changes_nothing(bundle_copy: Path, tmp_path: Path) -> None:
    proc, seconds = bundle_play(bundle_copy, tmp_path / "work")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    counts = recap(proc.stdout)
    assert counts["changed"] == 0 and counts["failed"] == 0, proc.stdout[-4000:]
    print(f"cached bundle run: {seconds:.1f} s")  # a figure, not an assertion
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    refs = {image["ref"] for image in manifest["images"].values()}
    kube = PINS["kube_version"]
    assert f"registry.k8s.io/kube-apiserver:v{kube}" in refs
    assert f"registry.k8s.io/pause:{PINS['kube_pause_version']}" in refs
    check = subprocess.run(
        ["sha256sum", "--quiet", "-c", "SHA256SUMS"],
        cwd=bundle_copy,
        capture_output=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout


def test_playbook_rebuilds_exactly_the_tampered_component(
    bundle_copy: Path, tmp_path: Path
) -> None:
    crictl = bundle_copy / "kubernetes" / f"v{PINS['kube_version']}" / "bin" / "crictl"
    data = bytearray(crictl.read_bytes())
    data[-1] ^= 0xFF
    crictl.write_bytes(bytes(data))
    before = json.loads((bundle_copy / "manifest.json").read_text())
    proc, seconds = bundle_play(bundle_copy, tmp_path / "work")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert re.search(
        r"crictl:\n\s+- kubernetes/v[\d.]+/bin/crictl does not match its sha256", proc.stdout
    )
    built = re.findall(r"changed: \[localhost\] => \(item=(\S+) ", proc.stdout)
    assert built == ["crictl"], built
    after = json.loads((bundle_copy / "manifest.json").read_text())
    # Reproducible build: the rebuilt binary is byte-identical to the one first recorded.
    assert after["files"] == before["files"]
    print(f"crictl rebuilt in a {seconds:.1f} s run")


@pytest.mark.e2e
@pytest.mark.timeout(3600)
def test_a_fresh_build_reproduces_the_cached_bundle(tmp_path: Path) -> None:
    """A whole bundle built again into an empty directory (Go caches stay warm: ~5 min here; cold
    Go caches: ~35 min) has the same binaries and the same image digests as the cached one."""
    cached = json.loads((built_bundle_or_skip() / "manifest.json").read_text())
    fresh, work = tmp_path / "bundle", tmp_path / "work"
    proc, seconds = bundle_play(fresh, work)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    print(f"fresh bundle (warm Go caches, new Debian base): {seconds:.0f} s")
    again, seconds = bundle_play(fresh, work)
    assert recap(again.stdout)["changed"] == 0, again.stdout[-4000:]
    print(f"second run: {seconds:.1f} s")
    built = json.loads((fresh / "manifest.json").read_text())
    digests = {name: image["digest"] for name, image in built["images"].items()}
    binaries = {k: v for k, v in built["files"].items() if not k.startswith(("images/", "debs/"))}
    # Images on the Debian base follow the mirror's packages of the day; the others must not move.
    for name, image in cached["images"].items():
        if "debian_base" not in json.dumps(cached["components"][image["component"]]["recipe"]):
            assert digests[name] == image["digest"], name
    for rel, entry in binaries.items():
        assert cached["files"][rel] == entry, rel
