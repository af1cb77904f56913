"""`/.well-known/did.json`: our did:web document (current key and keys still in their grace)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from connector.identity.runtime import Identity

router = APIRouter(tags=["identity"])


@router.get("/.well-known/did.json", summary="This connector's DID document")
async def did_document(request: Request) -> JSONResponse:
    identity: Identity = request.app.state.identity
    return JSONResponse(identity.did_document(), media_type="application/did+json")
