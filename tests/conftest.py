from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from m2mcloud.cse.app import Runtime, build_runtime
from m2mcloud.cse.config import CSEConfig
from tests.support import (
    M2MClient,
    Mosquitto,
    NotificationReceiver,
    PostgresCluster,
    falcon_transport,
)

ENGINES = ["sqlite", "postgresql"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """End-to-end tests build real clusters (tens of minutes): they run when asked for
    (`M2M_E2E=1`, see docs/cluster.md), and the default run's summary says why they did not."""
    if os.environ.get("M2M_E2E") == "1":
        return
    skip = pytest.mark.skip(
        reason="e2e: builds a real cluster on this machine; run with M2M_E2E=1 (docs/cluster.md)"
    )
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    cluster = PostgresCluster(Path("/tmp") / f"m2m-pg-{os.getpid()}")
    try:
        cluster.start()
    except (FileNotFoundError, OSError) as exc:
        if os.environ.get("M2M_REQUIRE_SERVICES") == "1":
            raise
        pytest.skip(f"PostgreSQL not available ({exc}); run the README test command to install")
    yield cluster
    cluster.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real Mosquitto broker on a free port, anonymous access, stopped after the test."""
    broker = Mosquitto(tmp_path / "mosquitto")
    try:
        broker.start()
    except FileNotFoundError as exc:
        if os.environ.get("M2M_REQUIRE_SERVICES") == "1":
            raise
        pytest.skip(f"mosquitto not available ({exc}); run the README test command to install")
    yield broker
    broker.cleanup()


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cse.sqlite'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    url = cluster.create_database()
    yield url
    cluster.drop_database(url)


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> CSEConfig:
    return CSEConfig(
        data_dir=str(tmp_path),
        db_url=db_url,
        expiry_interval=0.5,
        notify_retries=2,
        notify_timeout=2.0,
        sp_id="m2mcloud.test",
    )


@pytest.fixture
def runtime(config: CSEConfig) -> Iterator[Runtime]:
    rt = build_runtime(config)
    rt.start_background()
    yield rt
    rt.stop_background(timeout=2)
    rt.store.close()


@pytest.fixture
def client(runtime: Runtime) -> M2MClient:
    return M2MClient(falcon_transport(runtime.app))


@pytest.fixture
def receiver() -> Iterator[NotificationReceiver]:
    r = NotificationReceiver()
    yield r
    r.close()


@pytest.fixture
def ae(client: M2MClient) -> dict[str, Any]:
    """A registered AE 'app' with originator Capp and a container 'data' under it."""
    reply = client.register("app", origin="Capp")
    cnt = client.create("cse-in/app", 3, {"m2m:cnt": {"rn": "data"}}, origin="Capp")
    assert cnt.rsc == 2001, cnt.body
    return {"aei": reply["m2m:ae"]["aei"], "cnt": cnt["m2m:cnt"]}
