"""The bundle's download mode, run for real against a local mirror of the release hosts.

This project's machines reach no release host and no registry, so download mode fetches from
stand-ins of the kind an air-gapped site runs anyway: a plain HTTP server laid out like dl.k8s.io
and GitHub's release downloads (http.server), and a real OCI registry (CNCF Distribution's
`registry`, built here from the Go module proxy) set as the mirror of registry.k8s.io, docker.io
and ghcr.io (airgap_bundle_download_registry_mirrors). Their content is the source-built bundle of
the default cache: the binaries with published-style `.sha256` files, the release tarballs packed
like upstream's, and each image pushed under the upstream reference download mode asks for (for
the three components where download mode takes upstream's image instead of ours - flannel's CNI
plugin, the NFS provisioner, busybox - our image stands in under upstream's name: the content is
ours, the path through get_url, unarchive, buildah and the manifest is the real one).

Needs a built bundle (skips and says how otherwise), Go (for the registry, ~3 min the first time,
then cached in ~/.cache/m2mcloud/tools) and buildah. ~4 min here.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ansible.bundle_bin import BIN, PINS, ROOT, built_bundle_or_skip, bundle_play, recap
from tests.oci_registry import serve_registry

pytestmark = pytest.mark.timeout(1800)

BUILDAH_TLS = "--tls-verify=false"  # the test registry speaks plain HTTP on 127.0.0.1


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real registry on 127.0.0.1 (filesystem storage in a temporary directory): host:port."""
    if shutil.which("buildah") is None:
        pytest.skip("buildah is not installed (scripts/install-deps.sh installs it)")
    built_bundle_or_skip()  # before a registry build that would be of no use
    with serve_registry(tmp_path_factory.mktemp("registry")) as address:
        yield address


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def release_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A plain HTTP server over a directory (filled by `mirror`): (base URL, directory)."""
    root = tmp_path_factory.mktemp("releases")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tarball(dest: Path, files: list[Path], prefix: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, "w:gz") as tar:
        for path in files:
            tar.add(path, arcname=prefix + path.name)


def _download_recipes(tmp_path: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """What download mode asks for (URLs, image references), as the role itself computes it."""
    out = tmp_path / "recipes.json"
    play = tmp_path / "recipes.yml"
    play.write_text(
        "- name: Print the download recipes\n  hosts: localhost\n  connection: local\n"
        "  gather_facts: false\n  tasks:\n"
        "    - name: Load the role's variables\n      ansible.builtin.include_role:\n"
        f"        name: {ROOT / 'roles/airgap_bundle'}\n        tasks_from: preflight.yml\n"
        "        public: true\n"
        "    - name: Write them\n      ansible.builtin.copy:\n"
        "        content: '{{ _airgap_bundle_download_components | to_json }}'\n"
        f"        dest: {out}\n        mode: '0600'\n"
    )
    (tmp_path / "recipes-extra.json").write_text(json.dumps(extra))
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(play),
         "-e", f"@{ROOT / 'inventory/lab/group_vars/all/versions.yml'}",
         "-e", f"@{tmp_path / 'recipes-extra.json'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_PYTHON_INTERPRETER=sys.executable),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    return dict(json.loads(out.read_text()))


def _config_digest(archive: Path, ref: str) -> str:
    """The image ID (config digest) of `ref` in an OCI archive."""
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))
        [desc] = [
            m for m in index["manifests"]
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref
        ]  # fmt: skip
        blob = tar.extractfile("blobs/" + desc["digest"].replace(":", "/"))
        return str(json.load(blob)["config"]["digest"])


@pytest.fixture(scope="module")
def mirror(
    registry: str, release_host: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The release host and the registry filled from the cached source bundle; returns the
    variables that point download mode at them, the recipes, and what each image must be."""
    cached = built_bundle_or_skip()
    source = json.loads((cached / "manifest.json").read_text())
    base_url, root = release_host
    registries = ["registry.k8s.io", "docker.io", "ghcr.io"]
    extra: dict[str, Any] = {
        "airgap_bundle_mode": "download",
        "airgap_bundle_download_k8s_url": f"{base_url}/k8s",
        "airgap_bundle_download_github_url": f"{base_url}/github",
        "airgap_bundle_download_registry_mirrors": {r: f"{registry}/{r}" for r in registries},
        "airgap_bundle_download_tls_verify": False,
    }
    recipes = _download_recipes(tmp_path_factory.mktemp("recipes"), extra)
    bundle = source["bundle"]
    kube_bin, cni_bin = cached / bundle["kube_bin"], cached / bundle["cni_bin"]

    # dl.k8s.io: <base>/v<kube>/bin/linux/amd64/<binary> and <binary>.sha256 holding the hash alone.
    for item in recipes["kubernetes"]["downloads"]:
        rel = item["url"].removeprefix(f"{base_url}/")
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(cached / item["dest"])
        (root / f"{rel}.sha256").write_text(_sha256(cached / item["dest"]))
    # GitHub releases: tarballs packed like upstream's, "<hash>  <file name>" in their .sha256.
    for name, prefix in (("crictl", ""), ("cni-plugins", "./")):
        [archive] = recipes[name]["archives"]
        rel = archive["url"].removeprefix(f"{base_url}/")
        files = [(kube_bin if name == "crictl" else cni_bin) / m for m in archive["members"]]
        _tarball(root / rel, files, prefix)
        (root / f"{rel}.sha256").write_text(f"{_sha256(root / rel)}  {Path(rel).name}\n")

    # The registry: each image under the reference download mode pulls (same component and name).
    store = tmp_path_factory.mktemp("buildah")
    buildah = ["buildah", "--root", str(store / "root"), "--runroot", str(store / "run"),
               "--storage-driver", "vfs"]  # fmt: skip
    expected: dict[str, tuple[str, str]] = {}  # download ref -> (archive file, config digest)
    for component, recipe in recipes.items():
        for image in recipe.get("images", []):
            ours = source["components"][component]["images"][image["name"]]
            archive = cached / ours["file"]
            for cmd in (
                [*buildah, "pull", "-q", f"oci-archive:{archive}:{ours['ref']}"],
                [*buildah, "push", "-q", BUILDAH_TLS, ours["ref"],
                 f"docker://{registry}/{image['ref']}"],
                [*buildah, "rmi", "-f", ours["ref"]],
            ):  # fmt: skip
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
                assert proc.returncode == 0, f"{cmd}: {proc.stderr[-2000:]}"
            expected[image["ref"]] = (image["file"], _config_digest(archive, ours["ref"]))
    return {"extra": extra, "recipes": recipes, "images": expected, "source": source}


@pytest.fixture(scope="module")
def downloaded(
    mirror: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, str]:
    """The first download-mode run into an empty directory: (bundle, work dir, extra vars file)."""
    home = tmp_path_factory.mktemp("download")
    extra = home / "extra.json"
    extra.write_text(json.dumps(mirror["extra"]))
    proc, seconds = bundle_play(home / "bundle", home / "work", "-e", f"@{extra}", timeout=1500)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    print(f"\ndownload mode, empty bundle directory: {seconds:.1f} s")  # a figure
    return home / "bundle", home / "work", str(extra)


def test_download_mode_fetches_every_component_from_the_mirror(
    downloaded: tuple[Path, Path, str], mirror: dict[str, Any]
) -> None:
    bundle = downloaded[0]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["bundle"]["mode"] == "download"
    assert set(manifest["components"]) == set(mirror["recipes"])
    # The binaries are the ones the release host published, checked against its sha256 files.
    source_files = mirror["source"]["files"]
    binaries = [f for f in manifest["files"] if not f.startswith(("images/", "debs/"))]
    assert {f"{mirror['source']['bundle']['kube_bin']}/{b}"
            for b in ("kubeadm", "kubelet", "kubectl", "crictl")} <= set(binaries)  # fmt: skip
    for rel in binaries:
        assert manifest["files"][rel]["sha256"] == source_files[rel]["sha256"], rel
        assert os.access(bundle / rel, os.X_OK), rel
    # Each image is archived under its upstream name and is the image the registry served.
    refs = {image["ref"]: image for image in manifest["images"].values()}
    assert set(refs) == set(mirror["images"])
    for ref, (file, config) in mirror["images"].items():
        assert refs[ref]["file"] == file
        assert _config_digest(bundle / file, ref) == config, ref
    kube = PINS["kube_version"]
    assert f"registry.k8s.io/kube-apiserver:v{kube}" in refs
    check = subprocess.run(
        ["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=bundle, capture_output=True, check=False
    )
    assert check.returncode == 0, check.stdout


def test_a_second_download_run_changes_nothing(downloaded: tuple[Path, Path, str]) -> None:
    bundle, work, extra = downloaded
    proc, seconds = bundle_play(bundle, work, "-e", f"@{extra}")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert recap(proc.stdout)["changed"] == 0, proc.stdout[-4000:]
    print(f"\ndownload mode, cached: {seconds:.1f} s")


def test_a_binary_that_does_not_match_its_published_sha256_is_refused(
    downloaded: tuple[Path, Path, str], release_host: tuple[str, Path], mirror: dict[str, Any]
) -> None:
    """A release host serving a kubectl other than the one its .sha256 names: the run fails on
    that file, and nothing else in the bundle is lost."""
    bundle, work, extra = downloaded
    base_url, root = release_host
    kubectl = next(
        d for d in mirror["recipes"]["kubernetes"]["downloads"] if d["url"].endswith("/kubectl")
    )
    served = root / kubectl["url"].removeprefix(f"{base_url}/")
    original = served.resolve()
    served.unlink()
    served.write_bytes(original.read_bytes() + b"\0")
    (bundle / kubectl["dest"]).unlink()  # the cache now lacks it: the component is fetched again
    before = json.loads((bundle / "manifest.json").read_text())
    try:
        proc, _ = bundle_play(bundle, work, "-e", f"@{extra}")
    finally:
        served.unlink()
        served.symlink_to(original)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-4000:]
    assert "kubectl" in out and "checksum" in out.lower(), out[-4000:]
    assert not (bundle / kubectl["dest"]).exists()  # the wrong file was not kept
    after = json.loads((bundle / "manifest.json").read_text())
    assert after["components"] == before["components"]
    for rel in before["files"]:
        if rel != kubectl["dest"]:
            assert (bundle / rel).is_file(), rel
