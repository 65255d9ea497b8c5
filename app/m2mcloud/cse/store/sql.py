"""SQLAlchemy Core store: SQLite (WAL, the embedded default) and PostgreSQL (the cluster).

One table holds every resource. Common attributes are columns so that addressing, discovery and
expiry are index lookups; type-specific attributes are a JSON text column. Structured names
(`srn`) are stored whole: resolving `cse-in/ae/cnt` is one unique-index lookup, and a subtree is a
range scan (`srn` between `x/` and `x0`, the character after `/`), so `srn` uses byte ordering
(collation "C" on PostgreSQL).

Concurrency: every write is one transaction. Writes that touch a parent's counters lock the
parent row first (SELECT ... FOR UPDATE on PostgreSQL; SQLite write transactions are
BEGIN IMMEDIATE, which serialises writers), so cni/cbs stay exact and contentInstance order (`seq`)
equals commit order with any number of CSE processes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    Row,
    SmallInteger,
    String,
    Table,
    Text,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from m2mcloud.cse.constants import RSC, ResourceType
from m2mcloud.cse.errors import CSEError
from m2mcloud.cse.store.base import STORE_MANAGED, SUBSCRIPTIONS, CinWrite, Resource, Store

log = logging.getLogger(__name__)

metadata = MetaData()
_SrnType = Text().with_variant(Text(collation="C"), "postgresql")
_SeqType = BigInteger().with_variant(Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY = rowid

resources = Table(
    "resources",
    metadata,
    Column("seq", _SeqType, primary_key=True, autoincrement=True),
    Column("ri", String(255), nullable=False, unique=True),
    Column("pi", String(255), nullable=True),
    Column("rn", String(255), nullable=False),
    Column("srn", _SrnType, nullable=False, unique=True),
    Column("ty", SmallInteger, nullable=False),
    Column("depth", SmallInteger, nullable=False),
    Column("ct", Double, nullable=False),
    Column("lt", Double, nullable=False),
    Column("et", Double, nullable=True),
    Column("st", Integer, nullable=False, default=0),
    Column("cs", Integer, nullable=False, default=0),
    Column("owner", String(255), nullable=False, default=""),
    Column("creator", String(255), nullable=False, default=""),
    Column("attrs", Text, nullable=False),
)
Index("ix_resources_children", resources.c.pi, resources.c.ty, resources.c.seq)
Index("ix_resources_et", resources.c.et)
Index("ix_resources_parent_et", resources.c.pi, resources.c.et)  # expired children of one parent
Index("ix_resources_type_srn", resources.c.ty, resources.c.srn)  # discovery by type in a subtree

leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("expires", Double, nullable=False),
)

_COLUMNS = [c for c in resources.c if c.name != "seq"]

_NEVER = float("-inf")
_SCHEMA_LOCK = 0x6D326D  # advisory lock id ("m2m") held while creating the schema


class _Prepared:
    """A statement compiled once for the engine's dialect and run with exec_driver_sql: the hot
    paths (address lookup, contentInstance writes) skip SQLAlchemy's per-call statement building
    and cache-key work, which otherwise costs more than the database itself."""

    def __init__(self, dialect: Any, stmt: Any) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql = str(compiled)
        self.order = list(compiled.positiontup or []) if compiled.positional else None
        # Values bound at build time (e.g. LIMIT 1) that callers do not pass.
        self.fixed = {k: v for k, v in compiled.params.items() if v is not None}

    def params(self, values: dict[str, Any]) -> Any:
        merged = {**self.fixed, **values} if self.fixed else values
        if self.order is None:
            return merged
        return tuple(merged[name] for name in self.order)


def _prepared_statements(dialect: Any) -> dict[str, _Prepared]:
    c = resources.c
    alive = or_(c.et.is_(None), c.et > bindparam("now"))
    of_type = and_(c.pi == bindparam("pi"), c.ty == bindparam("ty"), alive)
    stmts = {
        "by_ri": select(resources).where(c.ri == bindparam("ri")),
        "by_srn": select(resources).where(c.srn == bindparam("srn")),
        "lock": select(resources).where(c.ri == bindparam("ri")).with_for_update(),
        "newest": select(resources).where(of_type).order_by(c.seq.desc()).limit(1),
        "oldest": select(resources).where(of_type).order_by(c.seq).limit(1),
        "children_ty": select(resources).where(of_type).order_by(c.seq),
        "expired_children": select(resources)
        .where(c.pi == bindparam("pi"), c.ty == bindparam("ty"), c.et <= bindparam("now"))
        .order_by(c.seq),
        "insert": insert(resources)
        .values({col.name: bindparam(col.name) for col in _COLUMNS})
        .returning(c.seq),
        "write": update(resources)
        .where(c.ri == bindparam("key_ri"))
        .values(lt=bindparam("lt"), et=bindparam("et"), st=bindparam("st"), attrs=bindparam("a")),
    }
    prepared = {name: _Prepared(dialect, stmt) for name, stmt in stmts.items()}
    prepared["count_in"] = _count_in_sql(dialect)
    return prepared


def open_store(url: str, *, pool_size: int = 10) -> SqlStore:
    """Create the engine for `url` (SQLite file or PostgreSQL), create tables, return the store."""
    store = SqlStore(url, pool_size=pool_size)
    store.init_schema()
    return store


class SqlStore(Store):
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                connect_args={"check_same_thread": False, "timeout": 30},
            )
            event.listen(self.engine, "connect", _sqlite_on_connect)
            # Every write of this process goes through one connection (writers are serialised
            # anyway): a connection's page cache is dropped whenever another connection commits,
            # so one writer keeps its cache warm instead of re-reading B-tree pages from the WAL.
            self.write_engine = create_engine(
                url,
                pool_size=1,
                max_overflow=0,
                connect_args={"check_same_thread": False, "timeout": 30},
            )
            event.listen(self.write_engine, "connect", _sqlite_on_connect)
        else:
            self.engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size)
            self.write_engine = self.engine
        # Single-statement reads need no transaction: on PostgreSQL a second engine in
        # autocommit saves the BEGIN/ROLLBACK round trips of every lookup.
        self.read_engine = (
            self.engine
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._sql = _prepared_statements(self.engine.dialect)
        self._writers: threading.Lock | contextlib.nullcontext[None] = (
            threading.Lock() if self.is_sqlite else contextlib.nullcontext()
        )
        # Prepared statements run on the DBAPI cursor, which raises the driver's own errors.
        self._conflicts: tuple[type[Exception], ...] = (
            IntegrityError,
            self.engine.dialect.loaded_dbapi.IntegrityError,
        )

    # -- plumbing -----------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        # SQLite has one writer at a time; threads of this process queue on a lock instead of
        # in SQLite's busy handler, which sleeps in steps of up to 100 ms (latency spikes).
        # SQLite writers take the write lock up front (BEGIN IMMEDIATE: no deadlocking upgrade
        # from a read lock); issued on the DBAPI connection, it costs one call, not an event
        # dispatch plus a SQLAlchemy execution. Commit/rollback still go through `conn.begin()`.
        with self._writers, self.write_engine.connect() as conn, conn.begin():
            if self.is_sqlite:
                conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.read_engine.connect() as conn:
            yield conn

    def _run(self, conn: Connection, name: str, **values: Any) -> list[tuple[Any, ...]]:
        """Run a prepared statement on the connection's DBAPI cursor; rows as plain tuples.
        (Same connection and transaction as `conn`, without SQLAlchemy's result machinery.)"""
        stmt = self._sql[name]
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(stmt.sql, stmt.params(values))
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            cursor.close()

    def _one(self, name: str, **values: Any) -> Resource | None:
        with self._read() as conn:
            rows = self._run(conn, name, **values)
        return _from_tuple(rows[0]) if rows else None

    def _insert(self, conn: Connection, r: Resource) -> int:
        return int(self._run(conn, "insert", **_values(r))[0][0])

    def _write_row(self, conn: Connection, r: Resource) -> None:
        attrs = json.dumps(r.attrs, separators=(",", ":"))
        self._run(conn, "write", key_ri=r.ri, lt=r.lt, et=r.et, st=r.st, a=attrs)

    def _lock(self, conn: Connection, ri: str) -> Resource | None:
        rows = self._run(conn, "lock", ri=ri)
        return _from_tuple(rows[0]) if rows else None

    def init_schema(self) -> None:
        """Create the tables; safe when several replicas start on a new database at once
        (CREATE TABLE is not atomic with its existence check: serialise it on a lock)."""
        with self._write() as conn:
            if not self.is_sqlite:  # SQLite: the write transaction (BEGIN IMMEDIATE) serialises
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
            metadata.create_all(conn)

    def ping(self) -> None:
        with self._read() as conn:
            conn.exec_driver_sql("SELECT 1").scalar()

    def reset(self) -> None:
        with self._write() as conn:
            conn.execute(delete(resources))
            conn.execute(delete(leases))

    def close(self) -> None:
        self.engine.dispose()
        self.write_engine.dispose()

    # -- reads --------------------------------------------------------------------------------

    def get(self, ri: str) -> Resource | None:
        return self._one("by_ri", ri=ri)

    def get_by_srn(self, srn: str) -> Resource | None:
        return self._one("by_srn", srn=srn)

    def get_many(self, ris: Sequence[str]) -> list[Resource]:
        if not ris:
            return []
        with self._read() as conn:
            rows = conn.execute(select(resources).where(resources.c.ri.in_(list(ris)))).all()
        return [_to_resource(r) for r in rows]

    def get_many_by_srn(self, srns: Sequence[str]) -> list[Resource]:
        if not srns:
            return []
        with self._read() as conn:
            rows = conn.execute(select(resources).where(resources.c.srn.in_(list(srns)))).all()
        return [_to_resource(r) for r in rows]

    def children(
        self, pi: str, ty: ResourceType | None = None, *, now: float | None = None
    ) -> list[Resource]:
        with self._read() as conn:
            if ty is not None:
                now_value = _NEVER if now is None else now
                return [
                    _from_tuple(t)
                    for t in self._run(conn, "children_ty", pi=pi, ty=int(ty), now=now_value)
                ]
            else:
                q = _alive(select(resources).where(resources.c.pi == pi), now)
                rows = conn.execute(q.order_by(resources.c.seq)).all()
        return [_to_resource(r) for r in rows]

    def expired_children(self, pi: str, ty: ResourceType, now: float) -> list[Resource]:
        with self._read() as conn:
            rows = self._run(conn, "expired_children", pi=pi, ty=int(ty), now=now)
        return [_from_tuple(t) for t in rows]

    def newest_child(
        self, pi: str, ty: ResourceType, *, oldest: bool = False, now: float | None = None
    ) -> Resource | None:
        now_value = _NEVER if now is None else now
        return self._one("oldest" if oldest else "newest", pi=pi, ty=int(ty), now=now_value)

    def descendants(
        self,
        root: Resource,
        *,
        max_depth: int | None,
        types: Iterable[int] = (),
        now: float | None = None,
    ) -> list[Resource]:
        q = select(resources).where(*_subtree(root.srn))
        if max_depth is not None:
            q = q.where(resources.c.depth <= root.depth + max_depth)
        types = list(types)
        if types:
            q = q.where(resources.c.ty.in_(types))
        q = _alive(q, now).order_by(resources.c.seq)
        with self._read() as conn:
            return [_to_resource(r) for r in conn.execute(q).all()]

    def expired(self, now: float, limit: int = 500) -> list[Resource]:
        q = (
            select(resources)
            .where(resources.c.et.is_not(None), resources.c.et <= now)
            .order_by(resources.c.depth, resources.c.seq)
            .limit(limit)
        )
        with self._read() as conn:
            return [_to_resource(r) for r in conn.execute(q).all()]

    # -- writes -------------------------------------------------------------------------------

    def create(self, resource: Resource) -> Resource:
        try:
            with self._write() as conn:
                # Holding the parent's row lock, no concurrent delete of the parent (which locks
                # its whole subtree first) can miss this child and leave it orphaned.
                parent = self._lock(conn, resource.pi) if resource.pi else None
                if resource.pi and parent is None:
                    raise CSEError(RSC.NOT_FOUND, "the parent resource no longer exists")
                seq = self._insert(conn, resource)
                if parent is not None and resource.ty == ResourceType.SUB:
                    parent.attrs[SUBSCRIPTIONS] = int(parent.attrs.get(SUBSCRIPTIONS, 0)) + 1
                    self._write_row(conn, parent)
        except self._conflicts:
            raise _conflict(resource) from None
        return resource.copy(seq=seq)

    def create_cin(self, cin: Resource, *, now: float) -> CinWrite:
        assert cin.pi is not None
        try:
            with self._write() as conn:
                # One statement locks the container and counts the new instance in.
                rows = self._run(conn, "count_in", key_ri=cin.pi, cs=cin.cs)
                if not rows:
                    raise CSEError(RSC.NOT_FOUND, "the parent container no longer exists")
                container = _from_tuple(rows[0])
                cin.seq = self._insert(conn, cin)
                pruned = []
                if _over_limits(container):
                    pruned = _prune(conn, container, now)
                    self._write_row(conn, container)
        except self._conflicts:
            raise _conflict(cin) from None
        return CinWrite(container=container, pruned=pruned)

    def update(self, resource: Resource) -> Resource:
        with self._write() as conn:
            current = self._lock(conn, resource.ri)
            if current is None:
                raise CSEError(RSC.NOT_FOUND, f"resource {resource.ri} no longer exists")
            # Counters belong to the store: keep the committed values, not the caller's copy.
            for key in STORE_MANAGED:
                if key in current.attrs:
                    resource.attrs[key] = current.attrs[key]
                else:
                    resource.attrs.pop(key, None)
            if resource.ty == ResourceType.CNT:
                _prune(conn, resource, resource.lt)
            self._write_row(conn, resource)
        return resource

    def delete(self, resource: Resource) -> list[Resource]:
        with self._write() as conn:
            parent = None
            if resource.ty in (ResourceType.CIN, ResourceType.SUB) and resource.pi:
                parent = self._lock(conn, resource.pi)
            subtree = or_(resources.c.ri == resource.ri, and_(*_subtree(resource.srn)))
            # Lock the subtree (parents first), waiting for writers that are adding children;
            # then read it again with a fresh snapshot, which includes what they committed.
            conn.execute(
                select(resources.c.seq).where(subtree).order_by(resources.c.depth).with_for_update()
            ).all()
            q = select(resources).where(subtree)
            rows = [_to_resource(r) for r in conn.execute(q.order_by(resources.c.depth)).all()]
            if not rows or rows[0].ri != resource.ri:
                return []
            conn.execute(delete(resources).where(resources.c.ri.in_([r.ri for r in rows])))
            if parent is not None and resource.ty == ResourceType.CIN:
                parent.attrs["cni"] = max(0, int(parent.attrs.get("cni", 0)) - 1)
                parent.attrs["cbs"] = max(0, int(parent.attrs.get("cbs", 0)) - rows[0].cs)
                self._write_row(conn, parent)
            elif parent is not None:
                parent.attrs[SUBSCRIPTIONS] = max(0, int(parent.attrs.get(SUBSCRIPTIONS, 0)) - 1)
                self._write_row(conn, parent)
        return rows

    def try_lease(self, name: str, holder: str, ttl: float, now: float) -> bool:
        try:
            with self._write() as conn:
                row = conn.execute(
                    select(leases).where(leases.c.name == name).with_for_update()
                ).first()
                if row is None:
                    conn.execute(insert(leases).values(name=name, holder=holder, expires=now + ttl))
                    return True
                if row.holder != holder and row.expires > now:
                    return False
                conn.execute(
                    update(leases)
                    .where(leases.c.name == name)
                    .values(holder=holder, expires=now + ttl)
                )
                return True
        except IntegrityError:
            return False


# -- helpers ----------------------------------------------------------------------------------


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see SqlStore._write)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    # Switching a new database to WAL needs an exclusive lock, and SQLite answers "database is
    # locked" at once, without its busy handler, when another process holds a write lock then
    # (replicas starting together): retry until one switch has happened; WAL is then persistent.
    deadline = time.monotonic() + 30
    delay = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _alive(q: Any, now: float | None) -> Any:
    if now is None:
        return q
    return q.where(or_(resources.c.et.is_(None), resources.c.et > now))


def _subtree(srn: str) -> list[Any]:
    return [resources.c.srn > srn + "/", resources.c.srn < srn + "0"]


_COLUMN_NAMES = [c.name for c in resources.c]
assert _COLUMN_NAMES == [
    "seq",
    "ri",
    "pi",
    "rn",
    "srn",
    "ty",
    "depth",
    "ct",
    "lt",
    "et",
    "st",
    "cs",
    "owner",
    "creator",
    "attrs",
], "update _from_tuple with the table"


def _from_tuple(t: tuple[Any, ...]) -> Resource:
    """A row of `select(resources)` from a DBAPI cursor (column order of the table)."""
    return Resource(
        ri=t[1],
        ty=ResourceType(t[5]),
        rn=t[3],
        pi=t[2],
        srn=t[4],
        ct=t[7],
        lt=t[8],
        et=t[9],
        st=t[10],
        cs=t[11],
        owner=t[12],
        creator=t[13],
        attrs=json.loads(t[14]),
        seq=t[0],
    )


def _to_resource(row: Row[Any]) -> Resource:
    m = row._mapping
    return Resource(
        ri=m["ri"],
        ty=ResourceType(m["ty"]),
        rn=m["rn"],
        pi=m["pi"],
        srn=m["srn"],
        ct=m["ct"],
        lt=m["lt"],
        et=m["et"],
        st=m["st"],
        cs=m["cs"],
        owner=m["owner"],
        creator=m["creator"],
        attrs=json.loads(m["attrs"]),
        seq=m["seq"],
    )


def _values(r: Resource) -> dict[str, Any]:
    return {
        "ri": r.ri,
        "pi": r.pi,
        "rn": r.rn,
        "srn": r.srn,
        "ty": int(r.ty),
        "depth": r.depth,
        "ct": r.ct,
        "lt": r.lt,
        "et": r.et,
        "st": r.st,
        "cs": r.cs,
        "owner": r.owner,
        "creator": r.creator,
        "attrs": json.dumps(r.attrs, separators=(",", ":")),
    }


def _over_limits(container: Resource) -> bool:
    attrs = container.attrs
    mni, mbs = attrs.get("mni"), attrs.get("mbs")
    return (mni is not None and int(attrs.get("cni", 0)) > mni) or (
        mbs is not None and int(attrs.get("cbs", 0)) > mbs
    )


def _count_in_sql(dialect: Any) -> _Prepared:
    """UPDATE ... RETURNING that adds one instance of `cs` bytes to a container's cni/cbs inside
    the database (JSON functions of each dialect): lock, count and read in one round trip."""
    returning = ", ".join(c.name for c in resources.c)
    if dialect.name == "postgresql":
        sql = (
            "UPDATE resources SET attrs = (attrs::jsonb || jsonb_build_object("
            "'cni', COALESCE((attrs::jsonb->>'cni')::bigint, 0) + 1, "
            "'cbs', COALESCE((attrs::jsonb->>'cbs')::bigint, 0) + %(cs)s))::text "
            f"WHERE ri = %(key_ri)s RETURNING {returning}"
        )
    else:
        sql = (
            "UPDATE resources SET attrs = json_set(attrs, "
            "'$.cni', COALESCE(json_extract(attrs, '$.cni'), 0) + 1, "
            "'$.cbs', COALESCE(json_extract(attrs, '$.cbs'), 0) + ?) "
            f"WHERE ri = ? RETURNING {returning}"
        )
    prepared = _Prepared.__new__(_Prepared)
    prepared.sql = sql
    prepared.order = None if dialect.name == "postgresql" else ["cs", "key_ri"]
    prepared.fixed = {}
    return prepared


def _prune(conn: Connection, container: Resource, now: float) -> list[Resource]:
    """Drop the oldest contentInstances until cni <= mni and cbs <= mbs; adjust the counters."""
    attrs = container.attrs
    mni, mbs = attrs.get("mni"), attrs.get("mbs")
    cni, cbs = int(attrs.get("cni", 0)), int(attrs.get("cbs", 0))

    def over() -> bool:
        return (mni is not None and cni > mni) or (mbs is not None and cbs > mbs)

    pruned: list[Resource] = []
    while over():
        batch = max(cni - mni, 1) if mni is not None and cni > mni else 16
        rows = conn.execute(
            select(resources)
            .where(resources.c.pi == container.ri, resources.c.ty == int(ResourceType.CIN))
            .order_by(resources.c.seq)
            .limit(batch)
        ).all()
        if not rows:
            break
        doomed: list[Resource] = []
        for row in rows:
            if not over():
                break
            r = _to_resource(row)
            doomed.append(r)
            cni -= 1
            cbs -= r.cs
        conn.execute(delete(resources).where(resources.c.ri.in_([r.ri for r in doomed])))
        pruned.extend(doomed)
    attrs["cni"], attrs["cbs"] = max(cni, 0), max(cbs, 0)
    return pruned


def _conflict(r: Resource) -> CSEError:
    return CSEError(RSC.CONFLICT, f"a resource named {r.rn!r} already exists under {r.pi}")
