"""FastAPI dependencies that hand a route one object the app built at start (`app.state`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request


def app_state(attribute: str) -> Callable[[Request], Awaitable[Any]]:
    """`Depends(app_state("negotiations"))`: the route gets `request.app.state.negotiations`.

    The reader is `async`: FastAPI runs a plain `def` dependency in its thread pool, a thread
    hop on every request for what is an attribute read.
    """

    async def read(request: Request) -> Any:
        return getattr(request.app.state, attribute)

    read.__name__ = f"app_state_{attribute}"
    return read
