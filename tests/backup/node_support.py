"""Two `connector up` edge nodes for whole-node backup drills (decision 0017).

`NodeStack` is one node as an operator runs it: `connector up` in a subprocess on free ports, its
backups in a directory OUTSIDE the data dir (a new machine gets them from there), the operator's
commands (`connector backup now`, `connector restore --node`) as subprocesses with the node's
configuration. `CutProxy` stands between the provider and the consumer's DSP endpoint (the
consumer's public URL): cut, it answers every DSP message 503 while its DID document still
resolves, so the provider's processes stay in flight with their sends retrying.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from connector.runtime.embedded import free_port
from tests.edge import Edge

TIMEOUT = 120.0
OPEN_POLICY = {"@id": "open", "@type": "Set", "permission": [{"action": "use"}]}


class CutProxy:
    """HTTP forwarder on loopback; `cut = True` answers 503 except for /.well-known."""

    def __init__(self) -> None:
        self.port = free_port()
        self.target = 0
        self.cut = False
        self.refused = 0
        self._server: Any = None
        self._task: Any = None
        self._http = httpx.AsyncClient(timeout=30)

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self.cut and not scope["path"].startswith("/.well-known"):
            self.refused += 1
            await send(
                {"type": "http.response.start", "status": 503, "headers": [(b"retry-after", b"1")]}
            )
            await send({"type": "http.response.body", "body": b""})
            return
        query = scope.get("query_string", b"").decode()
        url = f"http://127.0.0.1:{self.target}{scope['path']}" + (f"?{query}" if query else "")
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        try:
            resp = await self._http.request(
                scope["method"], url, headers=headers, content=bytes(body)
            )
        except httpx.HTTPError:
            # What a real proxy answers when the upstream dropped the connection.
            await send({"type": "http.response.start", "status": 502, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        out = [
            (k.encode(), v.encode())
            for k, v in resp.headers.items()
            if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")
        ]
        await send({"type": "http.response.start", "status": resp.status_code, "headers": out})
        await send({"type": "http.response.body", "body": resp.content})

    async def __aenter__(self) -> CutProxy:
        import uvicorn

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
        await self._http.aclose()


class NodeStack:
    def __init__(self, name: str, root: Path, *, public_port: int | None = None) -> None:
        self.name = name
        self.edge = Edge.allocate(root / name / "var")
        self.backups = root / name / "backups"
        self.public_port = public_port or self.edge.ports["server"]
        self.peer_did = ""
        self.key = ""
        self.extra: dict[str, str] = {}

    @property
    def did(self) -> str:
        return f"did:web:localhost%3A{self.public_port}"

    @property
    def dsp(self) -> str:
        return f"http://localhost:{self.public_port}/dsp/2025-1"

    def env(self) -> dict[str, str]:
        env = {
            "CONNECTOR_IDENTITY__TRUST__ALLOWED_DIDS": json.dumps([self.peer_did]),
            "CONNECTOR_OUTBOUND__ALLOW_CIDRS": json.dumps(["127.0.0.0/8", "::1/128"]),
            "CONNECTOR_OUTBOUND__ALLOW_HTTP": "true",
            "CONNECTOR_BACKUP__DIRECTORY": str(self.backups),
            **self.extra,
        }
        if self.public_port != self.edge.ports["server"]:
            env["CONNECTOR_SERVER__PUBLIC_URL"] = f"http://localhost:{self.public_port}"
        return env

    def start(self) -> None:
        self.edge.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.edge.start(**self.env())

    def ready(self, timeout: float = 240.0) -> None:
        self.edge.wait_ready(timeout=timeout)
        self.key = (self.edge.data_dir / "management-api-key").read_text().strip()

    def command(self, *args: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        """`connector <args>` with this node's configuration, as its operator runs it."""
        return subprocess.run(
            [sys.executable, "-m", "connector", *args],
            env=self.edge.env(**self.env()),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    async def call(
        self, method: str, path: str, body: Any = None, *, ok: bool = True, **params: Any
    ) -> Any:
        async with httpx.AsyncClient(timeout=60) as http:
            resp = await http.request(
                method,
                self.edge.url("server", f"/management/v1{path}"),
                json=body,
                params=params,
                headers={"X-Api-Key": self.key},
            )
        if ok:
            assert resp.status_code < 300, (self.name, method, path, resp.status_code, resp.text)
        return resp.json() if resp.content else None

    async def wait(
        self, kind: str, pid: str, states: set[str], timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            async with httpx.AsyncClient(timeout=10) as http:
                resp = await http.get(
                    self.edge.url("server", f"/management/v1/{kind}/{pid}"),
                    headers={"X-Api-Key": self.key},
                )
            if resp.status_code == 200:
                last = resp.json()
                if last["state"] in states:
                    return dict(last)
            await asyncio.sleep(0.2)
        raise AssertionError(f"{self.name}: {kind}/{pid} not in {states}: {last}")

    async def listed(self, kind: str) -> list[dict[str, Any]]:
        """Every item of a management list (all pages)."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 200}
            if cursor:
                params["cursor"] = cursor
            page = await self.call("GET", f"/{kind}", **params)
            items += page["items"]
            cursor = page.get("nextCursor") or page.get("next_cursor")
            if not cursor:
                return items

    async def publish(self, asset_id: str, source: dict[str, Any]) -> None:
        await self.call(
            "POST",
            "/assets",
            {
                "id": asset_id,
                "properties": {"name": asset_id},
                "dataAddress": source,
                "distributions": ["HttpData-PULL", "HttpData-PUSH"],
            },
        )
        await self.call("POST", "/policies", {"id": "open", "policy": OPEN_POLICY}, ok=False)
        await self.call(
            "POST",
            "/offers",
            {
                "id": f"offer-{asset_id}",
                "assetSelector": [asset_id],
                "accessPolicyId": "open",
                "contractPolicyId": "open",
            },
        )


async def catalog_offer(consumer: NodeStack, provider: NodeStack, asset_id: str) -> dict[str, Any]:
    catalog = await consumer.call(
        "POST",
        "/catalog/request",
        {"counterPartyAddress": provider.dsp, "counterPartyId": provider.did},
    )
    datasets = catalog["dataset"] if isinstance(catalog["dataset"], list) else [catalog["dataset"]]
    (dataset,) = [d for d in datasets if d["@id"] == asset_id]
    offers = dataset["hasPolicy"]
    offer = dict(offers[0] if isinstance(offers, list) else offers)
    offer["target"] = asset_id
    return offer


async def start_negotiation(
    consumer: NodeStack, provider: NodeStack, offer: dict[str, Any]
) -> dict[str, Any]:
    started: dict[str, Any] = await consumer.call(
        "POST",
        "/negotiations",
        {"counterPartyAddress": provider.dsp, "counterPartyId": provider.did, "offer": offer},
    )
    return started
