"""<accessControlPolicy> (ty 1): privileges (pv) and self-privileges (pvs) (TS-0001 9.6.2)."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from m2mcloud.cse.constants import ALL_PERMISSIONS, ResourceType
from m2mcloud.cse.errors import bad_request
from m2mcloud.cse.resources.attributes import COMMON, DICT, STRLIST, Attr, M, O
from m2mcloud.cse.resources.base import ResourceKind
from m2mcloud.cse.store import Resource

if TYPE_CHECKING:
    from m2mcloud.cse.core import CSE
    from m2mcloud.cse.request import Request


class ACPKind(ResourceKind):
    ty = ResourceType.ACP
    parents = frozenset({ResourceType.CSEBASE, ResourceType.AE})
    rn_prefix = "acp"
    attributes: ClassVar = {
        **{k: v for k, v in COMMON.items() if k != "acpi"},
        "pv": Attr(DICT, M, O),
        "pvs": Attr(DICT, M, O),
        "adri": Attr(STRLIST, O, O),
        "apri": Attr(STRLIST, O, O),
        "airi": Attr(STRLIST, O, O),
    }

    def on_create(
        self, cse: CSE, req: Request, parent: Resource, res: Resource, body: dict[str, Any]
    ) -> None:
        validate_privileges("pv", body["pv"], allow_empty=True)
        validate_privileges("pvs", body["pvs"], allow_empty=False)

    def on_update(self, cse: CSE, req: Request, res: Resource, changes: dict[str, Any]) -> None:
        if "pv" in changes:
            validate_privileges("pv", res.attrs["pv"], allow_empty=True)
        if "pvs" in changes:
            validate_privileges("pvs", res.attrs["pvs"], allow_empty=False)


def validate_privileges(name: str, value: Mapping[str, Any], *, allow_empty: bool) -> None:
    """A setOfAcrs: {"acr": [{"acor": [originator...], "acop": 1..63, "acco": [...]}]}."""
    unknown = set(value) - {"acr"}
    if unknown:
        raise bad_request(f"{name} has unknown element(s) {sorted(unknown)}; expected only 'acr'")
    rules = value.get("acr", [])
    if not isinstance(rules, list):
        raise bad_request(f"{name}.acr must be a list of access control rules")
    if not rules and not allow_empty:
        raise bad_request(f"{name} must contain at least one access control rule")
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            raise bad_request(f"{name}.acr[{i}] must be an object")
        extra = set(rule) - {"acor", "acop", "acco", "acod", "acaf"}
        if extra:
            raise bad_request(f"{name}.acr[{i}] has unknown element(s) {sorted(extra)}")
        acor, acop = rule.get("acor"), rule.get("acop")
        if not isinstance(acor, list) or not all(isinstance(o, str) for o in acor):
            raise bad_request(f"{name}.acr[{i}].acor must be a list of originators")
        if isinstance(acop, bool) or not isinstance(acop, int) or not 1 <= acop <= ALL_PERMISSIONS:
            raise bad_request(f"{name}.acr[{i}].acop must be an integer 1..63, got {acop!r}")


def grants(
    privileges: Mapping[str, Any] | None,
    originator: str,
    permission: int,
    child_ty: int | None = None,
) -> bool:
    """Does any rule of this setOfAcrs give `originator` the `permission` bit? For CREATE, a rule
    with object details (acod chty) only covers the child resource types it lists."""
    if not privileges:
        return False
    for rule in privileges.get("acr", []):
        if not int(rule.get("acop", 0)) & permission:
            continue
        if child_ty is not None and not _child_type_allowed(rule.get("acod"), child_ty):
            continue
        for who in rule.get("acor", []):
            if who in ("all", originator):
                return True
            if ("*" in who or "?" in who) and originator and fnmatch.fnmatchcase(originator, who):
                return True
    return False


def _child_type_allowed(acod: Any, child_ty: int) -> bool:
    if not acod:
        return True
    for detail in acod if isinstance(acod, list) else [acod]:
        chty = detail.get("chty") if isinstance(detail, dict) else None
        if not chty or child_ty in chty:
            return True
    return False
