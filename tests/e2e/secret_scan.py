"""Helpers of the secrets-at-rest tests: a backend with a secret header, raw Temporal histories,
the payloads inside them, byte searches."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterable, Iterator
from typing import Any

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History
from temporalio.client import Client

from connector.temporal.codec import ENCODING


class SecretBackend:
    """An HTTP data source on loopback that serves `data` only with the right secret header."""

    def __init__(self, header: str, secret: str, size: int) -> None:
        self.header = header.lower().encode()
        self.secret = secret.encode()
        self.data = os.urandom(size)
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        self.refused = 0
        self.port = 0
        self._server: Any = None
        self._task: Any = None

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        headers = dict(scope["headers"])
        if headers.get(self.header) != self.secret:
            self.refused += 1
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/octet-stream"),
                    (b"content-length", str(len(self.data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self.data})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/data"

    async def __aenter__(self) -> SecretBackend:
        import uvicorn

        from connector.runtime.embedded import free_port

        self.port = free_port()
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host="127.0.0.1",
                port=self.port,
                log_config=None,
                access_log=False,
                interface="asgi3",
            )
        )
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        await self._task


def sink_address(endpoint: str, secret: str) -> dict[str, Any]:
    """A push destination with header credentials (`authorization` endpoint property)."""
    return {
        "@type": "DataAddress",
        "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
        "endpoint": endpoint,
        "endpointProperties": [
            {"@type": "EndpointProperty", "name": "authorization", "value": secret},
            {"@type": "EndpointProperty", "name": "authType", "value": "bearer"},
        ],
    }


async def raw_histories(client: Client, query: str, *, expected: int) -> list[History]:
    """Histories as Temporal stores them, fetched with `client` (give it no codec)."""
    found: list[Any] = []
    for _ in range(100):  # visibility trails the start by a moment
        found = [wf async for wf in client.list_workflows(query)]
        if len(found) >= expected:
            break
        await asyncio.sleep(0.1)
    assert len(found) >= expected, (query, [wf.id for wf in found])
    histories = []
    for wf in found:
        fetched = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        histories.append(History(events=fetched.events))
    return histories


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every Payload anywhere inside a protobuf message (maps and repeated fields included)."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            items: Iterable[Any] = value.values()
        elif isinstance(value, Message):
            items = [value]
        else:  # a repeated field
            items = value
        for item in items:
            if isinstance(item, Payload):
                yield item
            elif isinstance(item, Message):
                yield from payloads_in(item)


def encrypted_share(histories: list[History]) -> tuple[int, int]:
    """(encrypted payloads, all payloads except search attributes' plain ones) in `histories`."""
    encrypted = total = 0
    for history in histories:
        for payload in payloads_in(history):
            total += 1
            encrypted += payload.metadata.get("encoding") == ENCODING
    return encrypted, total


def found_in(blob: bytes, secrets: Iterable[str]) -> list[str]:
    """The secrets that occur in `blob` (as they are, or in the JSON-escaped form)."""
    return [s for s in secrets if s.encode() in blob]
