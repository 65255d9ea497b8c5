"""app_images with a registry (app_images_registry): the role's real tasks copy the image archives
into a real OCI registry (CNCF Distribution, built from the Go module proxy), keep their manifest
digests, copy nothing on a second run, repair a tag that points elsewhere, and refuse a registry
that does not answer with a sentence that names the variable.

Runs the whole role on localhost: the build step uses the cached archives (~/.cache/m2mcloud/
app-images; built here when missing or stale, ~6 min cold) and the import step does not run (it
is the path without a registry). Needs root, buildah and skopeo (scripts/install-deps.sh)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ansible.bundle_bin import BIN, ROOT, recap
from tests.oci_registry import free_port, manifest_digest, serve_registry

pytestmark = pytest.mark.timeout(1500)

IMAGES = Path.home() / ".cache/m2mcloud/app-images"
PREFIX = "site/platform"  # a path under the registry host, as sites often use

PLAY = """\
- name: The platform images into a registry
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: {role}
  post_tasks:
    - name: Show the references the app roles get
      ansible.builtin.debug:
        msg: "REFS={{{{ hostvars['localhost'].app_images_refs | to_json }}}}"
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for tool in ("buildah", "skopeo", "debootstrap"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/install-deps.sh installs it)")
    if os.geteuid() != 0:
        pytest.skip("the image build needs root (debootstrap, buildah)")
    with serve_registry(tmp_path_factory.mktemp("registry")) as address:
        yield address


def _run(tmp_path: Path, registry: str, **extra: Any) -> tuple[int, str]:
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(role=ROOT / "roles/app_images"))
    variables = {
        "app_images_registry": f"{registry}/{PREFIX}",
        "app_images_registry_tls_verify": False,
        **extra,
    }
    (tmp_path / "extra.json").write_text(json.dumps(variables))
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(play),
         "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"@{tmp_path / 'extra.json'}"],
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
                 ANSIBLE_CALLBACK_RESULT_FORMAT="json"),
        capture_output=True, text=True, timeout=1400, check=False, cwd=ROOT,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


def _copied(out: str) -> set[str]:
    """The images the copy task reported as changed (its items are labelled `<name> -> <ref>`)."""
    return set(re.findall(r"^changed: \[localhost\] => \(item=(\w+) -> ", out, re.MULTILINE))


def _archives() -> dict[str, dict[str, str]]:
    """name -> {ref, file, digest} of the cached archives, from their manifest.json."""
    manifest = json.loads((IMAGES / "manifest.json").read_text())
    return {
        name: image
        for component in manifest["components"].values()
        for name, image in component["images"].items()
    }


def _repository_and_tag(ref: str) -> tuple[str, str]:
    """localhost/m2mcloud/cse:0.1.0 -> (<PREFIX>/m2mcloud/cse, 0.1.0)."""
    path, tag = ref.removeprefix("localhost/").rsplit(":", 1)
    return f"{PREFIX}/{path}", tag


@pytest.fixture(scope="module")
def pushed(registry: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    rc, out = _run(tmp_path_factory.mktemp("first"), registry)
    assert rc == 0, out[-4000:]
    assert _copied(out) == {"cse", "mosquitto", "postgresql"}, out[-4000:]
    return registry, out


def test_every_image_lands_in_the_registry_at_its_archives_digest(
    pushed: tuple[str, str],
) -> None:
    registry, out = pushed
    archives = _archives()
    assert set(archives) == {"cse", "mosquitto", "postgresql"}
    for name, image in archives.items():
        repository, tag = _repository_and_tag(image["ref"])
        assert manifest_digest(registry, repository, tag) == image["digest"], name
    # The app roles deploy the registry's references, not localhost/ ones.
    shown = re.search(r'"msg": "REFS=(.*)"$', out, re.MULTILINE)
    assert shown, out[-4000:]
    refs = json.loads(json.loads(f'"{shown.group(1)}"'))
    assert refs == {
        name: f"{registry}/{PREFIX}/{image['ref'].removeprefix('localhost/')}"
        for name, image in archives.items()
    }


def test_a_second_run_copies_nothing(pushed: tuple[str, str], tmp_path: Path) -> None:
    registry, _ = pushed
    rc, out = _run(tmp_path, registry)
    assert rc == 0, out[-4000:]
    assert recap(out)["changed"] == 0, out[-4000:]
    assert _copied(out) == set()


def test_a_tag_that_points_elsewhere_is_copied_again_and_only_it(
    pushed: tuple[str, str], tmp_path: Path
) -> None:
    registry, _ = pushed
    archives = _archives()
    cse_repository, cse_tag = _repository_and_tag(archives["cse"]["ref"])
    mosquitto = archives["mosquitto"]
    # Someone pushed the broker image under the CSE's tag.
    subprocess.run(
        ["skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
         f"oci-archive:{IMAGES / mosquitto['file']}:{mosquitto['ref']}",
         f"docker://{registry}/{cse_repository}:{cse_tag}"],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert manifest_digest(registry, cse_repository, cse_tag) == mosquitto["digest"]
    rc, out = _run(tmp_path, registry)
    assert rc == 0, out[-4000:]
    assert recap(out)["changed"] == 1, out[-4000:]
    assert _copied(out) == {"cse"}, out[-4000:]
    assert manifest_digest(registry, cse_repository, cse_tag) == archives["cse"]["digest"]
    for name in ("mosquitto", "postgresql"):
        repository, tag = _repository_and_tag(archives[name]["ref"])
        assert manifest_digest(registry, repository, tag) == archives[name]["digest"], name


def test_a_registry_that_does_not_answer_is_named_with_the_fix(
    pushed: tuple[str, str], tmp_path: Path
) -> None:
    nobody = f"127.0.0.1:{free_port()}"  # nothing listens there
    rc, out = _run(tmp_path, nobody)
    assert rc != 0
    flat = " ".join(out.split())
    assert f"The registry app_images_registry={nobody}/{PREFIX} did not answer for cse" in flat
    assert "connection refused" in flat
    assert "app_images_registry_tls_verify (false for a plain-HTTP registry)" in flat


def test_a_tls_registry_setting_against_a_plain_http_one_is_refused(
    pushed: tuple[str, str], tmp_path: Path
) -> None:
    registry, _ = pushed
    rc, out = _run(tmp_path, registry, app_images_registry_tls_verify=True)
    assert rc != 0
    flat = " ".join(out.split())
    assert f"The registry app_images_registry={registry}/{PREFIX} did not answer" in flat
    assert "http: server gave HTTP response to HTTPS client" in flat
