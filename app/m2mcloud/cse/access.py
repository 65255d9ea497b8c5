"""Access control decisions (TS-0001 clause 9.6.2 and TS-0003 clause 7.1).

Order of evaluation:
1. the admin originator may do everything;
2. the CSEBase may be read and discovered by registered AEs, and anyone may create an
   <accessControlPolicy> under it (so that AEs can set up their own policies);
3. an <accessControlPolicy> is governed by its own self-privileges (`pvs`);
4. a <contentInstance> has no `acpi`: the decision on its parent container applies;
5. a resource with `acpi` is governed only by the `pv` of those policies (so an AE that puts
   itself outside its policies loses access to its own resource, as the standard intends);
6. a resource without `acpi` is accessible to its custodian (`cstn`) if one is set, otherwise to
   the originator that created it and to the AE whose subtree it is in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from m2mcloud.cse.constants import Operation, ResourceType
from m2mcloud.cse.errors import no_privilege
from m2mcloud.cse.resources.acp import grants
from m2mcloud.cse.store import Resource

if TYPE_CHECKING:
    from m2mcloud.cse.core import CSE


class AccessControl:
    def __init__(self, cse: CSE) -> None:
        self.cse = cse

    def allowed(
        self,
        originator: str,
        res: Resource,
        op: Operation,
        child_ty: int | None = None,
        parent: Resource | None = None,
    ) -> bool:
        """`parent`: the resource's parent when the caller has read it already."""
        if originator == self.cse.config.admin_originator:
            return True
        if not originator:
            return False
        bit = op.permission
        if res.ty == ResourceType.CSEBASE:
            if op in (Operation.RETRIEVE, Operation.DISCOVERY) and self.is_registered(originator):
                return True
            if op == Operation.CREATE and child_ty == ResourceType.ACP:
                return True
            return self._by_policies(res.attrs.get("acpi") or [], originator, bit, child_ty)
        if res.ty == ResourceType.ACP:
            return grants(res.attrs.get("pvs"), originator, bit, child_ty)
        if res.ty == ResourceType.CIN and res.pi:
            if parent is None or parent.ri != res.pi:
                parent = self.cse.store.get(res.pi)
            return parent is not None and self.allowed(originator, parent, op, child_ty)
        policies = self._existing_policies(res)
        if policies:
            return any(grants(p.attrs.get("pv"), originator, bit, child_ty) for p in policies)
        custodian = res.attrs.get("cstn")
        if custodian:
            return bool(originator == custodian)
        return originator in (res.creator, res.owner)

    def check(
        self,
        originator: str,
        res: Resource,
        op: Operation,
        child_ty: int | None = None,
        parent: Resource | None = None,
    ) -> None:
        if not self.allowed(originator, res, op, child_ty, parent):
            raise no_privilege(
                f"originator {originator or '(none)'} has no {op.name} privilege on {res.srn}"
            )

    def may_change_acpi(self, originator: str, res: Resource) -> bool:
        """Changing `acpi` needs UPDATE in the self-privileges of a currently referenced policy;
        a resource without policies can have them set by its creator/owner/custodian."""
        if originator == self.cse.config.admin_originator:
            return True
        policies = self._existing_policies(res)
        if policies:
            return any(
                grants(acp.attrs.get("pvs"), originator, Operation.UPDATE.permission)
                for acp in policies
            )
        custodian = res.attrs.get("cstn")
        if custodian:
            return bool(originator == custodian)
        return bool(originator) and originator in (res.creator, res.owner)

    def _existing_policies(self, res: Resource) -> list[Resource]:
        """The <accessControlPolicy> resources `acpi` points to that still exist. References to
        deleted policies do not count: a resource whose policies are all gone falls back to its
        creator/custodian, instead of being locked for everyone but the admin."""
        acpi = res.attrs.get("acpi")
        return self.cse.resolve_many(acpi, ResourceType.ACP) if acpi else []

    def is_registered(self, originator: str) -> bool:
        if "/" in originator:
            return False
        res = self.cse.store.get(originator)
        return res is not None and res.ty == ResourceType.AE

    def _by_policies(
        self, acpi: list[str], originator: str, bit: int, child_ty: int | None
    ) -> bool:
        return any(
            grants(acp.attrs.get("pv"), originator, bit, child_ty)
            for acp in self.cse.resolve_many(acpi, ResourceType.ACP)
        )
