"""Per-caller rate limit of the DSP API: a fixed one-minute window counted in Redis.

Each verified DSP caller gets one counter per window,
`connector:{participant}:rate:{sha256(caller)}:{window}` (window = Unix minute), incremented with
one `INCR` + `EXPIRE` pipeline (one round trip); the key expires a little after its window ends.
Over `rate_limit.requests_per_minute` the request is refused with `RateLimitedError` (429) whose
`retry_after` is the number of seconds until the window ends. The caller id is hashed, like the
jti of the replay set, so attacker-chosen strings (the `dev` profile takes participant ids
verbatim) never become raw key material and keys have a fixed size.

A fixed window admits at most twice the limit across a window boundary; that is accepted for a
cheap, single-key limiter whose purpose is to stop a runaway or abusive peer, not to meter.

Fails OPEN: if Redis errors, the request is allowed (and a warning logged). Rate limiting protects
capacity, not integrity: refusing every counterparty while Redis is down would turn a cache outage
into a full DSP outage, while the checks that must not degrade (token signature, replay set, trust
list) still run and the replay set fails closed on its own. Compare `connector.identity.replay`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from connector.core.errors import RateLimitedError

__all__ = ["WINDOW_SECONDS", "RateLimiter", "rate_key"]

logger = logging.getLogger(__name__)

WINDOW_SECONDS: Final = 60
# Keep a window's key a little past its end so a clock skew between API replicas cannot reset it.
_EXPIRY_SLACK_SECONDS: Final = 5


def rate_key(participant: str, caller: str, window: int) -> str:
    digest = hashlib.sha256(caller.encode()).hexdigest()
    return f"connector:{participant}:rate:{digest}:{window}"


class RateLimiter:
    """`check(caller)` counts one request of `caller`; raises when over the per-minute limit."""

    def __init__(
        self,
        redis: Redis,
        *,
        participant: str,
        requests_per_minute: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._participant = participant
        self._limit = requests_per_minute
        self._clock = clock

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
        key = rate_key(self._participant, caller, window)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, WINDOW_SECONDS + _EXPIRY_SLACK_SECONDS)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            logger.warning(
                "rate limit store unavailable; allowing the request",
                extra={"error": type(exc).__name__},
            )
            return
        if int(count) > self._limit:
            retry_after = max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))
            raise RateLimitedError(
                f"rate limit of {self._limit} requests per minute exceeded",
                retry_after=retry_after,
            )
