"""Per-caller rate limit of the DSP API: a fixed one-minute window counted in Redis.

Each verified DSP caller gets one counter per window,
`connector:{participant}:rate:{sha256(caller)}:{window}` (window = Unix minute), incremented with
one `INCRBY` + `EXPIRE` pipeline; the key expires a little after its window ends. Over
`rate_limit.requests_per_minute` the request is refused with `RateLimitedError` (429) whose
`retry_after` is the number of seconds until the window ends. The caller id is hashed, like the
jti of the replay set, so attacker-chosen strings (the `dev` profile takes participant ids
verbatim) never become raw key material and keys have a fixed size.

Counts reach Redis in batches: each process adds a caller's requests locally and sends them with
one `INCRBY` at most every `SYNC_SECONDS` (the first request of a caller in a window goes at
once and waits for the answer; later batches are sent in the background). The decision uses the
window's total as Redis last answered plus what this process has counted since, so one replica
is exact, and N replicas can together admit at most about (N - 1) x `SYNC_SECONDS` worth of a
caller's traffic beyond the limit. A Redis round trip on every request cost more than half of
the catalog's throughput and most of its tail latency.

A fixed window admits at most twice the limit across a window boundary; that is accepted for a
cheap, single-key limiter whose purpose is to stop a runaway or abusive peer, not to meter.

Fails OPEN: if Redis errors, the batch is dropped, a warning is logged, and nobody is refused
until a batch gets through again. Rate limiting protects capacity, not integrity: refusing every
counterparty while Redis is down would turn a cache outage into a full DSP outage, while the
checks that must not degrade (token signature, replay set, trust list) still run and the replay
set fails closed on its own. Compare `connector.identity.replay`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from connector.core.errors import RateLimitedError

__all__ = ["SYNC_SECONDS", "WINDOW_SECONDS", "RateLimiter", "rate_key"]

logger = logging.getLogger(__name__)

WINDOW_SECONDS: Final = 60
SYNC_SECONDS: Final = 0.1
# Keep a window's key a little past its end so a clock skew between API replicas cannot reset it.
_EXPIRY_SLACK_SECONDS: Final = 5
_PRUNE_ABOVE: Final = 10_000  # callers tracked before entries of past windows are dropped


def rate_key(participant: str, caller: str, window: int) -> str:
    digest = hashlib.sha256(caller.encode()).hexdigest()
    return f"connector:{participant}:rate:{digest}:{window}"


@dataclass(slots=True)
class _Count:
    """One caller's window in this process."""

    window: int
    total: int = 0  # the window's count in Redis as last answered (all replicas)
    sending: int = 0  # counted here, in a batch on its way to Redis
    pending: int = 0  # counted here, not sent yet
    sent_at: float | None = None  # monotonic time of the last batch

    @property
    def seen(self) -> int:
        return self.total + self.sending + self.pending


class RateLimiter:
    """`check(caller)` counts one request of `caller`; raises when over the per-minute limit."""

    def __init__(
        self,
        redis: Redis,
        *,
        participant: str,
        requests_per_minute: int,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._participant = participant
        self._limit = requests_per_minute
        self._clock = clock
        self._monotonic = monotonic
        self._counts: dict[str, _Count] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self._store_down = False  # the last batch failed: fail open until one gets through

    @property
    def enabled(self) -> bool:
        return self._limit > 0

    async def check(self, caller: str) -> None:
        """Count one request of `caller` (a verified DID / participant id).

        Raises:
            RateLimitedError: `caller` exceeded the limit in the current window (429).
        """
        if not self.enabled:
            return
        now = self._clock()
        window = int(now // WINDOW_SECONDS)
        count = self._count(caller, window)
        if count.seen >= self._limit and not self._store_down:
            retry_after = max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))
            raise RateLimitedError(
                f"rate limit of {self._limit} requests per minute exceeded",
                retry_after=retry_after,
            )
        count.pending += 1
        if count.sending:
            return
        if count.sent_at is None:
            # A caller's first request of a window waits for Redis: it learns what the other
            # replicas counted before it.
            await self._send(caller, count, self._take_batch(count))
        elif self._monotonic() - count.sent_at >= SYNC_SECONDS:
            # Later batches go in the background, so no request waits for Redis. The batch is
            # taken now, not when the task first runs, so requests arriving before then do not
            # start batches of their own.
            task = asyncio.create_task(self._send(caller, count, self._take_batch(count)))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def aclose(self) -> None:
        """Wait for the batches on their way (at shutdown)."""
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=2.0)

    def _count(self, caller: str, window: int) -> _Count:
        count = self._counts.get(caller)
        if count is None or count.window != window:
            if len(self._counts) >= _PRUNE_ABOVE:
                self._counts = {c: n for c, n in self._counts.items() if n.window >= window}
            count = self._counts[caller] = _Count(window)
        return count

    def _take_batch(self, count: _Count) -> int:
        batch, count.pending, count.sending = count.pending, 0, count.pending
        count.sent_at = self._monotonic()
        return batch

    async def _send(self, caller: str, count: _Count, batch: int) -> None:
        key = rate_key(self._participant, caller, count.window)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incrby(key, batch)
                pipe.expire(key, WINDOW_SECONDS + _EXPIRY_SLACK_SECONDS)
                total, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            # Fail open: the batch is dropped, and nobody is refused until a batch gets through.
            self._store_down = True
            logger.warning(
                "rate limit store unavailable; allowing the request",
                extra={"error": type(exc).__name__},
            )
        else:
            self._store_down = False
            count.total = max(count.total + batch, int(total))
        finally:
            count.sending = 0
