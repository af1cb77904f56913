"""The answer of the management POSTs that start a DSP process (`/management/v1/negotiations`,
`…/transfers`): 201 with the started process, or 202 with the record it was started with when
the connector's database did not answer (the start happened; a 5xx would invite a second)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi.responses import JSONResponse

from api.process_gateway import StartedUnprojected

__all__ = ["STARTED_RESPONSES", "started_answer"]

R = TypeVar("R")

# The creating POSTs' other success, for their OpenAPI `responses`.
STARTED_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Started, but the connector's database did not answer: the body is the "
        "record the process was started with (its id is final); read it again shortly."
    }
}


async def started_answer(start: Awaitable[R], view: Callable[[R], dict[str, Any]]) -> JSONResponse:
    """201 with the view of what `start` returns; 202 with the view of the record it was started
    with when its projection could not be read."""
    try:
        started = await start
    except StartedUnprojected as unprojected:
        return JSONResponse(view(unprojected.record), status_code=202)
    return JSONResponse(view(started), status_code=201)
