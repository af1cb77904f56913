"""Who is calling: `X-Api-Key` for operators, a verified participant token for counterparties."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from connector.core.errors import UnauthorizedError
from connector.core.identity.claims import VerifiedCaller
from connector.identity.apikeys import ApiKeyVerifier
from connector.identity.runtime import Identity


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
    """The authenticated DSP counterparty (did:web token, or the dev profile's stand-in)."""
    identity: Identity = request.app.state.identity
    caller = await identity.verifier.verify(authorization)
    request.state.caller = caller
    return caller


ApiKeyDep = Annotated[str, Depends(require_api_key)]
CallerDep = Annotated[VerifiedCaller, Depends(require_caller)]
