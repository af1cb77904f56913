"""The asyncpg pool, created lazily so a process starts (and says so) while Postgres is down."""

from __future__ import annotations

import asyncpg

from connector.settings import DatabaseSettings


def database_url(settings: DatabaseSettings) -> str:
    if settings.url is None:
        raise ValueError("database.url is not set (connector up sets it for the embedded server)")
    return settings.url.get_secret_value()


async def keep_session(connection: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing beyond asyncpg's own (roll back an open
    transaction, drop listeners).

    asyncpg's default sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`
    on every release: one more round trip per query, for session state we never leave behind
    (no session SET, LISTEN, WITH HOLD cursor or advisory lock outlives a statement; the
    migrator's lock is released in its `finally`).
    """


async def create_pool(settings: DatabaseSettings) -> asyncpg.Pool:
    """A pool that opens connections on demand; health checks notice an outage and recover."""
    # min_size=0 at creation: no connection is attempted here, so a control plane comes up (and
    # reports `database` unhealthy) while Postgres is still starting or temporarily gone.
    pool = await asyncpg.create_pool(
        database_url(settings),
        min_size=0,
        max_size=settings.pool.max,
        command_timeout=settings.command_timeout,
        max_inactive_connection_lifetime=60.0,
        reset=keep_session,
    )
    return pool
