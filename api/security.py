"""Who is calling: `X-Api-Key` for operators, a verified participant token for counterparties."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from connector.core.errors import UnauthorizedError
from connector.core.identity.claims import VerifiedCaller
from connector.identity.apikeys import ApiKeyVerifier
from connector.identity.runtime import Identity
from connector.ratelimit import RateLimiter


async def require_api_key(
    request: Request,
    x_api_key: Annotated[str | None, Header(alias="X-Api-Key")] = None,
) -> str:
    """The name of the operator key presented; 401 (problem+json) without a valid one."""
    verifier: ApiKeyVerifier = request.app.state.api_keys
    name = verifier.verify(x_api_key)
    if name is None:
        raise UnauthorizedError("missing or invalid X-Api-Key")
    return name


async def require_caller(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
) -> VerifiedCaller:
    """The authenticated DSP counterparty (did:web token, or the dev profile's stand-in).

    Then counts the request against the caller's rate limit (429 + Retry-After when over it;
    `connector.ratelimit`, fails open when Redis is down)."""
    identity: Identity = request.app.state.identity
    caller = await identity.verifier.verify(authorization)
    request.state.caller = caller
    await rate_limiter(request).check(caller.participant_id)
    return caller


def rate_limiter(request: Request) -> RateLimiter:
    """The app's per-caller limiter, built on first use from settings and the app's Redis."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        identity: Identity = request.app.state.identity
        limiter = RateLimiter(
            request.app.state.resources.redis,
            participant=identity.participant_id,
            requests_per_minute=request.app.state.settings.rate_limit.requests_per_minute,
        )
        request.app.state.rate_limiter = limiter
    return limiter


ApiKeyDep = Annotated[str, Depends(require_api_key)]
CallerDep = Annotated[VerifiedCaller, Depends(require_caller)]
