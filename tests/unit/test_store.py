"""Store guarantees the replicas rely on, on both engines."""

from __future__ import annotations

import threading

from m2mcloud.cse.app import Runtime
from m2mcloud.cse.lifecycle import ExpirySweeper
from m2mcloud.cse.store import open_store
from tests.support import M2MClient


def test_lease_has_one_holder_at_a_time(runtime: Runtime, db_url: str) -> None:
    other = open_store(db_url)
    try:
        assert runtime.store.try_lease("sweep", "a", ttl=10, now=100)
        assert not other.try_lease("sweep", "b", ttl=10, now=105)  # a holds it
        assert runtime.store.try_lease("sweep", "a", ttl=10, now=105)  # a renews
        assert not other.try_lease("sweep", "b", ttl=10, now=114)
        assert other.try_lease("sweep", "b", ttl=10, now=116)  # a's lease ran out
        assert not runtime.store.try_lease("sweep", "a", ttl=10, now=117)
    finally:
        other.close()


def test_only_the_lease_holder_sweeps(runtime: Runtime, db_url: str, client: M2MClient) -> None:
    second = open_store(db_url)
    try:
        from m2mcloud.cse.core import CSE

        other_cse = CSE(runtime.config, second)
        mine = ExpirySweeper(runtime.cse, 60, "replica-a")
        theirs = ExpirySweeper(other_cse, 60, "replica-b")
        assert mine.run_once() == 0  # takes the lease, nothing expired yet
        assert theirs.run_once() == 0 and not second.try_lease(
            "expiry-sweep", "replica-b", 60, runtime.cse.clock()
        )
    finally:
        second.close()


def test_concurrent_creates_keep_counters_exact(runtime: Runtime, client: M2MClient) -> None:
    client.register("c", origin="Cc")
    client.create("cse-in/c", 3, {"m2m:cnt": {"rn": "n", "mni": 50}}, origin="Cc")
    errors: list[int] = []

    def writer(k: int) -> None:
        for i in range(40):
            r = client.create("cse-in/c/n", 4, {"m2m:cin": {"con": f"{k}-{i}"}}, origin="Cc")
            if r.rsc != 2001:
                errors.append(r.rsc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    cnt = client.retrieve("cse-in/c/n", origin="Cc")["m2m:cnt"]
    stored = client.retrieve("cse-in/c/n", origin="Cc", params={"rcn": "8"})["m2m:cnt"]["m2m:cin"]
    assert cnt["cni"] == len(stored) == 50
    assert cnt["cbs"] == sum(c["cs"] for c in stored)
    newest = client.retrieve("cse-in/c/n/la", origin="Cc")["m2m:cin"]
    assert newest["ri"] == stored[-1]["ri"]


def test_no_orphans_when_a_subtree_is_deleted_under_writers(
    runtime: Runtime, db_url: str, client: M2MClient
) -> None:
    from sqlalchemy import create_engine, text

    for round_ in range(3):
        rn = f"busy{round_}"
        client.register(rn, origin=f"C{rn}")
        client.create(f"cse-in/{rn}", 3, {"m2m:cnt": {"rn": "c"}}, origin=f"C{rn}")
        stop = threading.Event()

        def writer(name: str = rn, stop: threading.Event = stop) -> None:
            while not stop.is_set():
                r = client.create(
                    f"cse-in/{name}/c", 4, {"m2m:cin": {"con": "x"}}, origin=f"C{name}"
                )
                if r.rsc == 4004:
                    return

        threads = [threading.Thread(target=writer) for _ in range(4)]
        for t in threads:
            t.start()
        client.delete(f"cse-in/{rn}")
        stop.set()
        for t in threads:
            t.join()
    engine = create_engine(db_url)
    with engine.connect() as conn:
        orphans = conn.execute(
            text(
                "SELECT count(*) FROM resources r WHERE r.pi IS NOT NULL AND NOT EXISTS "
                "(SELECT 1 FROM resources p WHERE p.ri = r.pi)"
            )
        ).scalar()
    engine.dispose()
    assert orphans == 0


def test_replicas_starting_at_once_on_a_new_database(db_url: str) -> None:
    """Several processes' first start: schema creation must not collide (it did on
    PostgreSQL: duplicate key in pg_type from concurrent CREATE TABLE)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.begin() as conn:  # start from an empty database
        conn.execute(text("DROP TABLE IF EXISTS resources"))
        conn.execute(text("DROP TABLE IF EXISTS leases"))
    engine.dispose()
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        try:
            barrier.wait()
            open_store(db_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
