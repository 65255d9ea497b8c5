# Copyright: m2mcloud contributors
# Apache-2.0
"""The bundle manifest: what a bundle holds, checksummed, and whether a cached copy still holds it.

Stdlib only, so the tests import this file directly and the modules ship it to the controller.

``manifest.json`` at the bundle root::

    {
      "schema": 1,
      "bundle": {...},                # kube_version, arch, mode (source/download)
      "versions": {...},              # the pins the bundle was made for
      "components": {
        "<name>": {
          "key": "<sha256 of the recipe>",   # what was asked for; a changed recipe means rebuild
          "recipe": {...},
          "files": {"<relative path>": {"sha256": "...", "size": N}},
          "images": {"<name>": {"ref": "...", "file": "<relative path>", "digest": "sha256:..."}},
          "info": {...}                      # toolchain, base packages... (not verified)
        }
      },
      "files": {...}, "images": {...}        # the union of the components' entries, for consumers
    }

An OCI archive's sha256 changes from one build to the next (tar header times), while the image's
manifest digest does not (``buildah commit --timestamp 0``): both are recorded. A cached file is
trusted only if its size and sha256 match the manifest, and an image file only if its archive still
names the recorded digest under the recorded reference.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
import tempfile
from typing import Any

SCHEMA = 1
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
_REF_ANNOTATION = "org.opencontainers.image.ref.name"


def recipe_key(recipe: dict[str, Any]) -> str:
    """A stable fingerprint of what a component is built from (canonical JSON, sha256).

    A local source directory (build.src) counts by its content, not its path: the same sources
    in another checkout of the repository are the same recipe."""
    keyed = json.loads(json.dumps(recipe))
    build = keyed.get("build")
    src = build.get("src") if isinstance(build, dict) else None
    if isinstance(build, dict) and isinstance(src, str) and os.path.isdir(src):
        build["src"] = _tree_digest(src)
    blob = json.dumps(keyed, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def _tree_digest(root: str) -> str:
    digest = hashlib.sha256()
    for directory, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(directory, name)
            digest.update(os.path.relpath(path, root).encode() + b"\0")
            digest.update(sha256_file(path).encode() + b"\n")
    return "sha256:" + digest.hexdigest()


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_entry(path: str) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "size": os.path.getsize(path)}


def oci_archive_refs(path: str) -> dict[str, str]:
    """Reference name -> manifest digest, read from an OCI archive's index.json."""
    with tarfile.open(path) as archive:
        member = archive.extractfile("index.json")
        if member is None:
            raise ValueError(f"{path}: index.json is not a file")
        index = json.load(member)
    refs: dict[str, str] = {}
    for desc in index.get("manifests", []):
        ref = (desc.get("annotations") or {}).get(_REF_ANNOTATION)
        if ref:
            refs[ref] = desc["digest"]
    return refs


def load(bundle_dir: str) -> dict[str, Any]:
    """The bundle's manifest, or an empty one when there is none (or it is unreadable)."""
    try:
        with open(os.path.join(bundle_dir, MANIFEST)) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return empty()
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        return empty()
    data.setdefault("components", {})
    return data


def empty() -> dict[str, Any]:
    return {"schema": SCHEMA, "bundle": {}, "versions": {}, "components": {}}


def render(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def write_if_changed(path: str, text: str, write: bool = True) -> bool:
    """Write atomically, only when the content differs; True when the file changed (or would)."""
    try:
        with open(path) as handle:
            if handle.read() == text:
                return False
    except OSError:
        pass
    if not write:
        return True
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def check_component(bundle_dir: str, entry: dict[str, Any] | None, key: str) -> list[str]:
    """Why a cached component cannot be used ([] = it can): missing, other recipe, bad checksum."""
    if not entry:
        return ["not built yet"]
    if entry.get("key") != key:
        return ["its recipe changed (a version or a build setting)"]
    problems: list[str] = []
    files = entry.get("files") or {}
    if not files:
        problems.append("the manifest lists no files for it")
    for rel, want in sorted(files.items()):
        path = os.path.join(bundle_dir, rel)
        if not os.path.isfile(path):
            problems.append(f"{rel} is missing")
        elif os.path.getsize(path) != want.get("size"):
            problems.append(f"{rel} has another size than the manifest says")
        elif sha256_file(path) != want.get("sha256"):
            problems.append(f"{rel} does not match its sha256 in the manifest")
    if problems:
        return problems
    for name, image in sorted((entry.get("images") or {}).items()):
        if image.get("file") not in files:
            problems.append(f"image {name}: its archive is not among the component's files")
            continue
        try:
            refs = oci_archive_refs(os.path.join(bundle_dir, image["file"]))
        except (OSError, ValueError, tarfile.TarError) as exc:
            problems.append(f"image {name}: {image['file']} is not a readable OCI archive ({exc})")
            continue
        if refs.get(image["ref"]) != image.get("digest"):
            problems.append(
                f"image {name}: {image['file']} does not name {image['ref']}"
                f" at {image.get('digest')}"
            )
    return problems


def verify(bundle_dir: str, wanted: dict[str, str]) -> dict[str, list[str]]:
    """For each wanted component (name -> recipe key), the problems with its cached copy."""
    manifest = load(bundle_dir)
    components = manifest.get("components", {})
    return {
        name: check_component(bundle_dir, components.get(name), key) for name, key in wanted.items()
    }


def record_component(
    bundle_dir: str,
    name: str,
    recipe: dict[str, Any],
    files: list[str],
    images: dict[str, dict[str, str]],
    info: dict[str, Any] | None = None,
) -> tuple[bool, dict[str, Any]]:
    """Checksum a component's files, read its images' digests, store it -> (changed, entry)."""
    entry: dict[str, Any] = {
        "key": recipe_key(recipe),
        "recipe": recipe,
        "files": {rel: file_entry(os.path.join(bundle_dir, rel)) for rel in sorted(set(files))},
        "images": {},
        "info": info or {},
    }
    for image_name, image in sorted(images.items()):
        refs = oci_archive_refs(os.path.join(bundle_dir, image["file"]))
        if image["ref"] not in refs:
            raise ValueError(
                f"{image['file']} does not hold {image['ref']} (it holds {sorted(refs)})"
            )
        entry["images"][image_name] = {
            "ref": image["ref"],
            "file": image["file"],
            "digest": refs[image["ref"]],
        }
        if image["file"] not in entry["files"]:
            entry["files"][image["file"]] = file_entry(os.path.join(bundle_dir, image["file"]))
    manifest = load(bundle_dir)
    changed = manifest["components"].get(name) != entry
    manifest["components"][name] = entry
    manifest = with_views(manifest)
    write_if_changed(os.path.join(bundle_dir, MANIFEST), render(manifest))
    return changed, entry


def with_views(manifest: dict[str, Any]) -> dict[str, Any]:
    """Add the flat views consumers read: every file and every image, over all components."""
    files: dict[str, Any] = {}
    images: dict[str, Any] = {}
    for name in sorted(manifest.get("components", {})):
        component = manifest["components"][name]
        files.update(component.get("files") or {})
        for image_name, image in (component.get("images") or {}).items():
            images[image_name] = dict(image, component=name)
    manifest["files"] = dict(sorted(files.items()))
    manifest["images"] = dict(sorted(images.items()))
    return manifest


def sha256sums(manifest: dict[str, Any]) -> str:
    """`sha256sum -c` input for the bundle's files (the manifest itself is not in it)."""
    return "".join(f"{v['sha256']}  {rel}\n" for rel, v in sorted(manifest["files"].items()))


def finalize(
    bundle_dir: str,
    wanted: list[str],
    bundle: dict[str, Any],
    versions: dict[str, Any],
    prune: bool,
    write: bool = True,
) -> dict[str, Any]:
    """Drop components no longer asked for (with prune, their files too); write views and sums."""
    manifest = load(bundle_dir)
    dropped = sorted(set(manifest["components"]) - set(wanted))
    missing = sorted(set(wanted) - set(manifest["components"]))
    if missing:
        raise ValueError(f"components never recorded: {', '.join(missing)}")
    kept_files = {rel for name in wanted for rel in manifest["components"][name].get("files", {})}
    removed: list[str] = []
    for name in dropped:
        for rel in manifest["components"].pop(name).get("files", {}):
            path = os.path.join(bundle_dir, rel)
            if prune and rel not in kept_files and os.path.isfile(path):
                if write:
                    os.unlink(path)
                removed.append(rel)
    manifest["bundle"] = bundle
    manifest["versions"] = versions
    manifest = with_views(manifest)
    changed = write_if_changed(os.path.join(bundle_dir, MANIFEST), render(manifest), write)
    changed |= write_if_changed(os.path.join(bundle_dir, SUMS), sha256sums(manifest), write)
    return {
        "changed": changed or bool(removed),
        "dropped": dropped,
        "removed": sorted(removed),
        "files": len(manifest["files"]),
        "images": manifest["images"],
        "size": sum(v["size"] for v in manifest["files"].values()),
    }


def local_replaces(gomod: str) -> list[str]:
    """Modules a go.mod replaces by a local directory (`=> ./staging/...`, `=> ../api`)."""
    found = []
    for line in gomod.splitlines():
        match = re.match(r"^\s*(?:replace\s+)?(\S+)(?:\s+\S+)?\s+=>\s+(\.\.?/\S*)\s*$", line)
        if match:
            found.append(match.group(1))
    return found
