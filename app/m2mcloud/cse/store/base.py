"""The store interface the core talks to. No SQL outside the store package."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from m2mcloud.cse.constants import ResourceType

# Internal attributes the store maintains inside `attrs` (never taken from a caller's copy).
SUBSCRIPTIONS = "__nsub"  # number of <subscription> children: 0 means no event lookups needed
STORE_MANAGED = ("cni", "cbs", SUBSCRIPTIONS)


@dataclass
class Resource:
    """One stored resource. Common attributes have columns; the rest live in `attrs`."""

    ri: str
    ty: ResourceType
    rn: str
    pi: str | None
    srn: str  # structured name from the CSEBase: "cse-in/ae/cnt"
    ct: float
    lt: float
    et: float | None = None
    st: int = 0
    cs: int = 0  # content size (contentInstance), counted into the parent's cbs
    owner: str = ""  # AE-ID of the nearest AE ancestor-or-self: that AE has full access
    creator: str = ""  # originator that created the resource
    attrs: dict[str, Any] = field(default_factory=dict)
    seq: int = 0  # store-assigned, increasing in commit order: orders contentInstances

    def copy(self, **changes: Any) -> Resource:
        return replace(self, attrs=dict(self.attrs), **changes)

    @property
    def tpe(self) -> str:
        """The JSON wrapper name; a <mgmtObj> is named after its specialization (mgd)."""
        if self.ty == ResourceType.MGO:
            from m2mcloud.cse.constants import MGMT_TPE

            return MGMT_TPE.get(self.attrs.get("mgd", 0), "m2m:mgo")
        return self.ty.tpe

    @property
    def depth(self) -> int:
        return self.srn.count("/")


@dataclass
class CinWrite:
    """Outcome of adding a contentInstance: the container after the write and what was pruned."""

    container: Resource
    pruned: list[Resource]


class Store(abc.ABC):
    """Everything the core needs from persistence. Every method is one transaction."""

    @abc.abstractmethod
    def init_schema(self) -> None: ...

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise if the database cannot be reached."""

    @abc.abstractmethod
    def get(self, ri: str) -> Resource | None: ...

    @abc.abstractmethod
    def get_by_srn(self, srn: str) -> Resource | None: ...

    @abc.abstractmethod
    def get_many(self, ris: Sequence[str]) -> list[Resource]: ...

    @abc.abstractmethod
    def get_many_by_srn(self, srns: Sequence[str]) -> list[Resource]: ...

    @abc.abstractmethod
    def children(
        self, pi: str, ty: ResourceType | None = None, *, now: float | None = None
    ) -> list[Resource]:
        """Direct children, oldest first, without the ones expired at `now`."""

    @abc.abstractmethod
    def expired_children(self, pi: str, ty: ResourceType, now: float) -> list[Resource]:
        """Children of one type whose expirationTime has passed at `now`."""

    @abc.abstractmethod
    def newest_child(
        self, pi: str, ty: ResourceType, *, oldest: bool = False, now: float | None = None
    ) -> Resource | None: ...

    @abc.abstractmethod
    def descendants(
        self,
        root: Resource,
        *,
        max_depth: int | None,
        types: Iterable[int] = (),
        now: float | None = None,
    ) -> list[Resource]:
        """All resources under `root` (not root itself), in creation order."""

    @abc.abstractmethod
    def create(self, resource: Resource) -> Resource:
        """Insert; raise CSEError(CONFLICT) when the parent already has a child of that name."""

    @abc.abstractmethod
    def create_cin(self, cin: Resource, *, now: float) -> CinWrite:
        """Insert a contentInstance and, in the same transaction with the container locked,
        update cni/cbs and drop the oldest instances beyond mni/mbs."""

    @abc.abstractmethod
    def update(self, resource: Resource) -> Resource:
        """Write attrs/lt/et/st of an existing resource; raise CSEError(NOT_FOUND) if gone."""

    @abc.abstractmethod
    def delete(self, resource: Resource) -> list[Resource]:
        """Delete the resource and its whole subtree; keep the parent container's counters
        exact. Returns what was deleted (the resource first)."""

    @abc.abstractmethod
    def expired(self, now: float, limit: int = 500) -> list[Resource]:
        """Resources whose expirationTime has passed, parents before children."""

    @abc.abstractmethod
    def try_lease(self, name: str, holder: str, ttl: float, now: float) -> bool:
        """Take or renew a named lease (one holder at a time across processes)."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Delete every resource (Upper Tester 'Reset'); the CSEBase is created anew after."""

    @abc.abstractmethod
    def close(self) -> None: ...
