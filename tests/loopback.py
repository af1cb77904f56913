"""One way for a test-side server (a peer, a holder, a webhook receiver) to serve its ASGI app on
a loopback port for the length of a `with` block."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn


@asynccontextmanager
async def serving_app(app: Any, port: int) -> AsyncIterator[None]:
    """Serve `app` on 127.0.0.1:`port` until the block ends; a server that fails to start raises."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        await task
