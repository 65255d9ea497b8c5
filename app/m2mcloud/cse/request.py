"""The binding-neutral request and response primitives (TS-0004 clause 6.4).

The HTTP and MQTT bindings translate their wire formats into `Request` and render `Response`;
the core only ever sees these two types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from m2mcloud.cse.constants import RSC, Operation, ResourceType, ResponseType, ResultContent
from m2mcloud.cse.errors import bad_request


@dataclass
class FilterCriteria:
    fu: int | None = None  # 1 discovery, 2 conditional retrieval
    ty: list[int] = field(default_factory=list)
    lbl: list[str] = field(default_factory=list)
    cra: float | None = None  # createdAfter
    crb: float | None = None  # createdBefore
    ms: float | None = None  # modifiedSince
    us: float | None = None  # unmodifiedSince
    exa: float | None = None  # expireAfter
    exb: float | None = None  # expireBefore
    sts: int | None = None  # stateTagSmaller
    stb: int | None = None  # stateTagBigger
    sza: int | None = None  # sizeAbove (contentSize >=)
    szb: int | None = None  # sizeBelow (contentSize <)
    cty: list[str] = field(default_factory=list)  # contentType (cnf)
    lim: int | None = None
    ofst: int | None = None
    lvl: int | None = None
    fo: int = 1  # 1 AND, 2 OR
    # Attribute filters: any other attribute name with a value to match ('*' wildcards allowed).
    attrs: dict[str, str] = field(default_factory=dict)

    @property
    def is_discovery(self) -> bool:
        return self.fu == 1

    def has_conditions(self) -> bool:
        return bool(
            self.ty
            or self.lbl
            or self.cty
            or self.attrs
            or any(
                v is not None
                for v in (
                    self.cra,
                    self.crb,
                    self.ms,
                    self.us,
                    self.exa,
                    self.exb,
                    self.sts,
                    self.stb,
                    self.sza,
                    self.szb,
                )
            )
        )


@dataclass
class Request:
    op: Operation
    to: str
    fr: str | None
    rqi: str
    rvi: str | None = None
    ty: int | None = None  # as sent; the core checks it is a type this CSE supports
    pc: dict[str, Any] | None = None
    rcn: ResultContent | None = None
    rt: ResponseType = ResponseType.BLOCKING
    fc: FilterCriteria = field(default_factory=FilterCriteria)
    drt: int = 1  # discovery result type: 1 structured, 2 unstructured
    ot: str | None = None
    rqet: float | None = None  # request expiration (epoch)
    rset: float | None = None  # result expiration (epoch)
    oet: float | None = None  # operation execution time (epoch)
    vsi: str | None = None
    rp: float | None = None  # resultPersistence of a non-blocking request (epoch)
    rp_raw: str | None = None
    rtu: list[str] | None = None  # where an asynchronous result goes (None: originator's poa)
    arp: str | None = None  # applyRelativePath: discovery answers <match>/<arp> instead
    # The binding this request arrived on ("http" or "mqtt"), for metrics and notifications.
    binding: str = "http"

    @property
    def originator(self) -> str:
        return self.fr or ""


@dataclass
class Response:
    rsc: RSC
    pc: dict[str, Any] | None = None
    rqi: str = ""
    rvi: str | None = None
    ot: str | None = None
    vsi: str | None = None
    # Structured address of a created resource (HTTP Content-Location).
    location: str | None = None
    # Type of the resource in pc, for `ty=` in the HTTP Content-Type of responses.
    ty: ResourceType | None = None
    message: str | None = None  # human-readable reason of an error (m2m:dbg)


RCN_ALLOWED: dict[Operation, frozenset[ResultContent]] = {
    Operation.CREATE: frozenset(
        {
            ResultContent.NOTHING,
            ResultContent.ATTRIBUTES,
            ResultContent.HIERARCHICAL_ADDRESS,
            ResultContent.HIERARCHICAL_ADDRESS_ATTRIBUTES,
            ResultContent.MODIFIED_ATTRIBUTES,
        }
    ),
    Operation.RETRIEVE: frozenset(
        {
            ResultContent.ATTRIBUTES,
            ResultContent.ATTRIBUTES_CHILD_RESOURCES,
            ResultContent.ATTRIBUTES_CHILD_RESOURCE_REFERENCES,
            ResultContent.CHILD_RESOURCE_REFERENCES,
            ResultContent.ORIGINAL_RESOURCE,
            ResultContent.CHILD_RESOURCES,
        }
    ),
    Operation.UPDATE: frozenset(
        {
            ResultContent.NOTHING,
            ResultContent.ATTRIBUTES,
            ResultContent.MODIFIED_ATTRIBUTES,
        }
    ),
    Operation.DELETE: frozenset(
        {
            ResultContent.NOTHING,
            ResultContent.ATTRIBUTES,
            ResultContent.ATTRIBUTES_CHILD_RESOURCES,
            ResultContent.CHILD_RESOURCES,
        }
    ),
}
# Discovery (fu=1) answers with references only (TS-0004 7.3.3.1: discovery result references).
RCN_DISCOVERY = frozenset(
    {
        ResultContent.CHILD_RESOURCE_REFERENCES,
        ResultContent.DISCOVERY_RESULT_REFERENCES,
    }
)


def parse_rcn(value: object, op: Operation, discovery: bool) -> ResultContent | None:
    if value is None or value == "":
        return None
    try:
        rcn = ResultContent(int(str(value)))
    except ValueError:
        raise bad_request(f"rcn={value!r} is not a known result content value") from None
    allowed = RCN_DISCOVERY if discovery else RCN_ALLOWED.get(op, frozenset())
    if rcn not in allowed:
        raise bad_request(f"rcn={int(rcn)} is not allowed for this operation")
    return rcn
