"""What every resource type module provides: its attribute table, allowed parents and hooks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from m2mcloud.cse.constants import ResourceType
from m2mcloud.cse.resources.attributes import Attr
from m2mcloud.cse.store import Resource

if TYPE_CHECKING:
    from m2mcloud.cse.core import CSE
    from m2mcloud.cse.request import Request


class ResourceKind:
    ty: ClassVar[ResourceType]
    attributes: ClassVar[Mapping[str, Attr]]
    parents: ClassVar[frozenset[ResourceType]]
    rn_prefix: ClassVar[str]
    updatable: ClassVar[bool] = True
    creatable: ClassVar[bool] = True  # False: only the CSE itself creates this type

    def wrapper_of(self, pc: Any) -> str:
        """The JSON wrapper name a CREATE of this type must use (one per type, except for
        <mgmtObj>, whose name says the specialization)."""
        return self.ty.tpe

    def attributes_for(self, tpe: str) -> Mapping[str, Attr]:
        return self.attributes

    def on_create(
        self, cse: CSE, req: Request, parent: Resource, res: Resource, body: dict[str, Any]
    ) -> None:
        """Type-specific checks and computed attributes before the resource is stored."""

    def on_update(self, cse: CSE, req: Request, res: Resource, changes: dict[str, Any]) -> None:
        """Type-specific checks after `changes` were merged into `res.attrs`, before storing."""

    def after_create(self, cse: CSE, req: Request, res: Resource) -> None:
        """Work after the resource is stored (e.g. nothing, or notifications of its own)."""
