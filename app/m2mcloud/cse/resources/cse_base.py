"""<CSEBase> (ty 5): the root; neither creatable, updatable nor deletable over the API."""

from __future__ import annotations

from typing import ClassVar

from m2mcloud.cse.constants import ResourceType
from m2mcloud.cse.resources.base import ResourceKind

CSE_TYPE_IN = 1  # cseType: IN-CSE
SUPPORTED_RESOURCE_TYPES = [int(t) for t in ResourceType]


class CSEBaseKind(ResourceKind):
    ty = ResourceType.CSEBASE
    attributes: ClassVar = {}
    parents = frozenset()
    rn_prefix = "cb"
    updatable = False
