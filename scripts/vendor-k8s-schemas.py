#!/usr/bin/env python3
"""Vendor the Kubernetes OpenAPI definitions the app roles' manifests need, for offline validation.

Reads api/openapi-spec/swagger.json of the pinned Kubernetes module (the Go module cache the bundle
build fills, or a path given with --swagger), keeps the definitions of the listed kinds and every
definition they reference, and writes them gzip-compressed to tests/ansible/data/. Run it again
after changing kube_version (inventory/lab/group_vars/all/versions.yml) or adding a kind:

    scripts/vendor-k8s-schemas.py                      # version from versions.yml
    scripts/vendor-k8s-schemas.py --swagger /path/to/swagger.json --version 1.37.2
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Every kind the app roles create (and the ones they are likely to grow into).
KINDS = [
    ("", "v1", "ConfigMap"),
    ("", "v1", "Secret"),
    ("", "v1", "Service"),
    ("", "v1", "Namespace"),
    ("", "v1", "ServiceAccount"),
    ("", "v1", "PersistentVolumeClaim"),
    ("", "v1", "Pod"),
    ("apps", "v1", "Deployment"),
    ("apps", "v1", "StatefulSet"),
    ("batch", "v1", "Job"),
    ("policy", "v1", "PodDisruptionBudget"),
    ("autoscaling", "v2", "HorizontalPodAutoscaler"),
    ("networking.k8s.io", "v1", "NetworkPolicy"),
    ("rbac.authorization.k8s.io", "v1", "Role"),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding"),
]
OUT = ROOT / "tests" / "ansible" / "data"


def pinned_version() -> str:
    text = (ROOT / "inventory" / "lab" / "group_vars" / "all" / "versions.yml").read_text()
    match = re.search(r"^kube_version:\s*(\S+)", text, re.M)
    if not match:
        raise SystemExit("no kube_version in inventory/lab/group_vars/all/versions.yml")
    return match.group(1).strip("\"'")


def refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref.rsplit("/", 1)[-1])
        for value in node.values():
            found |= refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= refs(value)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="")
    parser.add_argument("--swagger", default="")
    args = parser.parse_args()
    version = args.version or pinned_version()
    module = Path.home() / f".cache/m2mcloud-go/gomodcache/k8s.io/kubernetes@v{version}"
    swagger = Path(args.swagger or module / "api/openapi-spec/swagger.json")
    if not swagger.is_file():
        print(
            f"{swagger} does not exist: build the bundle once (playbooks/bundle.yml fills the Go"
            f" module cache) or `go mod download k8s.io/kubernetes@v{version}`, or pass --swagger",
            file=sys.stderr,
        )
        return 2
    definitions = json.loads(swagger.read_text())["definitions"]
    by_gvk = {}
    for name, schema in definitions.items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            by_gvk[(gvk["group"], gvk["version"], gvk["kind"])] = name
    wanted = {by_gvk[k] for k in KINDS}
    todo, keep = list(wanted), set()
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        todo += sorted(refs(definitions[name]) - keep)
    for schema in definitions.values():
        schema.pop("description", None)
    subset = {
        "kubernetes_version": version,
        "source": f"k8s.io/kubernetes@v{version} api/openapi-spec/swagger.json",
        "kinds": {f"{g + '/' if g else ''}{v}/{k}": by_gvk[(g, v, k)] for g, v, k in KINDS},
        "definitions": {name: _strip(definitions[name]) for name in sorted(keep)},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"k8s-{version}-schemas.json.gz"
    blob = json.dumps(subset, sort_keys=True, separators=(",", ":")).encode()
    path.write_bytes(gzip.compress(blob, mtime=0))
    print(f"{path.relative_to(ROOT)}: {len(keep)} definitions, {path.stat().st_size} bytes")
    return 0


def _strip(node: Any) -> Any:
    """Drop the prose (descriptions) to keep the vendored file small; the constraints stay."""
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


if __name__ == "__main__":
    sys.exit(main())
