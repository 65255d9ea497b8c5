#!/usr/bin/python
# ruff: noqa: E402, E501 - Ansible module layout: DOCUMENTATION before the imports, YAML docs lines
# Copyright: m2mcloud contributors
# Apache-2.0
"""Build the platform's container images offline (buildah), cached by content."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: app_images_build
short_description: Build the platform images from Containerfiles on a local Debian base, unless cached
description:
  - The base image is a debootstrap rootfs (Debian + the listed packages, stripped), cached as a tar
    keyed by its definition and committed into a private buildah store; nothing is ever pulled.
  - Each image is built with buildah bud from a clean copy of its context (the listed paths, without
    __pycache__, *.pyc and *.egg-info) and saved as an OCI archive. Its cache key is the sha256 of
    its recipe, which holds the Containerfile's and the context's content digests, the build args
    and the base's key - an edit to the sources or the recipe rebuilds it, nothing else does.
  - The archives and manifest.json (the offline bundle's format, roles/airgap_bundle) live in dir;
    a cached archive is used only if its sha256 and its image digest still match the manifest.
options:
  dir: {description: Where the OCI archives and manifest.json go (the cache)., type: path, required: true}
  work_dir: {description: Scratch space (base tar, build contexts, buildah store, logs)., type: path, required: true}
  base: {description: 'The base image - ref, suite, mirror, packages, strip.', type: dict, required: true}
  images: {description: 'name -> {ref, file, containerfile, context_root, context, build_args}.', type: dict, required: true}
  nice: {description: Niceness of every build command., type: int, default: 10}
  ca_bundle:
    description:
      - A CA bundle on the controller mounted read-only into the build steps at /run/m2m-build-ca.crt and passed
        as the build arg BUILD_CA_BUNDLE (for a TLS-inspecting proxy between the build and the package index).
      - Not part of any image, nor of the cache key. Empty - none.
    type: path
    default: ""
"""

RETURN = r"""
images: {description: 'name -> ref, file, digest (every wanted image).', type: dict, returned: always}
stale: {description: 'name -> why it was (or would be) rebuilt.', type: dict, returned: always}
seconds: {description: 'name -> wall time of its build.', type: dict, returned: always}
"""

import glob
import hashlib
import os
import shutil
import subprocess
import time
from typing import Any

from ansible.module_utils.airgap_bundle_manifest import (
    check_component,
    finalize,
    load,
    recipe_key,
    record_component,
    sha256_file,
)
from ansible.module_utils.basic import AnsibleModule

_SKIP_DIRS = ("__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache")


class BuildError(Exception):
    pass


def _skipped(name: str) -> bool:
    return name in _SKIP_DIRS or name.endswith((".pyc", ".egg-info"))


def context_files(root: str, paths: list[str]) -> list[str]:
    """The files of a build context, relative to root, sorted; caches and build leftovers left out."""
    found: list[str] = []
    for rel in paths:
        top = os.path.join(root, rel)
        if os.path.isfile(top):
            found.append(rel)
            continue
        if not os.path.isdir(top):
            raise BuildError(f"the build context names {rel}, which is not under {root}")
        for directory, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if not _skipped(d))
            found += [
                os.path.relpath(os.path.join(directory, f), root) for f in files if not _skipped(f)
            ]
    return sorted(set(found))


def context_digest(root: str, files: list[str]) -> str:
    digest = hashlib.sha256()
    for rel in files:
        path = os.path.join(root, rel)
        mode = "x" if os.access(path, os.X_OK) else "-"
        digest.update(f"{rel}\0{mode}\0{sha256_file(path)}\n".encode())
    return "sha256:" + digest.hexdigest()


class Builder:
    def __init__(self, params: dict[str, Any]) -> None:
        self.dir = params["dir"]
        self.work = params["work_dir"]
        self.base = params["base"]
        self.nice = params["nice"]
        self.ca_bundle = params["ca_bundle"] or ""
        self.base_key = recipe_key(self.base)
        self.log_dir = os.path.join(self.work, "logs")
        os.makedirs(self.log_dir, exist_ok=True)
        self.log_path = os.path.join(self.log_dir, "base.log")

    def sh(self, argv: list[str], log: str) -> str:
        self.log_path = os.path.join(self.log_dir, f"{log}.log")
        with open(self.log_path, "a") as handle:
            handle.write(f"$ {' '.join(argv)}\n")
            proc = subprocess.run(
                ["nice", "-n", str(self.nice), *argv],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                check=False,
            )
            handle.write(proc.stdout)
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.strip().splitlines()[-20:])
            raise BuildError(
                f"`{' '.join(argv)}` failed (exit {proc.returncode}); full log: {self.log_path}\n{tail}"
            )
        return proc.stdout

    def buildah(self, *args: str, log: str) -> str:
        store = os.path.join(self.work, "buildah")
        return self.sh(
            [
                "buildah",
                "--root",
                f"{store}/root",
                "--runroot",
                f"{store}/run",
                "--storage-driver",
                "vfs",
                *args,
            ],
            log,
        ).strip()

    def recipe(self, spec: dict[str, Any]) -> dict[str, Any]:
        root = spec["context_root"]
        files = context_files(root, [*spec["context"], spec["containerfile"]])
        return {
            "ref": spec["ref"],
            "file": spec["file"],
            "containerfile": spec["containerfile"],
            "context": context_digest(root, files),
            "build_args": dict(sorted((spec.get("build_args") or {}).items())),
            "base": {"ref": self.base["ref"], "key": self.base_key},
        }

    # -- the base ------------------------------------------------------------------------------
    def base_tar(self) -> str:
        tar = os.path.join(self.work, "base", f"{self.base_key[:16]}.tar")
        if os.path.isfile(tar):
            return tar
        root = os.path.join(self.work, "base", "rootfs")
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        self.sh(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(self.base['packages'])}",
                self.base["suite"],
                root,
                self.base["mirror"],
            ],
            "base",
        )
        for pattern in self.base.get("strip", []):
            for path in glob.glob(os.path.join(root, pattern.lstrip("/"))):
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
        packages = self.sh(
            ["chroot", root, "dpkg-query", "-W", "-f", "${Package}=${Version}\\n"], "base"
        )
        with open(tar + ".packages", "w") as handle:
            handle.write(packages)
        self.sh(
            [
                "tar",
                "--sort=name",
                "--numeric-owner",
                "--xattrs",
                "--mtime=@0",
                "-C",
                root,
                "-cf",
                tar + ".tmp",
                ".",
            ],
            "base",
        )
        os.replace(tar + ".tmp", tar)
        shutil.rmtree(root)
        return tar

    def base_image(self) -> None:
        """The base in the private store, labelled with its key (re-made when the key differs)."""
        label = '{{ index .OCIv1.Config.Labels "org.m2mcloud.base-key" }}'
        try:
            have = self.buildah(
                "inspect", "--type", "image", "--format", label, self.base["ref"], log="base"
            )
        except BuildError:
            have = ""
        if have == self.base_key:
            return
        tar = self.base_tar()
        ctr = self.buildah("from", "scratch", log="base")
        try:
            self.buildah("add", ctr, tar, "/", log="base")
            self.buildah(
                "config",
                "--os",
                "linux",
                "--arch",
                "amd64",
                "--env",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--env",
                "LANG=C.UTF-8",
                "--cmd",
                '["/bin/sh"]',
                "--label",
                f"org.m2mcloud.base-key={self.base_key}",
                ctr,
                log="base",
            )
            self.buildah(
                "commit",
                "-q",
                "--timestamp",
                "0",
                "--format",
                "oci",
                ctr,
                self.base["ref"],
                log="base",
            )
        finally:
            self.buildah("rm", ctr, log="base")

    # -- an image ------------------------------------------------------------------------------
    def build(self, name: str, spec: dict[str, Any], recipe: dict[str, Any]) -> float:
        started = time.monotonic()
        self.base_image()
        stage = os.path.join(self.work, "context", name)
        shutil.rmtree(stage, ignore_errors=True)
        root = spec["context_root"]
        for rel in context_files(root, [*spec["context"], spec["containerfile"]]):
            dest = os.path.join(stage, rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy2(os.path.join(root, rel), dest)
        args = ["--build-arg", f"BASE={self.base['ref']}"]
        for key, value in recipe["build_args"].items():
            args += ["--build-arg", f"{key}={value}"]
        if self.ca_bundle:
            if not os.path.isfile(self.ca_bundle):
                raise BuildError(
                    f"the CA bundle {self.ca_bundle} (app_images_build_ca_bundle) does not exist"
                )
            args += ["--volume", f"{self.ca_bundle}:/run/m2m-build-ca.crt:ro"]
            args += ["--build-arg", "BUILD_CA_BUNDLE=/run/m2m-build-ca.crt"]
        log = f"image-{name}"
        log_file = os.path.join(self.log_dir, f"{log}.log")
        if os.path.exists(log_file):
            os.unlink(log_file)
        self.buildah(
            "bud",
            "--pull=false",
            "--isolation",
            "chroot",
            "--network",
            "host",
            "--layers=false",
            "--timestamp",
            "0",
            "--format",
            "oci",
            "--label",
            f"org.opencontainers.image.title={name}",
            "--label",
            f"org.m2mcloud.recipe-key={recipe_key(recipe)}",
            *args,
            "-f",
            os.path.join(stage, spec["containerfile"]),
            "-t",
            spec["ref"],
            stage,
            log=log,
        )
        dest = os.path.join(self.dir, spec["file"])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.exists(dest):
            os.unlink(dest)
        self.buildah("push", "-q", spec["ref"], f"oci-archive:{dest}:{spec['ref']}", log=log)
        os.chmod(dest, 0o644)
        # Keep only the base in the store: the vfs driver copies every layer in full.
        self.buildah("rmi", spec["ref"], log=log)
        self.buildah("rmi", "--prune", log=log)
        shutil.rmtree(stage, ignore_errors=True)
        return round(time.monotonic() - started, 1)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dir": {"type": "path", "required": True},
            "work_dir": {"type": "path", "required": True},
            "base": {"type": "dict", "required": True},
            "images": {"type": "dict", "required": True},
            "nice": {"type": "int", "default": 10},
            "ca_bundle": {"type": "path", "default": ""},
        },
        supports_check_mode=True,
    )
    p = module.params
    builder = Builder(p)
    stale: dict[str, list[str]] = {}
    seconds: dict[str, float] = {}
    try:
        recipes = {name: builder.recipe(spec) for name, spec in sorted(p["images"].items())}
        manifest = load(p["dir"])
        for name, recipe in recipes.items():
            reasons = check_component(
                p["dir"], manifest["components"].get(name), recipe_key(recipe)
            )
            if reasons:
                stale[name] = reasons
        if module.check_mode:
            module.exit_json(changed=bool(stale), stale=stale, seconds={}, images={})
        os.makedirs(p["dir"], exist_ok=True)
        for name in stale:
            spec = p["images"][name]
            seconds[name] = builder.build(name, spec, recipes[name])
            record_component(
                p["dir"],
                name,
                recipes[name],
                [spec["file"]],
                {name: {"ref": spec["ref"], "file": spec["file"]}},
                {"seconds": seconds[name], "base_packages": _base_packages(builder)},
            )
        final = finalize(
            p["dir"],
            list(recipes),
            {"kind": "app-images", "base": p["base"]["ref"]},
            {},
            prune=True,
        )
    except (BuildError, ValueError, OSError) as exc:
        module.fail_json(msg=f"app image build: {exc}", stale=stale)
    module.exit_json(
        changed=bool(stale) or final["changed"],
        stale=stale,
        seconds=seconds,
        images=final["images"],
    )


def _base_packages(builder: Builder) -> list[str]:
    path = os.path.join(builder.work, "base", f"{builder.base_key[:16]}.tar.packages")
    try:
        with open(path) as handle:
            return sorted(handle.read().split())
    except OSError:
        return []


if __name__ == "__main__":
    main()
