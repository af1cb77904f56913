"""An operator's webhook endpoint on loopback for tests (decision 0013): records every call;
with `fail_first`, the first call of each notice id is answered 503 so the sender must retry."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import Response

from connector.core.webhook_signature import ID_HEADER
from connector.runtime.embedded import free_port
from tests.loopback import serving_app

# (headers with lower-case names, raw body, the status we answered)
Call = tuple[dict[str, str], bytes, int]


@dataclass
class WebhookReceiver:
    fail_first: bool = False
    port: int = field(default_factory=free_port)
    calls: list[Call] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/operator"

    def for_notice(self, process_id: str) -> list[Call]:
        return [c for c in self.calls if json.loads(c[1])["processId"] == process_id]

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hooks/operator")
        async def hook(request: Request) -> Response:
            body = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            notice = headers.get(ID_HEADER.lower())
            seen = any(h.get(ID_HEADER.lower()) == notice for h, _, _ in self.calls)
            status = 503 if self.fail_first and not seen else 200
            self.calls.append((headers, body, status))
            return Response(status_code=status)

        return app

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[WebhookReceiver]:
        async with serving_app(self._app(), self.port):
            yield self
