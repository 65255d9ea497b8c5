"""Offline validation of Kubernetes manifests against the vendored OpenAPI definitions of the
pinned version (scripts/vendor-k8s-schemas.py), strictly: like `kubectl apply --validate=strict`
(an unknown field is an error), plus the value formats the API server checks on names, labels
and quantities, so a typo fails here in seconds rather than in the e2e."""

from __future__ import annotations

import copy
import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

DATA = Path(__file__).parent / "data"
_QUANTITY = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[KMGTPE]i|[mkMGTPE])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
_LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
# Object kinds keyed by strings: free-form maps whose values are typed by additionalProperties.
_SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "oneOf": [{"type": "string"}, {"type": "integer"}]
    },
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "oneOf": [{"type": "string", "pattern": _QUANTITY}, {"type": "number"}]
    },
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": {"type": "string", "format": "date-time"},
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": {"type": "string"},
}


def schema_files() -> list[Path]:
    return sorted(DATA.glob("k8s-*-schemas.json.gz"))


@cache
def load(version: str) -> dict[str, Any]:
    path = DATA / f"k8s-{version}-schemas.json.gz"
    return json.loads(gzip.decompress(path.read_bytes()))


def _strict(node: Any) -> Any:
    """Object schemas with named properties reject unknown ones (kubectl --validate=strict)."""
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


@cache
def _validator(version: str, definition: str) -> jsonschema.Draft4Validator:
    data = load(version)
    definitions = {name: _strict(schema) for name, schema in data["definitions"].items()}
    definitions.update(copy.deepcopy(_SPECIAL))
    meta = definitions["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]
    meta["name"] = {"type": "string", "pattern": _DNS_SUBDOMAIN, "maxLength": 253}
    meta["namespace"] = {"type": "string", "pattern": _DNS_SUBDOMAIN, "maxLength": 63}
    meta["labels"] = {
        "type": "object",
        "propertyNames": {"pattern": _LABEL_KEY},
        "additionalProperties": {"type": "string", "pattern": _LABEL_VALUE, "maxLength": 63},
    }
    root = {"definitions": definitions, "$ref": f"#/definitions/{definition}"}
    return jsonschema.Draft4Validator(root, format_checker=jsonschema.FormatChecker())


def validate(manifest: dict[str, Any], version: str) -> list[str]:
    """Every problem with one manifest, as `kind/name: path: message` sentences ([] = valid)."""
    data = load(version)
    if not isinstance(manifest, dict):
        return [f"not an object: {manifest!r:.60}"]
    api, kind = manifest.get("apiVersion", ""), manifest.get("kind", "")
    name = (manifest.get("metadata") or {}).get("name", "?")
    definition = data["kinds"].get(f"{api}/{kind}")
    if definition is None:
        return [
            f"{kind or '?'}/{name}: apiVersion {api!r} kind {kind!r} is not one of the vendored"
            f" kinds of Kubernetes {version} ({', '.join(sorted(data['kinds']))}); add it to"
            " scripts/vendor-k8s-schemas.py if it is real"
        ]
    problems = []
    for error in sorted(_validator(version, definition).iter_errors(manifest), key=str):
        path = ".".join(str(p) for p in error.absolute_path) or "(root)"
        problems.append(f"{kind}/{name}: {path}: {error.message}")
    return problems
