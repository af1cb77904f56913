"""`Idempotency-Key` on the management API's creating POSTs (decision 0009).

Same key and same body: the same resource and the same answer (status and body), never a second
resource. Same key, another body: 422. While the first request with a key still runs, a second
one waits for its answer up to `WAIT_SECONDS`, then gets 409 with `Retry-After`. Keys are scoped
per route and per principal (the API key's name, or `oidc:<sub>`) and expire after
`management.idempotency_key_ttl_seconds`.

Crash safety: the key is reserved (with the body's digest) before the side effect, and what the
request creates gets ids derived from the reservation's seed. A control plane killed after the
side effect but before it stored the answer leaves the reservation unanswered; once its lease has
run out, the client's retry re-runs the request with the same ids and meets what the first run
created (a workflow start joins the running workflow; a catalog create finds its own row).
Only 2xx answers are stored: an error ends the lease, and a retry runs the request again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Final, Protocol, TypeVar

import asyncpg
from fastapi import Depends, Header, Request, Response

from connector.core.errors import (
    BadRequestError,
    ConflictError,
    ConnectorError,
    UnprocessableError,
)
from connector.http.errors import error_response
from connector.runtime.logging import get_logger
from connector.settings import Settings
from connector.stores import idempotency
from connector.stores.idempotency import Answered, Busy, Claimed, Mismatch

__all__ = [
    "HEADER",
    "IdempotencyKeyDep",
    "body_digest",
    "created_once",
    "idempotent",
    "purge_periodically",
]

log = get_logger(__name__)

HEADER: Final = "Idempotency-Key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
MAX_KEY_LENGTH: Final = 255
# How long a request holds its key before a retry may take over (its holder crashed, or is this
# slow: re-running is safe, the ids are the same). Longer than a healthy create takes.
LEASE: Final = timedelta(seconds=10)
# How long a request waits for another request's answer under the same key before it gets 409.
WAIT_SECONDS: Final = 2.0
_POLL_SECONDS: Final = 0.05
PURGE_SECONDS: Final = 600.0

DESCRIPTION: Final = (
    "Makes the POST safe to retry. Same key and same body: the same resource and the same "
    "answer (status and body, with `Idempotent-Replayed: true`), never a second resource; also "
    "after a crash of the connector between creating and answering. Same key with another body: "
    "422. While the first request with the key is still running, a second one waits up to 2 s "
    "for its answer, then gets 409 with `Retry-After`. Scoped per route and API principal; "
    "remembered for `management.idempotency_key_ttl_seconds` (default 24 h). 1 to 255 "
    "printable ASCII characters (a UUID is a good choice)."
)


def _valid(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and all(" " <= c <= "~" for c in key)


async def _idempotency_key(
    idempotency_key: Annotated[str | None, Header(alias=HEADER, description=DESCRIPTION)] = None,
) -> str | None:
    if idempotency_key is not None and not _valid(idempotency_key):
        raise BadRequestError(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")
    return idempotency_key


IdempotencyKeyDep = Annotated[str | None, Depends(_idempotency_key)]


def body_digest(body: Any) -> str:
    """Digest of a request body as parsed (key order and whitespace do not matter)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _scope(request: Request, principal: str) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    return f"{principal} {request.method} {path}"


def _busy(request: Request, lease_left: float) -> Response:
    response = error_response(
        request,
        ConflictError(
            f"a request with this {HEADER} is still being processed; retry shortly for its answer"
        ),
    )
    # When the holder's lease ends: then a retry gets its answer or takes over.
    response.headers["Retry-After"] = str(max(1, math.ceil(lease_left)))
    return response


async def idempotent(
    request: Request,
    principal: str,
    key: str | None,
    body: Any,
    run: Callable[[Claimed | None], Awaitable[Response]],
) -> Response:
    """Answer a creating POST once per (principal, route, key): `run` makes the answer, given the
    claim whose `seed` it derives new ids from (None without a key: no idempotency)."""
    if key is None:
        return await run(None)
    settings: Settings = request.app.state.settings
    pool: asyncpg.Pool = request.app.state.resources.pool
    ttl = timedelta(seconds=settings.management.idempotency_key_ttl_seconds)
    scope = _scope(request, principal)
    digest = body_digest(body)
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        outcome = await idempotency.claim(
            pool, scope, key, digest, seed=uuid.uuid4().hex, ttl=ttl, lease=LEASE
        )
        if isinstance(outcome, Claimed):
            break
        if isinstance(outcome, Answered):
            return _replay(outcome)
        if isinstance(outcome, Mismatch):
            raise UnprocessableError(
                f"this {HEADER} was used with a different request body; use a new key"
            )
        if isinstance(outcome, Busy) and time.monotonic() >= deadline:
            return _busy(request, outcome.lease_left)
        await asyncio.sleep(_POLL_SECONDS)
    try:
        response = await run(outcome)
    except BaseException:
        await _release(pool, scope, key, outcome)
        raise
    if not 200 <= response.status_code < 300:
        await _release(pool, scope, key, outcome)
        return response
    answer = bytes(response.body).decode()
    try:
        stored = await idempotency.complete(pool, scope, key, outcome, response.status_code, answer)
    except Exception as exc:
        # Never a 5xx after the side effect: answer it. The key stays reserved and unanswered;
        # a retry runs the request again with the same ids and stores that answer.
        log.warning("idempotency answer not stored", scope=scope, error=str(exc))
        return response
    if stored.status != response.status_code or stored.body != answer:
        return _replay(stored)  # a request that took over from us answered first
    return response


def _replay(answer: Answered) -> Response:
    return Response(
        answer.body,
        answer.status,
        headers={REPLAYED_HEADER: "true"},
        media_type="application/json",
    )


async def _release(pool: asyncpg.Pool, scope: str, key: str, claimed: Claimed) -> None:
    """Best effort: without it the lease runs out by itself."""
    with contextlib.suppress(Exception):
        await asyncio.shield(idempotency.release(pool, scope, key, claimed))


class _Created(Protocol):
    @property
    def created_at(self) -> datetime: ...


C = TypeVar("C", bound=_Created)


async def created_once(
    claimed: Claimed | None,
    create: Callable[[], Awaitable[C]],
    find: Callable[[], Awaitable[C]],
) -> C:
    """`create` a resource whose id the client chose; under a claimed key, "id taken" by a row
    created after the key was reserved is this request's own earlier run (its answer was lost in
    a crash): that row is the answer."""
    try:
        return await create()
    except ConflictError as taken:
        if claimed is None:
            raise
        try:
            found = await find()
        except ConnectorError:
            raise taken from None
        if found.created_at < claimed.reserved_at:
            raise
        return found


async def purge_periodically(pool: asyncpg.Pool, interval: float = PURGE_SECONDS) -> None:
    """Delete expired keys every `interval` seconds (each control-plane process; harmless twice)."""
    while True:
        await asyncio.sleep(interval)
        try:
            purged = await idempotency.purge_expired(pool)
        except Exception as exc:  # an outage shows in /health; the next round tries again
            log.warning("idempotency keys not purged", error=str(exc))
            continue
        if purged:
            log.info("idempotency keys purged", count=purged)
