"""Reading request bodies defensively: size cap (413) while streaming, then the JSON guards."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.requests import ClientDisconnect

from connector.core.errors import BadRequestError, TooLargeError
from connector.core.guards import parse_json


async def read_json(request: Request) -> Any:
    """The parsed JSON body; refused before reading all of it when over the size limit."""
    settings = request.app.state.settings.server
    limit = settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLargeError(f"request body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLargeError(f"request body over {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        # Nobody is left to read the answer; nothing was applied.
        raise BadRequestError("the client disconnected before sending the whole body") from None
    raw = b"".join(chunks)
    if not raw.strip():
        raise BadRequestError("request body is empty; a JSON object is required")
    return parse_json(raw, max_bytes=limit, max_depth=settings.max_json_depth)


def named_pids(body: Any) -> dict[str, str]:
    """The pids a DSP message names, under their 2025-1 or 0.8 names."""
    if not isinstance(body, dict):
        return {}
    found = {
        key: body.get(key, body.get(f"dspace:{key}")) for key in ("providerPid", "consumerPid")
    }
    return {key: value for key, value in found.items() if isinstance(value, str) and value}


async def read_dsp_message(request: Request, body: Annotated[Any, Depends(read_json)]) -> Any:
    """The body of a negotiation or transfer message. The pids it names are kept for the
    `ContractNegotiationError` / `TransferError` of a request that fails from here on: errors
    echo them (dsp.md §10, decision 0002; `connector.http.errors`)."""
    request.state.dsp_pids = named_pids(body)
    return body


DspMessageDep = Annotated[Any, Depends(read_dsp_message)]
