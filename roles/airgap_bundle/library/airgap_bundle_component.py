#!/usr/bin/python
# ruff: noqa: E402, E501 - Ansible module layout: DOCUMENTATION before the imports, YAML docs lines
# Copyright: m2mcloud contributors
# Apache-2.0
"""Build one bundle component from source (Go module proxy, gcc, Debian mirror) unless cached."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: airgap_bundle_component
short_description: Build one offline-bundle component from source, unless the bundle already holds it
description:
  - Looks the component up in the bundle's manifest.json. If the recipe is the same and every file
    still matches its sha256 (and every image archive still names its digest), nothing happens.
  - Otherwise builds it (Go wrapper module, go install, patched module copy, local module, gcc of
    pause.c, or apt-get download), assembles its OCI images with buildah FROM scratch or from the
    cached Debian base, copies the shipped files into the bundle and records them in the manifest.
  - Every build command runs under nice; its output goes to <work_dir>/logs/<name>.log.
options:
  name: {description: Component name (manifest key)., type: str, required: true}
  recipe: {description: What to build (see the role's vars/main.yml)., type: dict, required: true}
  bundle_dir: {description: The bundle directory., type: path, required: true}
  work_dir: {description: Scratch space (wrappers, build outputs, buildah store, Debian base)., type: path, required: true}
  go: {description: The go command., type: str, default: go}
  env: {description: Environment of the Go builds (GOPROXY, GOMODCACHE, GOCACHE, GOFLAGS...)., type: dict, default: {}}
  nice: {description: Niceness of every build command., type: int, default: 19}
"""

RETURN = r"""
reasons: {description: Why the component was (re)built; empty when it was cached., type: list, returned: always}
entry: {description: The component's manifest entry after the build., type: dict, returned: changed}
seconds: {description: Wall time of the build., type: float, returned: changed}
"""

import glob
import json
import os
import re
import shutil
import subprocess
import time
from typing import Any

from ansible.module_utils.airgap_bundle_manifest import (
    check_component,
    load,
    local_replaces,
    recipe_key,
    record_component,
)
from ansible.module_utils.basic import AnsibleModule

_PROXY_HINTS = ("403 Forbidden", "404 Not Found", "not available", "unknown revision")


class BuildError(Exception):
    pass


class Builder:
    def __init__(self, module: AnsibleModule, name: str, recipe: dict[str, Any]) -> None:
        p = module.params
        self.module = module
        self.name = name
        self.recipe = recipe
        self.bundle = p["bundle_dir"]
        self.work = p["work_dir"]
        self.go = p["go"]
        self.nice = p["nice"]
        self.base_spec = recipe.get("debian_base") or {}
        self.env = dict(os.environ)
        self.env.update({k: str(v) for k, v in (p["env"] or {}).items()})
        self.out = os.path.join(self.work, "out", name)
        self.log_path = os.path.join(self.work, "logs", f"{name}.log")
        self.info: dict[str, Any] = {}
        self.shipped: list[str] = []
        self.images: dict[str, dict[str, str]] = {}
        for d in (self.out, os.path.dirname(self.log_path)):
            os.makedirs(d, exist_ok=True)
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in run()

    # -- running commands ------------------------------------------------------------------
    def sh(self, argv: list[str], cwd: str | None = None, env: dict[str, str] | None = None) -> str:
        full = ["nice", "-n", str(self.nice), *argv]
        self.log.write(f"$ {' '.join(argv)}   (in {cwd or os.getcwd()})\n")
        self.log.flush()
        proc = subprocess.run(
            full,
            cwd=cwd,
            env=env or self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        self.log.write(proc.stdout)
        self.log.flush()
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.strip().splitlines()[-25:])
            hint = ""
            if any(h in proc.stdout for h in _PROXY_HINTS):
                hint = (
                    " The Go module proxy does not serve a module this build needs (the bundle"
                    " sets GOPROXY without ',direct' so this fails here instead of trying git):"
                    " pick a version that `go list -m -versions <module>` lists, or patch the"
                    " import out as the flannel recipe does."
                )
            raise BuildError(
                f"component {self.name}: `{' '.join(argv)}` failed (exit {proc.returncode}).{hint}"
                f" Full log: {self.log_path}\n{tail}"
            )
        return proc.stdout

    def go_env(self, cgo: bool) -> dict[str, str]:
        env = dict(self.env)
        env["CGO_ENABLED"] = "1" if cgo else "0"
        return env

    def mod_download(self, mod: str, version: str) -> dict[str, Any]:
        out = self.sh([self.go, "mod", "download", "-json", f"{mod}@{version}"], cwd=self.work)
        return json.loads(out)

    def ldflags(self, binary: dict[str, Any], build_date: str) -> str:
        return str(binary.get("ldflags", "-s -w")).replace("@BUILD_DATE@", build_date)

    def build_date(self, info_path: str) -> str:
        with open(info_path) as handle:
            stamp = json.load(handle).get("Time", "1970-01-01T00:00:00Z")
        return re.sub(r"\.\d+Z$", "Z", stamp)

    # -- the kinds of source -----------------------------------------------------------------
    def binaries(self) -> list[dict[str, Any]]:
        """The recipe's binaries with their defaults: name from the package, recipe-wide ldflags/ship_dir."""
        result = []
        for binary in self.recipe.get("binaries") or []:
            b = dict(binary)
            b.setdefault("name", os.path.basename(b.get("package", self.name)))
            if "ldflags" not in b and "ldflags" in self.recipe:
                b["ldflags"] = self.recipe["ldflags"]
            if "ship" not in b and self.recipe.get("ship_dir"):
                b["ship"] = f"{self.recipe['ship_dir']}/{b['name']}"
            result.append(b)
        return result

    def build(self) -> None:
        kind = self.recipe["build"]["kind"]
        shutil.rmtree(self.out, ignore_errors=True)
        os.makedirs(self.out)
        getattr(self, f"_build_{kind}")()
        for binary in self.binaries():
            path = os.path.join(self.out, binary["name"])
            if not os.path.isfile(path):
                raise BuildError(f"component {self.name}: the build made no {binary['name']}")

    def _go_build_each(self, cwd: str, build_date: str) -> None:
        for binary in self.binaries():
            self.sh(
                [
                    self.go,
                    "build",
                    "-trimpath",
                    "-ldflags",
                    self.ldflags(binary, build_date),
                    "-o",
                    os.path.join(self.out, binary["name"]),
                    binary.get("package", "."),
                ],
                cwd=cwd,
                env=self.go_env(binary.get("cgo", False)),
            )

    def _build_wrapper(self) -> None:
        """A throw-away main module that requires the real one(s) and turns their local replaces
        (./staging/..., ../api) into replaces by version: upstream's go.mod cannot be the main module
        of a `go install` because of those replaces, and the module zips hold no staging/."""
        spec = self.recipe["build"]
        mod, version = self.recipe["module"], self.recipe["version"]
        wdir = os.path.join(self.work, "wrappers", f"{self.name}-{version}")
        shutil.rmtree(wdir, ignore_errors=True)
        os.makedirs(wdir)
        requires = [mod, *spec.get("also_require", [])]
        replaces: dict[str, str] = {}
        go_line, godebug = "go 1.22", []
        main_info = ""
        for req in requires:
            meta = self.mod_download(req, version)
            if req == mod:
                main_info = meta["Info"]
            with open(meta["GoMod"]) as handle:
                text = handle.read()
            if req == mod:
                go_line = next((ln for ln in text.splitlines() if ln.startswith("go ")), go_line)
                godebug = [ln for ln in text.splitlines() if ln.startswith("godebug ")]
            for target in local_replaces(text):
                if target not in spec.get("skip_replace", []):
                    replaces[target] = spec.get("replace_version") or version
        lines = [f"module m2mcloud.local/{self.name}build", "", go_line, *godebug, ""]
        lines += [f"require {req} {version}" for req in requires]
        if replaces:
            lines += ["", "replace ("]
            lines += [f"\t{m} => {m} {v}" for m, v in sorted(replaces.items())]
            lines += [")"]
        with open(os.path.join(wdir, "go.mod"), "w") as handle:
            handle.write("\n".join(lines) + "\n")
        imports = "\n".join(f'\t_ "{b["package"]}"' for b in self.binaries())
        with open(os.path.join(wdir, "tools.go"), "w") as handle:
            handle.write(f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n")
        self.sh([self.go, "mod", "tidy"], cwd=wdir)
        self._go_build_each(wdir, self.build_date(main_info))
        self._ship_sources(wdir, ["go.mod", "go.sum", "tools.go"])

    def _build_install(self) -> None:
        version = self.recipe["version"]
        meta = self.mod_download(self.recipe["module"], version)
        build_date = self.build_date(meta["Info"])
        groups: dict[tuple[str, bool], list[str]] = {}
        for binary in self.binaries():
            key = (self.ldflags(binary, build_date), binary.get("cgo", False))
            groups.setdefault(key, []).append(f"{binary['package']}@{version}")
        for (ldflags, cgo), packages in groups.items():
            env = self.go_env(cgo)
            env["GOBIN"] = self.out
            self.sh(
                [self.go, "install", "-trimpath", "-ldflags", ldflags, *packages],
                cwd=self.work,
                env=env,
            )
        self._extra_files(meta["Dir"])

    def _build_patched(self) -> None:
        """Build a copy of the module with named lines removed (an import the proxy cannot serve)."""
        version = self.recipe["version"]
        meta = self.mod_download(self.recipe["module"], version)
        src = os.path.join(self.work, "src", f"{self.name}-{version}")
        shutil.rmtree(src, ignore_errors=True)
        shutil.copytree(meta["Dir"], src)
        os.chmod(src, 0o755)
        for root, dirs, files in os.walk(src):
            for entry in dirs + files:
                os.chmod(os.path.join(root, entry), 0o755 if entry in dirs else 0o644)
        for patch in self.recipe["build"]["delete_lines"]:
            path = os.path.join(src, patch["file"])
            with open(path) as handle:
                lines = handle.readlines()
            kept = [ln for ln in lines if patch["containing"] not in ln]
            if len(kept) == len(lines):
                raise BuildError(
                    f"component {self.name}: no line of {patch['file']} contains"
                    f" {patch['containing']!r}; the patch no longer applies to {version}"
                )
            with open(path, "w") as handle:
                handle.writelines(kept)
        self._go_build_each(src, self.build_date(meta["Info"]))

    def _build_local(self) -> None:
        """Our own Go module, shipped inside the role (its go.sum locks every dependency)."""
        src = os.path.join(self.work, "src", self.name)
        shutil.rmtree(src, ignore_errors=True)
        shutil.copytree(self.recipe["build"]["src"], src)
        self._go_build_each(src, "1970-01-01T00:00:00Z")
        self._ship_sources(src, sorted(os.listdir(src)))

    def _build_pause(self) -> None:
        """pause.c is in the Kubernetes module zip; flags as upstream's build/pause/Makefile."""
        spec = self.recipe["build"]
        meta = self.mod_download(spec["from_module"], spec["from_version"])
        pdir = os.path.join(meta["Dir"], "build", "pause")
        with open(os.path.join(pdir, "Makefile")) as handle:
            tag = re.search(r"^TAG \?= (\S+)", handle.read(), re.M)
        if not tag or tag.group(1) != self.recipe["version"]:
            found = tag.group(1) if tag else "nothing"
            raise BuildError(
                f"component pause: {spec['from_module']}@{spec['from_version']} carries pause"
                f" {found}, not the pinned {self.recipe['version']}; pin the pause version of"
                " that Kubernetes release (kubeadm config images list)."
            )
        out = os.path.join(self.out, "pause")
        self.sh(
            [
                spec.get("cc", "gcc"),
                "-Os",
                "-Wall",
                "-Werror",
                "-static",
                f"-DVERSION=v{self.recipe['version']}-{spec['from_module']}@{spec['from_version']}",
                "-o",
                out,
                os.path.join(pdir, "linux", "pause.c"),
            ],
            cwd=self.work,
        )
        self.sh(["strip", out], cwd=self.work)

    def _build_none(self) -> None:
        """Nothing to compile: the component is its images (the Debian base image)."""

    def _build_debs(self) -> None:
        versions = {}
        for package in self.recipe["build"]["packages"]:
            self.sh(["apt-get", "download", "-q", package], cwd=self.out)
            found = glob.glob(os.path.join(self.out, f"{package}_*.deb"))
            if len(found) != 1:
                raise BuildError(f"component {self.name}: apt-get download {package} gave {found}")
            versions[package] = os.path.basename(found[0])
        self.info["debs"] = versions

    # -- shipping ----------------------------------------------------------------------------
    def _ship_sources(self, src: str, names: list[str]) -> None:
        for name in names:
            path = os.path.join(src, name)
            if os.path.isfile(path):
                self.copy(path, f"sources/{self.name}/{name}", 0o644)

    def _extra_files(self, module_dir: str) -> None:
        for extra in self.recipe.get("module_files", []):
            self.copy(os.path.join(module_dir, extra["from"]), extra["to"], 0o644)

    def copy(self, src: str, rel: str, mode: int) -> None:
        dest = os.path.join(self.bundle, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = dest + ".tmp"
        shutil.copyfile(src, tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
        self.shipped.append(rel)

    def ship(self) -> None:
        for binary in self.binaries():
            if binary.get("ship"):
                self.copy(os.path.join(self.out, binary["name"]), binary["ship"], 0o755)
        if self.recipe["build"]["kind"] == "debs":
            for deb in sorted(os.listdir(self.out)):
                self.copy(
                    os.path.join(self.out, deb), f"{self.recipe['build']['dest']}/{deb}", 0o644
                )

    # -- images ------------------------------------------------------------------------------
    def buildah(self, *args: str) -> str:
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
            cwd=self.work,
        ).strip()

    def debian_base(self) -> str:
        """The Debian rootfs shared by the images that need tools (iptables, cp...), cached as a tar."""
        spec = self.base_spec
        tar = os.path.join(self.work, "base", f"debian-{recipe_key(spec)[:16]}.tar")
        if os.path.isfile(tar):
            self.info["debian_base"] = self._base_info(tar)
            return tar
        root = os.path.join(self.work, "base", "rootfs")
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        self.sh(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(spec['packages'])}",
                spec["suite"],
                root,
                spec["mirror"],
            ],
            cwd=self.work,
        )
        for pattern in spec.get("strip", []):
            for path in glob.glob(os.path.join(root, pattern.lstrip("/"))):
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
        packages = self.sh(["chroot", root, "dpkg-query", "-W", "-f", "${Package}=${Version}\\n"])
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
            ]
        )
        os.replace(tar + ".tmp", tar)
        shutil.rmtree(root)
        self.info["debian_base"] = self._base_info(tar)
        return tar

    def _base_info(self, tar: str) -> dict[str, Any]:
        try:
            with open(tar + ".packages") as handle:
                packages = sorted(handle.read().split())
        except OSError:
            packages = []
        return {"suite": self.base_spec.get("suite"), "packages": packages}

    def image(self, spec: dict[str, Any]) -> None:
        ref, rel = spec["ref"], spec["file"]
        stage = os.path.join(self.work, "stage", self.name, spec["name"])
        shutil.rmtree(stage, ignore_errors=True)
        os.makedirs(stage)
        ctr = self.buildah("from", "scratch")
        try:
            if spec.get("base") == "debian":
                self.buildah("add", ctr, self.debian_base(), "/")
            for item in spec.get("copy", []):
                staged = os.path.join(stage, os.path.basename(item["dest"]))
                shutil.copyfile(os.path.join(self.out, item["bin"]), staged)
                os.chmod(staged, int(str(item.get("mode", "0755")), 8))
                if item.get("caps"):
                    self.sh(["setcap", item["caps"], staged])
                self.buildah("copy", ctr, staged, item["dest"])
            config = ["--os", "linux", "--arch", "amd64"]
            config += [
                "--env",
                "PATH="
                + spec.get("path", "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"),
            ]
            for key, value in sorted((spec.get("env") or {}).items()):
                config += ["--env", f"{key}={value}"]
            if spec.get("entrypoint"):
                config += ["--entrypoint", json.dumps(spec["entrypoint"])]
            if spec.get("cmd"):
                config += ["--cmd", json.dumps(spec["cmd"])]
            if spec.get("user"):
                config += ["--user", str(spec["user"])]
            if spec.get("workdir"):
                config += ["--workingdir", spec["workdir"]]
            config += ["--label", f"org.opencontainers.image.title={spec['name']}"]
            config += [
                "--label",
                "org.opencontainers.image.vendor=m2mcloud offline bundle (built from source)",
            ]
            self.buildah("config", *config, ctr)
            self.buildah("commit", "-q", "--timestamp", "0", "--format", "oci", ctr, ref)
        finally:
            self.buildah("rm", ctr)
        dest = os.path.join(self.bundle, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.exists(dest):
            os.unlink(dest)
        self.buildah("push", "-q", ref, f"oci-archive:{dest}:{ref}")
        self.buildah("rmi", ref)
        os.chmod(dest, 0o644)
        self.images[spec["name"]] = {"ref": ref, "file": rel}
        shutil.rmtree(stage, ignore_errors=True)

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        try:
            self.build()
            self.ship()
            for spec in self.recipe.get("images", []):
                self.image(spec)
            if self.recipe["build"]["kind"] not in ("debs", "none"):
                self.info["go"] = self.sh([self.go, "env", "GOVERSION"]).strip()
            _, entry = record_component(
                self.bundle, self.name, self.recipe, self.shipped, self.images, self.info
            )
        finally:
            self.log.close()
        return {"changed": True, "entry": entry, "seconds": round(time.monotonic() - started, 1)}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "recipe": {"type": "dict", "required": True},
            "bundle_dir": {"type": "path", "required": True},
            "work_dir": {"type": "path", "required": True},
            "go": {"type": "str", "default": "go"},
            "env": {"type": "dict", "default": {}},
            "nice": {"type": "int", "default": 19},
        },
        supports_check_mode=True,
    )
    name, recipe = module.params["name"], module.params["recipe"]
    manifest = load(module.params["bundle_dir"])
    reasons = check_component(
        module.params["bundle_dir"], manifest["components"].get(name), recipe_key(recipe)
    )
    if not reasons:
        module.exit_json(changed=False, reasons=[])
    if module.check_mode:
        module.exit_json(changed=True, reasons=reasons)
    os.makedirs(module.params["bundle_dir"], exist_ok=True)
    try:
        result = Builder(module, name, recipe).run()
    except BuildError as exc:
        module.fail_json(msg=str(exc), reasons=reasons)
    module.exit_json(reasons=reasons, **result)


if __name__ == "__main__":
    main()
