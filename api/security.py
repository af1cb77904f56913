"""Who is calling: `X-Api-Key` (or, when `management.oidc` is configured, an OIDC bearer token)
for operators, a verified participant token for counterparties."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from connector.core.errors import NotFoundError, UnauthorizedError, UnavailableError
from connector.core.identity.claims import VerifiedCaller
from connector.http.errors import correlation_id
from connector.http.ratelimit import RateLimiter
from connector.identity.apikeys import ApiKeyVerifier
from connector.identity.oidc import JwksError, OidcVerifier
from connector.identity.runtime import Identity
from connector.runtime.clock import utc_now
from connector.runtime.logging import get_logger
from connector.settings import Settings

log = get_logger(__name__)


async def require_api_key(
    request: Request,
    # Documented as the `ApiKey` security scheme (api.docs), not as a parameter.
    x_api_key: Annotated[str | None, Header(alias="X-Api-Key", include_in_schema=False)] = None,
) -> str:
    """The operator: the name of the key presented, or `oidc:<sub>` for a valid OIDC bearer token
    (only when `management.oidc` is configured); 401 (problem+json) without either.

    The key is checked first (cheap, constant time). The response never says which check failed
    nor echoes the token; the OIDC verifier logs the reason. An unreachable JWKS URL is 503."""
    verifier: ApiKeyVerifier = request.app.state.api_keys
    name = verifier.verify(x_api_key)
    if name is not None:
        return name
    settings: Settings = request.app.state.settings
    if settings.management.oidc is None:
        raise UnauthorizedError("missing or invalid X-Api-Key")
    authorization = request.headers.get("authorization")
    oidc = management_oidc(request) if authorization is not None else None
    if oidc is not None:
        try:
            return f"oidc:{await oidc.verify(authorization)}"
        except UnauthorizedError:
            pass
    raise UnauthorizedError("missing or invalid X-Api-Key or bearer token")


def management_oidc(request: Request) -> OidcVerifier | None:
    """The app's OIDC verifier for the management API, built on first use (None: not configured).

    JWKS URLs are fetched with the identity's guarded client (SSRF rules, closed at shutdown)."""
    settings: Settings = request.app.state.settings
    if settings.management.oidc is None:
        return None
    verifier: OidcVerifier | None = getattr(request.app.state, "management_oidc", None)
    if verifier is None:
        identity: Identity = request.app.state.identity
        try:
            verifier = OidcVerifier.from_settings(settings.management.oidc, identity.http, utc_now)
        except JwksError as exc:  # the CLI checked the file at start; it changed since
            log.error("management OIDC unavailable", error=str(exc))
            raise UnavailableError("the OIDC key set is unavailable") from None
        request.app.state.management_oidc = verifier
    return verifier


async def require_caller(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
) -> VerifiedCaller:
    """The authenticated DSP counterparty (did:web token, or the dev profile's stand-in).

    Then counts the request against the caller's rate limit (429 + Retry-After when over it;
    `connector.http.ratelimit`, fails open when Redis is down)."""
    identity: Identity = request.app.state.identity
    caller = await identity.verifier.verify(authorization, correlation_id=correlation_id(request))
    request.state.caller = caller
    await rate_limiter(request).check(caller.participant_id)
    return caller


async def require_caller_or_not_found(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
) -> VerifiedCaller:
    """`require_caller` for reading one process: a caller we cannot authenticate gets the 404 of
    an unknown process, not a 401 (DSP 2025-1: "does not exist or the consumer is not
    authorized"), so the answer does not tell whether the pid exists. The reason is logged."""
    try:
        return await require_caller(request, authorization)
    except UnauthorizedError as exc:
        raise NotFoundError(*(f"caller not authenticated: {r}" for r in exc.reasons)) from None


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
ReaderDep = Annotated[VerifiedCaller, Depends(require_caller_or_not_found)]
