"""The asyncpg pool, created lazily so a process starts (and says so) while Postgres is down.

Every wait on Postgres is bounded by `database.*` settings (issue 14, "fast, honest failure"):
opening a connection (`connect_timeout_seconds`), waiting for one (`acquire_timeout_seconds`, the
pool's default for every `acquire()` and `fetch*()` that names none), a statement on the server
(`statement_timeout_seconds`) and its answer on the client (`command_timeout`). The errors they
raise become 503 + Retry-After in one place, `connector.http.errors`.
"""

from __future__ import annotations

from typing import Any, Final

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


# asyncpg ships no type information (mypy sees Any): the subclasses are typed by hand.
class BoundedPool(asyncpg.Pool):  # type: ignore[misc]
    """An asyncpg pool whose `acquire()` waits at most `acquire_timeout` unless told otherwise.

    asyncpg's own default is to wait forever, also inside `pool.fetch()` and friends, which take
    no acquire timeout at all: with every connection stuck on a hung server, a request would wait
    for one indefinitely. The release after such an acquire is bounded by the same timeout
    (asyncpg applies the acquire's timeout to the release).
    """

    def __init__(self, *args: Any, acquire_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        return _Acquire(self, self.acquire_timeout if timeout is None else timeout)


#: Added (PEP 678 note) to the socket errors and timeouts of the pool's connections, so the HTTP
#: error mapping can say "database" instead of "a dependency" (connector.http.errors.outage).
POOL_ERROR_NOTE: Final = "raised by a connection of the database pool"


def _note(exc: BaseException | None) -> None:
    if isinstance(exc, OSError) and POOL_ERROR_NOTE not in getattr(exc, "__notes__", ()):
        exc.add_note(POOL_ERROR_NOTE)


class _Acquire(asyncpg.pool.PoolAcquireContext):  # type: ignore[misc]
    __slots__ = ()

    async def __aenter__(self) -> Any:
        try:
            return await super().__aenter__()
        except OSError as exc:  # refused, unreachable, connect or acquire timeout
            _note(exc)
            raise

    async def __aexit__(self, *exc_info: Any) -> None:
        _note(exc_info[1])
        if (
            isinstance(exc_info[1], TimeoutError | asyncpg.InternalClientError)
            and self.connection is not None
        ):
            # A statement outlived command_timeout: the server is hung (or far too slow), and
            # asyncpg would wait up to the acquire timeout for the statement's cancellation
            # before releasing. Or the connection's protocol is broken (its server went away
            # in the middle of an operation). Drop it instead, so the error is answered at
            # once; the pool opens a new one when needed.
            self.connection.terminate()
        await super().__aexit__(*exc_info)


def session_settings(settings: DatabaseSettings) -> dict[str, str]:
    """Server settings of every pool session."""
    if not settings.statement_timeout_seconds:
        return {}
    return {"statement_timeout": str(max(1, round(settings.statement_timeout_seconds * 1000)))}


async def create_pool(settings: DatabaseSettings) -> asyncpg.Pool:
    """A pool that opens connections on demand; health checks notice an outage and recover."""
    # min_size=0 at creation: no connection is attempted here, so a control plane comes up (and
    # reports `database` unhealthy) while Postgres is still starting or temporarily gone.
    # Built like asyncpg.create_pool builds its own (which takes no pool class).
    pool = BoundedPool(
        database_url(settings),
        acquire_timeout=settings.acquire_timeout_seconds,
        min_size=0,
        max_size=settings.pool.max,
        max_queries=50000,
        max_inactive_connection_lifetime=60.0,
        reset=keep_session,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        # Connection arguments:
        timeout=settings.connect_timeout_seconds,
        command_timeout=settings.command_timeout,
        server_settings=session_settings(settings),
    )
    await pool
    return pool
