"""Shared steps of the transfer end-to-end tests: negotiate, start a transfer, pull, hash."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path
from typing import Any, Self

import httpx

from connector.core.dsp import DspVersion, validate_against_schema
from tests.twoconn import Connector, catalog_offer, publish_offer

MIB = 1024 * 1024


def write_file(path: Path, size: int, seed: bytes = b"x") -> str:
    """A deterministic file of `size` bytes (1 MiB blocks varied by index); its SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    block = hashlib.sha256(seed).digest() * (MIB // 32)
    written = 0
    with path.open("wb") as fh:
        i = 0
        while written < size:
            chunk = (i.to_bytes(8, "big") + block[8:])[: size - written]
            fh.write(chunk)
            digest.update(chunk)
            written += len(chunk)
            i += 1
    return digest.hexdigest()


def random_file(path: Path, size: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


async def agreement_for(
    provider: Connector,
    consumer: Connector,
    asset_id: str,
    *,
    data_address: dict[str, Any],
    distributions: list[str] | None = None,
    policy: dict[str, Any] | None = None,
) -> str:
    await publish_offer(
        provider,
        asset_id,
        policy,
        data_address=data_address,
        distributions=distributions or ["HttpData-PULL", "HttpData-PUSH"],
    )
    offer = await catalog_offer(consumer, provider, asset_id)
    started = await consumer.post(
        "/negotiations",
        {"counterPartyAddress": provider.dsp, "counterPartyId": provider.did, "offer": offer},
    )
    assert started.status_code == 201, started.text
    done = await consumer.wait_state(started.json()["id"], {"FINALIZED", "TERMINATED"})
    assert done["state"] == "FINALIZED", done
    agreement_id: str = done["agreementId"]
    # The provider records FINALIZED a moment after the consumer (it needs the consumer's
    # acknowledgement of its event); tests that use the agreement start from both sides.
    deadline = time.monotonic() + 30
    while (await provider.get(f"/agreements/{agreement_id}")).status_code != 200:
        assert time.monotonic() < deadline, f"provider never recorded {agreement_id}"
        await asyncio.sleep(0.05)
    return agreement_id


async def start_transfer(
    consumer: Connector,
    provider: Connector,
    agreement_id: str,
    fmt: str = "HttpData-PULL",
    **extra: Any,
) -> str:
    body = {
        "counterPartyAddress": provider.dsp,
        "counterPartyId": provider.did,
        "agreementId": agreement_id,
        "format": fmt,
        **extra,
    }
    resp = await consumer.post("/transfers", body)
    assert resp.status_code == 201, resp.text
    transfer_id: str = resp.json()["id"]
    return transfer_id


async def edr(consumer: Connector, transfer_id: str) -> dict[str, Any]:
    resp = await consumer.get(f"/transfers/{transfer_id}/edr")
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def pull(
    endpoint: str, token: str, *, headers: dict[str, str] | None = None
) -> tuple[int, str, int]:
    """(status, sha256 hex, bytes) of a streamed GET."""
    digest = hashlib.sha256()
    size = 0
    async with (
        httpx.AsyncClient(timeout=60) as client,
        client.stream(
            "GET", endpoint, headers={"Authorization": f"Bearer {token}", **(headers or {})}
        ) as resp,
    ):
        async for chunk in resp.aiter_raw(MIB):
            digest.update(chunk)
            size += len(chunk)
        return resp.status_code, digest.hexdigest(), size


def schema_problems(exchanges: list[Any]) -> list[Any]:
    problems = []
    for ex in exchanges:
        version = DspVersion.V0_8 if "/dsp/0.8/" in ex.path else DspVersion.V2025_1
        for body in (ex.request, ex.response):
            if isinstance(body, dict) and "@type" in body:
                type_name = str(body["@type"]).removeprefix("dspace:")
                errors = validate_against_schema(body, type_name, version)
                if errors:
                    problems.append((ex.method, ex.path, body["@type"], errors))
    return problems


class Sink:
    """An HTTP push sink on loopback: hashes what it receives, keeps only complete bodies."""

    def __init__(self) -> None:
        self.received: dict[str, tuple[str, int]] = {}
        self.incomplete: list[tuple[str, int]] = []
        self.port = 0
        self._server: Any = None
        self._task: Any = None

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        name = scope["path"].rsplit("/", 1)[-1]
        headers = dict(scope["headers"])
        declared = int(headers.get(b"content-length", b"-1"))
        digest = hashlib.sha256()
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.incomplete.append((name, size))
                return
            body = message.get("body", b"")
            digest.update(body)
            size += len(body)
            if not message.get("more_body"):
                break
        if declared >= 0 and size != declared:
            self.incomplete.append((name, size))
            status = 400
        else:
            self.received[name] = (digest.hexdigest(), size)
            status = 204
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def __aenter__(self) -> Self:
        import asyncio

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

    def address(self, name: str) -> dict[str, Any]:
        return {
            "@type": "DataAddress",
            "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
            "endpoint": f"http://127.0.0.1:{self.port}/sink/{name}",
            "endpointProperties": [
                {"@type": "EndpointProperty", "name": "authorization", "value": "sink-secret"},
                {"@type": "EndpointProperty", "name": "authType", "value": "bearer"},
            ],
        }
