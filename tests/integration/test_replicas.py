"""Several CSE processes, one PostgreSQL, one Mosquitto: nothing lost, nothing twice — also when
a replica is killed and another is stopped in the middle of the load."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.integration.conftest import CSEProcess
from tests.integration.load import Outcome, container, http_client, mqtt_client, stored_instances
from tests.support import Mosquitto, MQTTPeer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("db_url", ["postgresql"], indirect=True),
]

UNLIMITED = ["cse-in/load/all1", "cse-in/load/all2"]
LIMITED = ["cse-in/load/last1", "cse-in/load/last2"]
MNI = 300


@pytest.fixture
def replicas(
    cse_process: Callable[..., CSEProcess], mosquitto: Mosquitto
) -> Iterator[list[CSEProcess]]:
    env = {
        "M2M_MQTT": "true",
        "M2M_MQTT_HOST": "127.0.0.1",
        "M2M_MQTT_PORT": str(mosquitto.port),
        "M2M_LOG_LEVEL": "WARNING",
        "M2M_DB_POOL_SIZE": "12",
    }
    procs = [cse_process(env=env, ready=False) for _ in range(3)]
    for p in procs:
        p.wait_ready()
    c = procs[0].client
    c.register("load", origin="Cload")
    policy = c.create(
        "cse-in/load",
        1,
        {
            "m2m:acp": {
                "pv": {"acr": [{"acor": ["Cload*"], "acop": 63}]},
                "pvs": {"acr": [{"acor": ["Cload"], "acop": 63}]},
            }
        },
        origin="Cload",
    )
    acpi = [policy["m2m:acp"]["ri"]]
    for path in UNLIMITED + LIMITED:
        attrs = {"rn": path.rsplit("/", 1)[1], "acpi": acpi}
        if path in LIMITED:
            attrs["mni"] = MNI
        assert c.create("cse-in/load", 3, {"m2m:cnt": attrs}).rsc == 2001
    yield procs


def run_load(
    replicas: list[CSEProcess],
    mosquitto: Mosquitto,
    total: int,
    events: dict[int, Callable[[], None]] | None = None,
) -> Outcome:
    """20 clients (10 HTTP spread over the replicas, 10 MQTT) write `total` instances into
    the four containers; `events` maps a progress count to an action (kill, stop)."""
    out = Outcome()
    urls = [p.url for p in replicas]
    containers = UNLIMITED + LIMITED
    per_client = total // 20
    progress = [0]
    lock = threading.Lock()
    pending = dict(sorted((events or {}).items()))

    def on_progress() -> None:
        with lock:
            progress[0] += 1
            due = [k for k in pending if k <= progress[0]]
            actions = [pending.pop(k) for k in due]
        for action in actions:
            action()

    peers = [MQTTPeer(mosquitto.port, f"Cload-m{i}") for i in range(10)]
    threads = [
        threading.Thread(
            target=http_client, args=(f"h{i}", urls, containers, per_client, out, on_progress)
        )
        for i in range(10)
    ]
    threads += [
        threading.Thread(target=mqtt_client, args=(p, containers, per_client, 8, out, on_progress))
        for p in peers
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
    finally:
        for p in peers:
            p.close()
    return out


def check_stored(url: str, out: Outcome) -> None:
    for path in UNLIMITED:
        stored = [c["con"] for c in stored_instances(url, path)]
        acked = {con for con, p in out.acked.items() if p == path}
        assert len(stored) == len(set(stored)), "an instance was stored twice"
        missing = acked - set(stored)
        assert not missing, (
            f"{len(missing)} acknowledged instances lost, e.g. {sorted(missing)[:5]}"
        )
        assert container(url, path)["cni"] == len(stored)
    for path in LIMITED:
        stored = stored_instances(url, path)
        cnt = container(url, path)
        assert cnt["cni"] == len(stored) == MNI
        assert cnt["cbs"] == sum(c["cs"] for c in stored)
        cons = [c["con"] for c in stored]
        assert len(cons) == len(set(cons))
        assert set(cons) <= set(out.acked) | set(out.failed) | set(out.unanswered)


def test_three_replicas_nothing_lost_nothing_twice(
    replicas: list[CSEProcess], mosquitto: Mosquitto
) -> None:
    started = time.monotonic()
    out = run_load(replicas, mosquitto, 10_000)
    elapsed = time.monotonic() - started
    print(
        f"\n10,000 creates over 3 replicas in {elapsed:.1f} s "
        f"({len(out.acked) / elapsed:.0f}/s acknowledged)"
    )
    assert not out.duplicates
    assert not out.unanswered
    assert not out.failed, out.errors[:10]
    assert len(out.acked) == 10_000
    check_stored(replicas[0].url, out)


def test_chaos_sigkill_then_sigterm(replicas: list[CSEProcess], mosquitto: Mosquitto) -> None:
    killed, stopped, survivor = replicas
    stop_result: dict[str, int] = {}

    def kill() -> None:
        killed.proc.send_signal(signal.SIGKILL)

    def stop() -> None:
        threading.Thread(
            target=lambda: stop_result.update(rc=stopped.terminate(timeout=60)), daemon=True
        ).start()

    out = run_load(replicas, mosquitto, 6_000, events={1500: kill, 3500: stop})
    lost_answers = len(out.failed) + len(out.unanswered)
    print(
        f"\nchaos: {len(out.acked)} acknowledged, {len(out.failed)} failed, "
        f"{len(out.unanswered)} unanswered; errors {out.errors[:5]}"
    )
    deadline = time.time() + 60
    while "rc" not in stop_result and time.time() < deadline:
        time.sleep(0.2)
    assert stop_result.get("rc") == 0, "the SIGTERM'd replica did not exit cleanly"
    assert not out.duplicates
    # At most what the killed replica had in flight: 10 HTTP clients (1 each) and the MQTT
    # requests it had taken (8 outstanding per MQTT client, 10 clients).
    assert lost_answers <= 10 + 8 * 10, out.errors[:10]
    check_stored(survivor.url, out)
