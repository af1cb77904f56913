"""A Redis client that fails fast while Redis is down or hung (issue 14).

Each command is bounded by `redis.socket_timeout_seconds` (its answer),
`redis.connect_timeout_seconds` (a new connection) and `redis.pool_timeout_seconds` (a free
connection). That alone still costs a request one timeout per command it sends, and a DSP request
sends up to four (maintenance flag, DID cache read and write, replay set). So once a command has
timed out or found Redis unreachable, `RedisOutage` fails every command AT ONCE with a
`ConnectionError` for `redis.fail_fast_seconds`; the first command after that period tries Redis
again. Callers treat that error like any other Redis error: the replay set fails closed (503),
the caches and the rate limiter degrade.

Only the outage kinds trip it (connection refused or lost, timeouts). An error Redis answers
with (a wrong type, a script error) says nothing about its availability, and neither does a
request that found no free connection within `redis.pool_timeout_seconds`: that is a burst, and
refusing everyone for a while would make it worse.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, MutableMapping
from typing import Any, Final

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["OUTAGE_ERRORS", "FailFastPipeline", "FailFastRedis", "RedisOutage"]

#: What an unreachable or hung Redis raises (redis-py wraps socket errors; OSError stays for
#: the few it does not). AuthenticationError and BusyLoadingError are ConnectionErrors too.
OUTAGE_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, OSError)
POOL_EXHAUSTED: Final = "No connection available."


class RedisOutage:
    """Remembers the last outage of one Redis for `hold` seconds (0 = never remembers)."""

    def __init__(self, hold: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._hold = hold
        self._clock = clock
        self._until = -math.inf
        self._cause = ""

    def check(self) -> None:
        """Raises:
        RedisConnectionError: Redis failed less than `hold` seconds ago (not tried)."""
        left = self._until - self._clock()
        if left > 0:
            raise RedisConnectionError(
                f"Redis unavailable ({self._cause}); not tried again for {left:.1f} s"
            )

    def failed(self, exc: BaseException) -> None:
        if self._hold > 0 and not _pool_exhausted(exc):
            self._until = self._clock() + self._hold
            self._cause = f"{type(exc).__name__}: {exc}"[:200]


def _pool_exhausted(exc: BaseException) -> bool:
    # redis-py's BlockingConnectionPool says so only in the message of a ConnectionError.
    return isinstance(exc, RedisConnectionError) and str(exc) == POOL_EXHAUSTED


class FailFastRedis(aioredis.Redis):
    """`redis.asyncio.Redis` whose commands and pipelines consult `outage` first.

    Owns its pool (closed with the client), like `Redis.from_pool`."""

    def __init__(
        self, connection_pool: aioredis.ConnectionPool, outage: RedisOutage | None = None
    ) -> None:
        super().__init__(connection_pool=connection_pool)
        self.auto_close_connection_pool = True
        self.outage = outage or RedisOutage(0)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.outage.check()
        try:
            # redis-py leaves this method unannotated.
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except OUTAGE_ERRORS as exc:
            self.outage.failed(exc)
            raise

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return FailFastPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint, self.outage
        )


class FailFastPipeline(Pipeline):
    """A pipeline of a `FailFastRedis`: its `execute` consults the same outage."""

    def __init__(
        self,
        connection_pool: aioredis.ConnectionPool,
        response_callbacks: MutableMapping[str | bytes, Any],
        transaction: bool,
        shard_hint: str | None,
        outage: RedisOutage,
    ) -> None:
        super().__init__(connection_pool, response_callbacks, transaction, shard_hint)
        self.outage = outage

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        self.outage.check()
        try:
            return await super().execute(raise_on_error)
        except OUTAGE_ERRORS as exc:
            self.outage.failed(exc)
            raise
