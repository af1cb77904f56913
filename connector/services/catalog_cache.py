"""The catalog's Redis cache: the catalog *generation*, cached pages, and a watch that keeps the
generation in process.

Every management write bumps the generation (`bump`); pages are cached under a key that carries
it, so a bump makes every older page unreachable. Reading the generation from Redis on every
catalog request cost a round trip per request, about a fifth of the control plane's CPU on the
catalog's hot path. With `watch()` running, the process keeps the generation itself:

* `bump` publishes on `generation_channel(participant)` after the increment (one transaction),
  and the writing process takes the new value at once (a write is visible to its own next read);
* the watch task subscribes to that channel and, on each message or every `RECHECK_SECONDS`,
  reads the generation again. The message carries no value on purpose: a re-read under the lock
  cannot be overtaken by an older answer, and a value from before a Redis restart cannot come
  back;
* while the subscription is not confirmed (start, reconnect, Redis down) the known generation is
  None and every request reads Redis as before. A dropped connection is noticed at once; one
  that hangs silently at the latest by the next re-read, so another replica's write reaches
  this process's pages within `RECHECK_SECONDS` even then (normally within a millisecond).

Redis is never required: any Redis failure opens a short circuit (`REDIS_RETRY_AFTER`) during
which reads return None and the catalog is built from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Final, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from connector.runtime.logging import get_logger

__all__ = [
    "RECHECK_SECONDS",
    "REDIS_RETRY_AFTER",
    "CatalogCache",
    "generation_channel",
    "generation_key",
    "page_key",
]

log = get_logger(__name__)

REDIS_KEY_ROOT: Final = "connector"
CATALOG_KIND: Final = "catalog"
GENERATION: Final = "generation"
REDIS_RETRY_AFTER: Final = 5.0  # seconds without Redis after a failure
RECHECK_SECONDS: Final = 5.0  # the watch re-reads the generation at least this often
_RECONNECT_SECONDS: Final = 1.0
_POLL_SECONDS: Final = 0.5  # how long a stopped watch may linger (see stop_watch)

_T = TypeVar("_T")


def generation_key(participant_id: str) -> str:
    return f"{REDIS_KEY_ROOT}:{participant_id}:{CATALOG_KIND}:{GENERATION}"


def generation_channel(participant_id: str) -> str:
    return f"{REDIS_KEY_ROOT}:{participant_id}:{CATALOG_KIND}:{GENERATION}:changed"


def page_key(participant_id: str, generation: int, caller_class: str, page: str) -> str:
    return f"{REDIS_KEY_ROOT}:{participant_id}:{CATALOG_KIND}:{generation}:{caller_class}:{page}"


class CatalogCache:
    """Redis access that never fails a request: errors open a short circuit and return None."""

    def __init__(self, redis: Redis, participant_id: str, ttl: timedelta) -> None:
        self._redis = redis
        self._participant = participant_id
        self._key = generation_key(participant_id)
        self._ttl = int(ttl.total_seconds())
        self._down_until = 0.0
        self._known: int | None = None  # set only while the watch is subscribed
        self._subscribed = False
        self._lock = asyncio.Lock()
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False

    async def _call(self, what: str, op: Callable[[], Awaitable[_T]]) -> _T | None:
        if time.monotonic() < self._down_until:
            return None
        try:
            return await op()
        except (RedisError, OSError, TimeoutError) as exc:
            self._down_until = time.monotonic() + REDIS_RETRY_AFTER
            log.warning("catalog cache unavailable", op=what, error=type(exc).__name__)
            return None

    async def _read_generation(self) -> int:
        value = await self._redis.get(self._key)
        if value is None:
            # A random start: generations stay unique across Redis restarts.
            await self._redis.set(self._key, secrets.randbits(48), nx=True)
            value = await self._redis.get(self._key)
        return int(value) if value is not None else 0

    async def generation(self) -> int | None:
        """The current generation; None while Redis is unavailable (then nothing is cached)."""
        if self._known is not None and time.monotonic() >= self._down_until:
            return self._known
        return await self._call("generation", self._read_generation)

    async def bump(self) -> None:
        """After a write: a new generation, announced to every watching process."""

        async def incr() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._key, secrets.randbits(48), nx=True)
                pipe.incr(self._key)
                pipe.publish(generation_channel(self._participant), b"")
                _, value, _ = await pipe.execute()
            if self._subscribed:
                self._known = int(value)

        if time.monotonic() < self._down_until:
            self._down_until = 0.0  # a write must always try to invalidate
        async with self._lock:
            # Until the increment is known to have happened, no request may use the old value;
            # the lock keeps the watch's re-read from putting it back meanwhile.
            self._known = None
            await self._call("bump", incr)

    async def get(self, key: str) -> bytes | None:
        async def read() -> bytes | None:
            value = await self._redis.get(key)
            return value if isinstance(value, bytes) else None

        return await self._call("get", read)

    async def put(self, key: str, value: bytes) -> None:
        async def write() -> None:
            await self._redis.set(key, value, ex=self._ttl)

        await self._call("put", write)

    # ---- the watch ---------------------------------------------------------------------------

    def start_watch(self) -> None:
        if self._watch is None:
            self._stopping = False
            self._watch = asyncio.create_task(self._watch_loop(), name="catalog generation watch")

    async def stop_watch(self) -> None:
        task, self._watch = self._watch, None
        self._stopping = True
        self._forget()
        if task is not None:
            # A cancellation that lands inside redis-py's read timeout can be swallowed
            # (asyncio.timeout on 3.11 turns it into a timeout), so the loop also checks
            # `_stopping` after every poll.
            task.cancel()
            await asyncio.wait({task}, timeout=2 * _POLL_SECONDS + 1.0)
            if task.done() and not task.cancelled():
                with contextlib.suppress(Exception):
                    task.result()

    @property
    def watching(self) -> bool:
        """True while requests take the generation from the process, not from Redis."""
        return self._known is not None

    def _forget(self) -> None:
        self._subscribed = False
        self._known = None

    async def _refresh(self) -> None:
        async with self._lock:
            self._known = await self._read_generation()

    async def _watch_loop(self) -> None:
        channel = generation_channel(self._participant)
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(channel)
                    # The subscription is confirmed before the first read, so no bump after
                    # that read can go unnoticed.
                    while await pubsub.get_message(timeout=_POLL_SECONDS) is None:
                        if self._stopping:
                            return
                    self._subscribed = True
                    await self._refresh()
                    checked = time.monotonic()
                    while not self._stopping:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=_POLL_SECONDS
                        )
                        if message is not None or time.monotonic() - checked >= RECHECK_SECONDS:
                            await self._refresh()
                            checked = time.monotonic()
                self._forget()
                return
            except asyncio.CancelledError:
                self._forget()
                raise
            except (RedisError, OSError, TimeoutError, ValueError) as exc:
                self._forget()
                if self._stopping:
                    # redis-py may turn the cancellation of a read into a ConnectionError.
                    return
                log.warning("catalog generation watch lost", error=type(exc).__name__)
                await asyncio.sleep(_RECONNECT_SECONDS)
                if self._stopping:
                    return
