"""The operators' lists of DSP processes (`GET /management/v1/negotiations` and `…/transfers`):
the query parameters both take, and their one answer: the page's views, the total of the
filtered set and the cursor of the next page. Each route declares its parameters itself (its own
filters and descriptions, in its documented order) and hands them here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Query

from connector.core.errors import BadRequestError
from connector.stores.process_pages import Page, ProcessQuery

__all__ = [
    "AwaitingParam",
    "CounterPartyIdParam",
    "LimitParam",
    "RoleParam",
    "page_answer",
    "process_query",
]

R = TypeVar("R")

RoleParam = Literal["provider", "consumer"] | None
CounterPartyIdParam = Annotated[str | None, Query(alias="counterPartyId")]
# Each route describes what waiting for a person means for its processes.
AwaitingParam = Literal["operator"] | None
LimitParam = Annotated[int, Query(ge=1, le=200)]


def process_query(
    *,
    state: str | None,
    role: RoleParam,
    counter_party_id: str | None,
    awaiting: AwaitingParam,
    cursor: str | None,
    limit: int,
) -> ProcessQuery:
    """The shared parameters as the stores take them (states are stored upper case)."""
    return ProcessQuery(
        state=state.upper() if state else None,
        role=role,
        counterparty_id=counter_party_id,
        awaiting_operator=True if awaiting == "operator" else None,
        cursor=cursor,
        limit=limit,
    )


async def page_answer(
    page: Awaitable[Page[R]], view: Callable[[R], dict[str, Any]]
) -> dict[str, Any]:
    """`{items, total, nextCursor}`; a cursor we did not issue is a 400 at `/cursor`."""
    try:
        listed = await page
    except ValueError as exc:
        raise BadRequestError(str(exc), pointer="/cursor") from None
    return {
        "items": [view(r) for r in listed.items],
        "total": listed.total,
        "nextCursor": listed.next_cursor,
    }
