"""The CSE core: resolves targets, checks access, runs CREATE/RETRIEVE/UPDATE/DELETE, discovery
and result content, and emits notifications. It knows nothing about HTTP or MQTT."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from m2mcloud.cse.access import AccessControl
from m2mcloud.cse.config import CSEConfig
from m2mcloud.cse.constants import (
    RSC,
    SUPPORTED_RELEASES,
    TPE_TO_TYPE,
    NotificationEventType,
    Operation,
    ResourceType,
    ResponseType,
    ResultContent,
)
from m2mcloud.cse.errors import CSEError, bad_request, no_privilege, not_allowed, not_found
from m2mcloud.cse.request import FilterCriteria, Request, Response
from m2mcloud.cse.resources.acp import ACPKind
from m2mcloud.cse.resources.ae import AEKind
from m2mcloud.cse.resources.attributes import check_rn, validate_attributes
from m2mcloud.cse.resources.base import ResourceKind
from m2mcloud.cse.resources.container import ContainerKind, ContentInstanceKind
from m2mcloud.cse.resources.cse_base import CSE_TYPE_IN, SUPPORTED_RESOURCE_TYPES, CSEBaseKind
from m2mcloud.cse.resources.group import GroupKind
from m2mcloud.cse.resources.mgmt import MgmtObjKind, NodeKind
from m2mcloud.cse.resources.request import RequestKind
from m2mcloud.cse.resources.subscription import SubscriptionKind
from m2mcloud.cse.store import Resource, Store
from m2mcloud.cse.timeutil import format_ts, parse_ts

log = logging.getLogger(__name__)

KINDS: dict[ResourceType, ResourceKind] = {
    k.ty: k
    for k in (
        CSEBaseKind(),
        AEKind(),
        ContainerKind(),
        ContentInstanceKind(),
        ACPKind(),
        SubscriptionKind(),
        GroupKind(),
        RequestKind(),
        NodeKind(),
        MgmtObjKind(),
    )
}
VIRTUAL = ("la", "ol")
_TYPE_VALUES = frozenset(int(t) for t in ResourceType)
STATE_TAGGED = frozenset({ResourceType.CNT, ResourceType.CIN})  # types that carry stateTag (st)


def random_id() -> str:
    """A short unstructured resource ID part, unique across replicas (64 random bits)."""
    return secrets.token_hex(8)


@dataclass
class Target:
    resource: Resource
    virtual: str | None = None  # "la" / "ol": the resolved resource is a contentInstance
    fanout_rest: str | None = None  # set when addressing <group>/fopt[/...]
    parent: Resource | None = None  # the container of a virtual la/ol, already read


class CSE:
    def __init__(
        self,
        config: CSEConfig,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = random_id,
        notifier: Any = None,
    ) -> None:
        from m2mcloud.cse.notifications import Notifier

        self.config = config
        self.store = store
        self.clock = clock
        self.new_id = new_id
        self.access = AccessControl(self)
        self.notifier = notifier if notifier is not None else Notifier(self)
        self.cse_base_ri = config.cse_id
        self.mqtt: Any = None  # the MQTT binding, when running: sends notifications over MQTT
        self._background: list[threading.Thread] = []

    # -- lifecycle ------------------------------------------------------------------------------

    def bootstrap(self) -> Resource:
        """Create the CSEBase on first start (safe when several replicas start at once)."""
        existing = self.store.get(self.cse_base_ri)
        if existing is not None:
            if existing.rn != self.config.cse_name:
                raise RuntimeError(
                    f"the database holds CSEBase {existing.rn!r} but M2M_CSE_NAME is "
                    f"{self.config.cse_name!r}: use the same name or another database"
                )
            stale = existing.attrs.get("poa") != self.config.points_of_access
            if stale or "rr" in existing.attrs:  # rr: not a CSEBase attribute (older versions)
                existing.attrs["poa"] = self.config.points_of_access
                existing.attrs.pop("rr", None)
                existing = self.store.update(existing)
            return existing
        now = self.clock()
        base = Resource(
            ri=self.cse_base_ri,
            ty=ResourceType.CSEBASE,
            rn=self.config.cse_name,
            pi=None,
            srn=self.config.cse_name,
            ct=now,
            lt=now,
            creator=self.config.admin_originator,
            attrs={
                "csi": self.config.csi,
                "cst": CSE_TYPE_IN,
                "srt": SUPPORTED_RESOURCE_TYPES,
                "srv": list(SUPPORTED_RELEASES),
                "poa": self.config.points_of_access,
            },
        )
        try:
            return self.store.create(base)
        except CSEError:
            found = self.store.get(self.cse_base_ri)
            assert found is not None
            return found

    # -- entry point ----------------------------------------------------------------------------

    def handle(self, req: Request) -> Response:
        """Process one request primitive; every outcome is a response primitive."""
        try:
            resp = self._handle(req)
        except CSEError as exc:
            resp = Response(rsc=exc.rsc, pc={"m2m:dbg": exc.message}, message=exc.message)
        except Exception:
            log.exception("internal error handling %s %s (rqi %s)", req.op.name, req.to, req.rqi)
            resp = Response(
                rsc=RSC.INTERNAL_SERVER_ERROR,
                pc={"m2m:dbg": "internal server error"},
                message="internal server error",
            )
        resp.rqi = req.rqi
        resp.rvi = req.rvi
        resp.vsi = req.vsi
        resp.ot = format_ts(self.clock())
        return resp

    def _handle(self, req: Request) -> Response:
        now = self.clock()
        if req.rvi is not None and req.rvi not in SUPPORTED_RELEASES:
            raise CSEError(
                RSC.RELEASE_VERSION_NOT_SUPPORTED,
                f"release version {req.rvi!r} is not supported; use one of "
                f"{', '.join(SUPPORTED_RELEASES)}",
            )
        if req.rqet is not None and req.rqet <= now:
            raise CSEError(RSC.REQUEST_TIMEOUT, "the request expiration time has passed")
        if req.rt in (ResponseType.NON_BLOCKING_SYNCH, ResponseType.NON_BLOCKING_ASYNCH):
            from m2mcloud.cse.resources.request import accept_non_blocking

            return accept_non_blocking(self, req)
        if req.rt == ResponseType.NO_RESPONSE:
            self._run_detached(req)
            return Response(rsc=RSC.ACCEPTED)
        if req.oet is not None and req.oet > now:
            # Operation execution time: hold the request until then (bounded by the expiry).
            time.sleep(min(req.oet - now, 30.0))
        return self.execute(req)

    def execute(self, req: Request) -> Response:
        """Run a request that passed the envelope checks (also used by group fan-out)."""
        if req.op == Operation.CREATE and req.ty == int(ResourceType.AE):
            pass  # registration: the originator may be empty
        elif not req.fr:
            raise bad_request("the request has no originator (X-M2M-Origin / fr)")
        target = self.resolve(req.to)
        if target.fanout_rest is not None:
            from m2mcloud.cse.resources.group import fan_out

            return fan_out(self, req, target.resource, target.fanout_rest)
        if req.op == Operation.CREATE:
            return self.create(req, target)
        if req.op == Operation.RETRIEVE:
            if req.fc.is_discovery:
                return self.discover(req, target)
            return self.retrieve(req, target)
        if req.op == Operation.UPDATE:
            return self.update(req, target)
        if req.op == Operation.DELETE:
            return self.delete(req, target)
        if req.op == Operation.NOTIFY:
            return self.forward_notify(req, target)
        raise CSEError(RSC.NOT_IMPLEMENTED, f"operation {req.op.name} is not supported here")

    def forward_notify(self, req: Request, target: Target) -> Response:
        """A NOTIFY addressed to an AE is passed on to the AE's pointOfAccess; the AE's answer
        is the answer."""
        from m2mcloud.cse.notifications import DeliveryError

        res = target.resource
        if res.ty != ResourceType.AE:
            raise not_allowed("NOTIFY can only be sent to an AE")
        self.access.check(req.originator, res, Operation.NOTIFY)
        try:
            url = self.notifier.resolve_target(res.ri, for_verification=True)
            rsc = self.notifier.send(url, req.pc or {}) if url else None
        except DeliveryError as exc:
            raise CSEError(
                RSC.TARGET_NOT_REACHABLE, f"the AE could not be reached: {exc}"
            ) from None
        return Response(rsc=rsc or RSC.OK)

    def _run_detached(self, req: Request) -> None:
        def run() -> None:
            resp = self.handle_blocking(req)
            log.info("no-response request %s finished with %s", req.rqi, int(resp.rsc))

        threading.Thread(target=run, name=f"noresponse-{req.rqi}", daemon=True).start()

    def handle_blocking(self, req: Request) -> Response:
        req.rt = ResponseType.BLOCKING
        return self.handle(req)

    # -- addressing -----------------------------------------------------------------------------

    def to_cse_relative(self, to: str) -> str:
        """Turn a CSE-relative, SP-relative (/cse-id/...) or absolute (//sp-id/cse-id/...)
        address into a CSE-relative one; other CSEs are not reachable from here."""
        if to.startswith("//"):
            sp, _, rest = to[2:].partition("/")
            if sp != self.config.sp_id:
                raise bad_request(
                    f"SP-ID {sp!r} in the absolute address is not this CSE's "
                    f"service provider ({self.config.sp_id})"
                )
            to = "/" + rest
        if to.startswith("/"):
            cse_id, _, rest = to[1:].partition("/")
            if cse_id != self.config.cse_id:
                raise CSEError(
                    RSC.TARGET_NOT_REACHABLE,
                    f"CSE {cse_id!r} is not this CSE ({self.config.cse_id})",
                )
            if not rest:
                return self.config.cse_name
            return rest
        return to

    def resolve(self, to: str) -> Target:
        rel = self.to_cse_relative(to).strip("/")
        if not rel:
            raise not_found("empty target address")
        segments = rel.split("/")
        if segments[0] == "-":
            segments[0] = self.config.cse_name
        if "fopt" in segments[1:]:
            i = segments.index("fopt", 1)
            group = self._lookup(segments[:i])
            if group.ty != ResourceType.GRP:
                raise not_found(f"{'/'.join(segments[:i])} is not a group: no fanOutPoint")
            return Target(group, fanout_rest="/".join(segments[i + 1 :]))
        if len(segments) > 1 and segments[-1] in VIRTUAL:
            parent = self._lookup(segments[:-1])
            if parent.ty != ResourceType.CNT:
                raise not_found(f"{segments[-1]} exists only under a container")
            cin = self.store.newest_child(
                parent.ri, ResourceType.CIN, oldest=segments[-1] == "ol", now=self.clock()
            )
            if cin is None:
                raise not_found(f"the container {parent.srn} has no contentInstance")
            return Target(cin, virtual=segments[-1], parent=parent)
        return Target(self._lookup(segments))

    def _lookup(self, segments: Sequence[str]) -> Resource:
        if segments[0] == self.config.cse_name:
            res = self.store.get_by_srn("/".join(segments))
        else:
            res = self.store.get(segments[0])
            if res is not None and len(segments) > 1:
                res = self.store.get_by_srn(res.srn + "/" + "/".join(segments[1:]))
        if res is None or self.is_expired(res):
            raise not_found(f"no resource at {'/'.join(segments)}")
        return res

    def resolve_many(
        self, addresses: Iterable[str], ty: ResourceType | None = None
    ) -> list[Resource]:
        """Resources for a list of ri or structured addresses (acpi, mid); unknown ones skipped."""
        out: list[Resource] = []
        for address in addresses:
            try:
                res = self.resolve(address).resource
            except CSEError:
                continue
            if ty is None or res.ty == ty:
                out.append(res)
        return out

    def is_expired(self, res: Resource) -> bool:
        return res.et is not None and res.et <= self.clock()

    # -- representation -------------------------------------------------------------------------

    def attributes(self, res: Resource) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rn": res.rn,
            "ri": res.ri,
            "ty": int(res.ty),
            "pi": res.pi or "",
            "ct": format_ts(res.ct),
            "lt": format_ts(res.lt),
        }
        if res.et is not None:
            out["et"] = format_ts(res.et)
        if res.ty in STATE_TAGGED:
            out["st"] = res.st
        if res.ty == ResourceType.CSEBASE:
            out["ctm"] = format_ts(self.clock())
        out.update({k: v for k, v in res.attrs.items() if not k.startswith("__")})
        return out

    def wrap(self, res: Resource, attrs: dict[str, Any] | None = None) -> dict[str, Any]:
        return {res.tpe: self.attributes(res) if attrs is None else attrs}

    def address(self, res: Resource, drt: int = 1) -> str:
        return res.ri if drt == 2 else res.srn

    # -- CREATE ---------------------------------------------------------------------------------

    def create(self, req: Request, target: Target) -> Response:
        parent = target.resource
        if target.virtual:
            raise not_allowed(f"cannot create a child of the virtual resource {target.virtual}")
        if req.ty is None:
            raise bad_request("CREATE needs the resource type (ty in the Content-Type header)")
        kind = KINDS.get(ResourceType(req.ty)) if req.ty in _TYPE_VALUES else None
        if kind is not None and not kind.creatable:
            raise not_allowed(f"{kind.ty.tpe} resources are created by the CSE only")
        if req.ty != ResourceType.AE:
            # Before the type check: an originator without privilege learns nothing more.
            self.access.check(req.originator, parent, Operation.CREATE, int(req.ty))
        if kind is None or req.ty == ResourceType.CSEBASE:
            raise bad_request(f"resource type {int(req.ty)} cannot be created on this CSE")
        ty = kind.ty
        tpe = kind.wrapper_of(req.pc)
        body = self._content(req, tpe)
        if parent.ty not in kind.parents:
            raise CSEError(
                RSC.INVALID_CHILD_RESOURCE_TYPE,
                f"a {tpe} cannot be created under a {parent.tpe}",
            )
        if ty == ResourceType.AE:
            ri = AEKind.assign_aei(self, req.originator)
            originator = ri
        else:
            ri = kind.rn_prefix + self.new_id()
            originator = req.originator
        values = validate_attributes(kind.attributes_for(tpe), body, create=True, type_name=tpe)
        if values.get("cr", None) is not None:
            raise bad_request("creator (cr) can only be requested with null; the CSE sets it")
        now = self.clock()
        rn = check_rn(values.pop("rn")) if "rn" in values else ri
        et = self._expiration(values.pop("et", None), now)
        attrs = {k: v for k, v in values.items() if v is not None}
        if "cr" in values:
            attrs["cr"] = originator
        if "acpi" in attrs:
            self._check_acpi(attrs["acpi"])
        res = Resource(
            ri=ri,
            ty=ty,
            rn=rn,
            pi=parent.ri,
            srn=f"{parent.srn}/{rn}",
            ct=now,
            lt=now,
            et=et,
            owner=parent.owner,
            creator=originator,
            attrs=attrs,
        )
        kind.on_create(self, req, parent, res, values)
        if ty == ResourceType.CIN:
            write = self.store.create_cin(res, now=now)
            for pruned in write.pruned:
                log.debug("pruned %s from %s", pruned.ri, parent.srn)
        else:
            res = self.store.create(res)
        self.notifier.resource_event(
            parent, NotificationEventType.CREATE_CHILD, res, originator=req.originator
        )
        return self._create_response(req, res)

    def _create_response(self, req: Request, res: Resource) -> Response:
        rcn = req.rcn if req.rcn is not None else ResultContent.ATTRIBUTES
        pc: dict[str, Any] | None
        if rcn == ResultContent.NOTHING:
            pc = None
        elif rcn == ResultContent.HIERARCHICAL_ADDRESS:
            pc = {"m2m:uri": res.srn}
        elif rcn == ResultContent.HIERARCHICAL_ADDRESS_ATTRIBUTES:
            pc = {"m2m:rce": {res.tpe: self.attributes(res), "uri": res.srn}}
        elif rcn == ResultContent.MODIFIED_ATTRIBUTES:
            sent = set((req.pc or {}).get(res.tpe, {}))
            pc = {res.tpe: {k: v for k, v in self.attributes(res).items() if k not in sent}}
        else:
            pc = self.wrap(res)
        return Response(rsc=RSC.CREATED, pc=pc, location=res.srn, ty=res.ty)

    def _content(self, req: Request, tpe: str) -> dict[str, Any]:
        """The body of the one resource object in the content, which must be named `tpe`."""
        pc = req.pc
        if not isinstance(pc, dict) or len(pc) != 1:
            raise bad_request(f"the content must be one object named {tpe}")
        ((key, body),) = pc.items()
        if key != tpe:
            if key in TPE_TO_TYPE:
                raise bad_request(f"the content is a {key} but the request is for a {tpe}")
            raise bad_request(f"the content must be one object named {tpe}, not {key!r}")
        if not isinstance(body, dict):
            raise bad_request(f"{tpe} must be a JSON object")
        return body

    def _expiration(self, et: str | None, now: float) -> float:
        cap = now + self.config.max_expiration_seconds
        if et is None:
            return cap
        value = parse_ts(et)
        if value <= now:
            raise bad_request(f"expirationTime {et} is in the past")
        return min(value, cap)

    def _check_acpi(self, acpi: list[str]) -> None:
        found = self.resolve_many(acpi, ResourceType.ACP)
        if len(found) != len(acpi):
            raise bad_request(
                "accessControlPolicyIDs (acpi) must reference existing "
                "accessControlPolicy resources"
            )

    # -- RETRIEVE -------------------------------------------------------------------------------

    def retrieve(self, req: Request, target: Target) -> Response:
        res = target.resource
        self.access.check(req.originator, res, Operation.RETRIEVE, parent=target.parent)
        if res.ty == ResourceType.CNT:
            res = self.purge_expired_children(res)
        elif res.ty == ResourceType.GRP:
            from m2mcloud.cse.resources.group import refresh_members

            res = refresh_members(self, res)
        elif res.ty == ResourceType.CIN:
            parent = target.parent or self.store.get(res.pi or "")
            if parent is not None and parent.attrs.get("disr"):
                raise not_allowed("the container disables retrieval of its instances (disr)")
        rcn = req.rcn if req.rcn is not None else ResultContent.ATTRIBUTES
        if rcn in (ResultContent.ATTRIBUTES, ResultContent.ORIGINAL_RESOURCE):
            # Non-announced resources are their own original; filter criteria do not apply.
            if res.ty == ResourceType.CIN and "dcnt" in res.attrs:
                return self._count_down_retrieval(res)
            return Response(rsc=RSC.OK, pc=self.wrap(res), ty=res.ty)
        found = self.find(req, res, Operation.RETRIEVE)
        return Response(rsc=RSC.OK, pc=self.with_children(res, found, rcn, req.drt), ty=res.ty)

    def find(self, req: Request, root: Resource, op: Operation) -> list[Resource]:
        """Descendants of `root` matching the filter criteria that the originator may see."""
        fc = req.fc
        types = fc.ty if fc.fo == 1 else []
        found = self.store.descendants(root, max_depth=fc.lvl, types=types, now=self.clock())
        found = [r for r in found if self.matches(r, fc)]
        found = [r for r in found if self.access.allowed(req.originator, r, op)]
        found = self._without_disabled_instances(root, found)
        if req.arp:
            found = self._apply_relative_path(req, found, op)
        return self._page(found, fc)

    def with_children(
        self, res: Resource, found: list[Resource], rcn: ResultContent, drt: int
    ) -> dict[str, Any]:
        """Result content with descendants: references (5/6), a flat list by type (8) or the
        nested tree (4)."""
        if rcn in (
            ResultContent.CHILD_RESOURCE_REFERENCES,
            ResultContent.ATTRIBUTES_CHILD_RESOURCE_REFERENCES,
        ):
            refs = [{"nm": c.rn, "typ": int(c.ty), "val": self.address(c, drt)} for c in found]
            if rcn == ResultContent.CHILD_RESOURCE_REFERENCES:
                return {"m2m:rrl": {"rrf": refs}}
            attrs = self.attributes(res)
            if refs:
                attrs["ch"] = refs
            return {res.tpe: attrs}
        if rcn == ResultContent.CHILD_RESOURCES:
            grouped: dict[str, list[dict[str, Any]]] = {}
            for c in found:
                grouped.setdefault(c.tpe, []).append(self.attributes(c))
            return {res.tpe: grouped}
        # Nested tree: each found resource under its nearest found ancestor (or the root).
        nodes: dict[str, dict[str, Any]] = {res.srn: self.attributes(res)}
        for c in found:  # parents come before children (creation order within a subtree)
            nodes[c.srn] = self.attributes(c)
        for c in sorted(found, key=lambda r: r.depth):
            parent_srn = c.srn.rsplit("/", 1)[0]
            while parent_srn not in nodes:
                parent_srn = parent_srn.rsplit("/", 1)[0]
            nodes[parent_srn].setdefault(c.tpe, []).append(nodes[c.srn])
        return {res.tpe: nodes[res.srn]}

    # -- discovery ------------------------------------------------------------------------------

    def discover(self, req: Request, target: Target) -> Response:
        res = target.resource
        self.access.check(req.originator, res, Operation.DISCOVERY)
        found = self.find(req, res, Operation.DISCOVERY)
        rcn = req.rcn if req.rcn is not None else ResultContent.DISCOVERY_RESULT_REFERENCES
        if rcn == ResultContent.CHILD_RESOURCE_REFERENCES:
            return Response(rsc=RSC.OK, pc=self.with_children(res, found, rcn, req.drt))
        return Response(rsc=RSC.OK, pc={"m2m:uril": [self.address(r, req.drt) for r in found]})

    def _without_disabled_instances(self, root: Resource, found: list[Resource]) -> list[Resource]:
        """contentInstances of a container with disableRetrieval (disr) are not listed."""
        if not any(r.ty == ResourceType.CIN for r in found):
            return found
        disabled: dict[str, bool] = {
            r.ri: bool(r.attrs.get("disr")) for r in [root, *found] if r.ty == ResourceType.CNT
        }
        out = []
        for r in found:
            if r.ty == ResourceType.CIN and r.pi is not None:
                if r.pi not in disabled:
                    parent = self.store.get(r.pi)
                    disabled[r.pi] = bool(parent and parent.attrs.get("disr"))
                if disabled[r.pi]:
                    continue
            out.append(r)
        return out

    def _apply_relative_path(
        self, req: Request, found: list[Resource], op: Operation
    ) -> list[Resource]:
        """applyRelativePath (arp): each match stands for its resource at `<match>/<arp>`;
        matches without one drop out."""
        path = str(req.arp).strip("/")
        targets = self.store.get_many_by_srn([f"{r.srn}/{path}" for r in found])
        by_srn = {t.srn: t for t in targets if not self.is_expired(t)}
        out = []
        for r in found:
            t = by_srn.get(f"{r.srn}/{path}")
            if t is not None and self.access.allowed(req.originator, t, op):
                out.append(t)
        return out

    def _count_down_retrieval(self, cin: Resource) -> Response:
        """deletionCnt (dcnt): the instance answers that many retrievals, then it is deleted."""
        resp = Response(rsc=RSC.OK, pc=self.wrap(cin), ty=cin.ty)
        left = int(cin.attrs["dcnt"]) - 1
        if left <= 0:
            self.delete_resource(cin, originator=self.config.admin_originator)
        else:
            cin.attrs["dcnt"] = left
            self.store.update(cin)
        return resp

    @staticmethod
    def _page(items: list[Resource], fc: FilterCriteria) -> list[Resource]:
        start = fc.ofst or 0
        items = items[start:]
        if fc.lim is not None:
            items = items[: fc.lim]
        return items

    def matches(self, r: Resource, fc: FilterCriteria) -> bool:
        """Filter criteria: values of one condition are OR'ed; conditions are combined with
        filterOperation (fo=1 AND, fo=2 OR)."""
        checks: list[bool] = []
        if fc.ty:
            checks.append(int(r.ty) in fc.ty)
        if fc.lbl:
            labels = r.attrs.get("lbl") or []
            checks.append(any(lbl in labels for lbl in fc.lbl))
        if fc.cty:
            checks.append(r.ty == ResourceType.CIN and r.attrs.get("cnf", "") in fc.cty)
        conditions: list[tuple[Any, Callable[[Any], bool]]] = [
            (fc.cra, lambda v: r.ct > v),
            (fc.crb, lambda v: r.ct < v),
            (fc.ms, lambda v: r.lt > v),
            (fc.us, lambda v: r.lt < v),
            (fc.exa, lambda v: r.et is not None and r.et > v),
            (fc.exb, lambda v: r.et is not None and r.et < v),
            (fc.sts, lambda v: r.ty in STATE_TAGGED and r.st < v),
            (fc.stb, lambda v: r.ty in STATE_TAGGED and r.st > v),
            (fc.sza, lambda v: r.ty == ResourceType.CIN and r.cs >= v),
            (fc.szb, lambda v: r.ty == ResourceType.CIN and r.cs < v),
        ]
        for value, ok in conditions:
            if value is not None:
                checks.append(bool(ok(value)))
        for name, pattern in fc.attrs.items():
            checks.append(_attr_matches(r.attrs.get(name), pattern))
        if not checks:
            return True
        return any(checks) if fc.fo == 2 else all(checks)

    # -- UPDATE ---------------------------------------------------------------------------------

    def update(self, req: Request, target: Target) -> Response:
        res = target.resource
        kind = KINDS[res.ty]
        if res.ty == ResourceType.CSEBASE:
            raise not_allowed("the CSEBase cannot be updated")
        if not kind.updatable:
            raise not_allowed(f"a {res.tpe} cannot be updated")
        body = self._content(req, res.tpe)
        if "acpi" in body:
            if len(body) != 1:
                raise bad_request(
                    "accessControlPolicyIDs (acpi) must be updated on its own, "
                    "without other attributes in the same request"
                )
            if body["acpi"] == []:
                raise bad_request(
                    "accessControlPolicyIDs (acpi) cannot be an empty list; send null to remove it"
                )
            if not self.access.may_change_acpi(req.originator, res):
                raise no_privilege(
                    f"originator {req.originator} may not change the access "
                    f"control policies of {res.srn}"
                )
        else:
            self.access.check(req.originator, res, Operation.UPDATE)
        changes = validate_attributes(
            kind.attributes_for(res.tpe), body, create=False, type_name=res.tpe
        )
        now = self.clock()
        new = res.copy()
        if "et" in changes:
            et = changes.pop("et")
            new.et = (
                self._expiration(et, now)
                if et is not None
                else now + self.config.max_expiration_seconds
            )
        if changes.get("acpi"):
            self._check_acpi(changes["acpi"])
        for name, value in changes.items():
            if value is None:
                new.attrs.pop(name, None)
            else:
                new.attrs[name] = value
        kind.on_update(self, req, new, changes)
        new.lt = now
        new.st = res.st + 1
        new = self.store.update(new)
        current = self.attributes(new)
        sent = {k: current.get(k) for k in body}
        self.notifier.resource_event(
            new, NotificationEventType.UPDATE, new, originator=req.originator, modified=sent
        )
        rcn = req.rcn if req.rcn is not None else ResultContent.ATTRIBUTES
        if rcn == ResultContent.NOTHING:
            return Response(rsc=RSC.UPDATED)
        if rcn == ResultContent.MODIFIED_ATTRIBUTES:
            # What the CSE changed beyond what was sent (lt, st, computed values).
            by_cse = {
                k: v
                for k, v in current.items()
                if k not in body and self.attributes(res).get(k) != v
            }
            return Response(rsc=RSC.UPDATED, pc={new.tpe: by_cse}, ty=new.ty)
        return Response(rsc=RSC.UPDATED, pc=self.wrap(new), ty=new.ty)

    def apply_mia(self, container: Resource) -> None:
        """After maxInstanceAge changed, the instances older than it expire now."""
        mia = container.attrs.get("mia")
        if mia is None:
            return
        now = self.clock()
        for cin in self.store.children(container.ri, ResourceType.CIN):
            if cin.ct + mia <= now:
                self.store.delete(cin)

    def purge_expired_children(self, container: Resource) -> Resource:
        """Delete expired contentInstances of a container now (the sweep would later), so its
        cni/cbs count only live instances. Returns the container as stored afterwards."""
        now = self.clock()
        stale = self.store.expired_children(container.ri, ResourceType.CIN, now)
        if not stale:
            return container
        for cin in stale:
            self.delete_resource(cin, originator=self.config.admin_originator)
        return self.store.get(container.ri) or container

    # -- DELETE ---------------------------------------------------------------------------------

    def delete(self, req: Request, target: Target) -> Response:
        res = target.resource
        if res.ty == ResourceType.CSEBASE:
            raise not_allowed("the CSEBase cannot be deleted")
        self.access.check(req.originator, res, Operation.DELETE)
        rcn = req.rcn if req.rcn is not None else ResultContent.NOTHING
        pc: dict[str, Any] | None = None
        if rcn == ResultContent.ATTRIBUTES:
            pc = self.wrap(res)
        elif rcn in (ResultContent.ATTRIBUTES_CHILD_RESOURCES, ResultContent.CHILD_RESOURCES):
            kids = self.store.descendants(res, max_depth=None, now=self.clock())
            pc = self.with_children(res, kids, rcn, req.drt)
        deleted = self.delete_resource(res, originator=req.originator)
        if not deleted:
            raise not_found(f"{res.srn} was deleted meanwhile")
        return Response(rsc=RSC.DELETED, pc=pc, ty=res.ty if pc else None)

    def delete_resource(self, res: Resource, *, originator: str) -> list[Resource]:
        """Delete a resource with its subtree and send the notifications that go with it."""
        deleted = self.store.delete(res)
        if not deleted:
            return []
        self.notifier.deleted(deleted, originator=originator)
        if res.pi is not None:
            parent = self.store.get(res.pi)
            if parent is not None:
                self.notifier.resource_event(
                    parent, NotificationEventType.DELETE_CHILD, res, originator=originator
                )
        return deleted

    # -- expiry ---------------------------------------------------------------------------------

    def sweep_expired(self) -> int:
        """Delete every expired resource (with its children). Returns how many were deleted."""
        count = 0
        while True:
            batch = self.store.expired(self.clock())
            if not batch:
                return count
            for res in batch:
                count += len(self.delete_resource(res, originator=self.config.admin_originator))


def _attr_matches(value: Any, pattern: str) -> bool:
    """Attribute filter: compare the attribute's text form with a pattern ('*' wildcard)."""
    if value is None:
        return False
    import fnmatch

    values = value if isinstance(value, list) else [value]
    for v in values:
        text = str(v).lower() if isinstance(v, bool) else str(v)
        if fnmatch.fnmatchcase(text, pattern):
            return True
    return False
