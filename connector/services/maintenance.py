"""Maintenance mode: while a restore runs, DSP and management WRITES answer 503 + Retry-After.

The flag lives in Postgres (`connector_meta` key `maintenance`, the durable record) and in Redis
(`connector:{participant}:maintenance`, what every API process reads cheaply; the restore wipes
and reloads `connector_meta`, so the Redis copy carries the flag through it). Either one set means
"on". `MaintenanceFlag` caches the answer for `cache_ttl` seconds, so the middleware costs one
dict lookup per request. Reads (GET/HEAD/OPTIONS) and other paths are never blocked.

Wiring (api/app.py):

    app.add_middleware(MaintenanceMiddleware)            # reads app.state.maintenance
    # in lifespan, once resources are open:
    app.state.maintenance = MaintenanceFlag(resources.pool, resources.redis,
                                            maintenance_key(participant_id))
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
import redis.asyncio as aioredis

from connector.core.errors import UnavailableError
from connector.runtime.logging import get_logger

log = get_logger(__name__)

META_KEY: Final = "maintenance"
REDIS_TTL_SECONDS: Final = 24 * 3600  # Redis is never a source of truth: the key expires
DEFAULT_CACHE_TTL: Final = 1.0
DEFAULT_RETRY_AFTER: Final = 30
WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
GUARDED_PREFIXES: Final = ("/dsp/", "/management/")
#: POSTs that change nothing: the Temporal UI's codec endpoint only decrypts what it is given, and
#: operators need the UI most during a restore.
UNGUARDED_PREFIXES: Final = ("/management/codec/",)


def maintenance_key(participant_id: str) -> str:
    return f"connector:{participant_id}:maintenance"


async def enter(
    conn: asyncpg.Connection | asyncpg.Pool,
    redis: aioredis.Redis | None,
    key: str,
    *,
    reason: str,
    workflow_id: str | None = None,
) -> dict[str, Any]:
    """Switch maintenance on (idempotent). Redis first: it is what the API reads."""
    info = {
        "reason": reason,
        "workflow_id": workflow_id,
        "since": datetime.now(UTC).isoformat(),
    }
    if redis is not None:
        await redis.set(key, json.dumps(info), ex=REDIS_TTL_SECONDS)
    try:
        await conn.execute(
            "INSERT INTO connector_meta (key, value) VALUES ($1, $2::jsonb) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
            META_KEY,
            json.dumps(info),
        )
    except asyncpg.UndefinedTableError:
        # The database is gone (the reason for a restore): Redis carries the flag until the
        # restore recreates connector_meta and sets it again.
        if redis is None:
            raise
    return info


async def leave(
    conn: asyncpg.Connection | asyncpg.Pool, redis: aioredis.Redis | None, key: str
) -> None:
    """Switch maintenance off (idempotent). Postgres first, then the Redis copy."""
    with contextlib.suppress(asyncpg.UndefinedTableError):
        await conn.execute("DELETE FROM connector_meta WHERE key = $1", META_KEY)
    if redis is not None:
        await redis.delete(key)


async def read(
    conn: asyncpg.Connection | asyncpg.Pool, redis: aioredis.Redis | None, key: str
) -> dict[str, Any] | None:
    """The maintenance info when on (either store), else None."""
    if redis is not None:
        with contextlib.suppress(aioredis.RedisError, OSError):
            raw = await redis.get(key)
            if raw is not None:
                value: dict[str, Any] = json.loads(raw)
                return value
    try:
        raw_pg = await conn.fetchval("SELECT value FROM connector_meta WHERE key = $1", META_KEY)
    except asyncpg.UndefinedTableError:
        return None
    if raw_pg is None:
        return None
    found: dict[str, Any] = json.loads(raw_pg) if isinstance(raw_pg, str) else dict(raw_pg)
    return found


class MaintenanceFlag:
    """Cached view of the flag for request paths: at most one lookup per `cache_ttl` seconds.

    Only the first lookup (and the one after `invalidate()`) is awaited by a request; later ones
    run behind the last answer, so no request waits for the flag's stores: while Postgres is hung
    a write would otherwise wait for the flag's lookup and then for its own query, twice the
    database's timeouts before its 503 (issue 14). A change of the flag is seen within
    `cache_ttl` plus one lookup.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis | None,
        key: str,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        retry_after: int = DEFAULT_RETRY_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._key = key
        self._ttl = cache_ttl
        self.retry_after = retry_after
        self._clock = clock
        self._value: dict[str, Any] | None = None
        self._expires = float("-inf")
        self._known = False  # a lookup has answered since the start or the last invalidate()
        self._generation = 0  # bumped by invalidate(): a lookup begun before it is discarded
        self._refresh: asyncio.Task[None] | None = None

    async def current(self) -> dict[str, Any] | None:
        now = self._clock()
        if now < self._expires:
            return self._value
        self._expires = now + self._ttl  # also while looking up: one lookup per period
        if self._known:
            if self._refresh is None:
                self._refresh = asyncio.create_task(self._lookup(self._generation))
                self._refresh.add_done_callback(self._refreshed)
            return self._value
        await self._lookup(self._generation)
        return self._value

    def invalidate(self) -> None:
        self._expires = float("-inf")
        self._known = False
        self._generation += 1

    async def _lookup(self, generation: int) -> None:
        try:
            value = await read(self._pool, self._redis, self._key)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, aioredis.RedisError) as exc:
            # Neither store answers: the request itself will fail on its own; do not add to it.
            log.warning("maintenance flag unreadable", error=str(exc))
            value = None
        if generation == self._generation:
            self._value = value
            self._known = True

    def _refreshed(self, task: asyncio.Task[None]) -> None:
        self._refresh = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("maintenance flag lookup failed", error=str(task.exception()))


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_guarded(method: str, path: str) -> bool:
    return (
        method.upper() in WRITE_METHODS
        and path.startswith(GUARDED_PREFIXES)
        and not path.startswith(UNGUARDED_PREFIXES)
    )


class MaintenanceMiddleware:
    """ASGI middleware: 503 + Retry-After for DSP/management writes while maintenance is on.

    The flag comes from `flag` or, by default, from `app.state.maintenance` (set in lifespan);
    without one the middleware passes everything through.
    """

    def __init__(self, app: ASGIApp, flag: MaintenanceFlag | None = None) -> None:
        self.app = app
        self._flag = flag

    def _resolve(self, scope: Scope) -> MaintenanceFlag | None:
        if self._flag is not None:
            return self._flag
        app = scope.get("app")
        state = getattr(app, "state", None)
        found = getattr(state, "maintenance", None)
        return found if isinstance(found, MaintenanceFlag) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_guarded(scope.get("method", "GET"), scope["path"]):
            await self.app(scope, receive, send)
            return
        flag = self._resolve(scope)
        info = await flag.current() if flag is not None else None
        if info is None or flag is None:
            await self.app(scope, receive, send)
            return
        from starlette.requests import Request

        from connector.http.errors import error_response

        reason = str(info.get("reason") or "maintenance")
        response = error_response(
            Request(scope),
            UnavailableError(f"the connector is in maintenance ({reason}); retry later"),
        )
        response.headers["Retry-After"] = str(flag.retry_after)
        await response(scope, receive, send)
