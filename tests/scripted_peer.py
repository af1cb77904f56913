"""A scripted DSP counterparty for protocol-conformance tests (the role the TCK plays).

`ScriptedPeer` is a small FastAPI app on a free loopback port with its own did:web identity
(generated key ring, DID document at `/.well-known/did.json`). It never acts on its own:

- every DSP message it receives (on its provider paths under `dsp` and its consumer callbacks
  under `callback`) is RECORDED and answered 200, or 201 + `ContractNegotiation` for an initiating
  message (`/negotiations/request`, `/negotiations/offers`); `status` overrides the answer per
  message suffix (`"request"`, `"events"`, `"agreement"`, `"agreement/verification"`,
  `"termination"`, `"offers"`, or `"initial-request"` / `"initial-offer"`);
- `before_answer[<DSP @type>]` (one-shot) runs before the answer to the next message of that
  type: the peer can act (say, send its reply) while the connector still waits for the answer;
- the test SENDS any raw DSP message (a dict) to the connector under test with `post` / `get`,
  signed with the peer's key for the connector's DID (or unsigned / with any header).

Message builders (`request_message`, `event_message`, ...) return 2025-1 compact dicts.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connector.core.dsp import DSP_CONTEXT_0_8, DSP_CONTEXT_2025_1
from connector.identity.did import build_did_document
from connector.identity.keys import load_or_create_keyring
from connector.identity.tokens import TokenIssuer, bearer
from connector.identity.trust import TrustList
from connector.runtime.embedded import free_port
from tests.twoconn import Connector, did_for, running_connector

CONTEXT: Final = [DSP_CONTEXT_2025_1]
SIGNED: Final = object()  # `post(..., authorization=SIGNED)`: a fresh token for the audience


def new_pid() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


@dataclass
class Received:
    """One request the peer got from the connector under test."""

    method: str
    path: str
    body: Any
    authorization: str | None
    status: int

    @property
    def type(self) -> str | None:
        if not isinstance(self.body, dict):
            return None
        value = self.body.get("@type")
        return value.removeprefix("dspace:") if isinstance(value, str) else None

    def get(self, key: str) -> Any:
        """A body property, 2025-1 or 0.8 (`dspace:`-prefixed) name."""
        if not isinstance(self.body, dict):
            return None
        return self.body.get(key, self.body.get(f"dspace:{key}"))


def _suffix(path: str) -> str:
    """`/x/negotiations/<pid>/agreement/verification` -> `agreement/verification`."""
    _, _, rest = path.partition("/negotiations/")
    if rest in ("request", "offers"):
        return f"initial-{'request' if rest == 'request' else 'offer'}"
    _, _, tail = rest.partition("/")
    return tail


class ScriptedPeer:
    """A DSP counterparty that records what it receives and sends what the test tells it to."""

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.did = did_for(self.port)
        self.keyring = load_or_create_keyring(data_dir / "keys")
        self.issuer = TokenIssuer(self.keyring, self.did, clock=lambda: datetime.now(UTC))
        self.received: list[Received] = []
        self.status: dict[str, int] = {}
        self.before_answer: dict[str, Callable[[Received], Awaitable[None]]] = {}
        # Our pids handed out in 201 answers, keyed by the connector's pid.
        self.provider_pids: dict[str, str] = {}
        self.consumer_pids: dict[str, str] = {}
        self._changed = asyncio.Event()
        self.app = self._build_app()
        self.http = httpx.AsyncClient(timeout=15)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    # --- addresses ------------------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def dsp(self) -> str:
        """Our DSP base as a provider (what a consumer under test gets as counterPartyAddress)."""
        return f"{self.base}/dsp/2025-1"

    @property
    def callback(self) -> str:
        """Our callbackAddress as a consumer."""
        return f"{self.base}/callback"

    # --- the app --------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/.well-known/did.json")
        async def did_document() -> dict[str, Any]:
            return build_did_document(self.did, self.keyring.published(datetime.now(UTC)))

        @app.api_route("/{path:path}", methods=["GET", "POST"])
        async def anything(path: str, request: Request) -> Response:
            raw = await request.body()
            try:
                body: Any = await request.json() if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            full = "/" + path
            suffix = _suffix(full)
            answer = self._answer(full, suffix, body)
            status = self.status.get(suffix, answer.status_code)
            record = Received(
                request.method, full, body, request.headers.get("authorization"), status
            )
            self.received.append(record)
            self._changed.set()
            hook = self.before_answer.pop(record.type or "", None)
            if hook is not None:
                await hook(record)
            if status != answer.status_code:
                return Response(status_code=status)
            return answer

        return app

    def _answer(self, path: str, suffix: str, body: Any) -> Response:
        if not isinstance(body, dict):
            return Response(status_code=200)
        v08 = "/dsp/0.8/" in path or body.get("@context") == DSP_CONTEXT_0_8
        if suffix == "initial-request":
            consumer_pid = _field(body, "consumerPid")
            provider_pid = self.provider_pids.setdefault(str(consumer_pid), new_pid())
            return JSONResponse(
                negotiation_body(provider_pid, str(consumer_pid), "REQUESTED", v08=v08), 201
            )
        if suffix == "initial-offer":
            provider_pid = _field(body, "providerPid")
            consumer_pid = self.consumer_pids.setdefault(str(provider_pid), new_pid())
            return JSONResponse(
                negotiation_body(str(provider_pid), consumer_pid, "OFFERED", v08=v08), 201
            )
        return Response(status_code=200)

    # --- what we received -----------------------------------------------------------------

    def messages(self, type_: str | None = None, pid: str | None = None) -> list[Received]:
        """Received messages of DSP `@type` `type_` whose path names our `pid`."""
        return [
            r
            for r in self.received
            if (type_ is None or r.type == type_) and (pid is None or f"/{pid}/" in r.path + "/")
        ]

    async def wait_for(
        self,
        type_: str | None = None,
        *,
        pid: str | None = None,
        where: Callable[[Received], bool] = lambda _: True,
        count: int = 1,
        timeout: float = 15,
    ) -> list[Received]:
        """Wait until `count` matching messages arrived; returns all of them."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.messages(type_, pid) if where(r)]
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [(r.path, r.type) for r in self.received]
                raise AssertionError(f"no {count}x {type_} for {pid} within {timeout}s; {seen}")
            self._changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))

    async def quiet(self, seconds: float = 0.3) -> None:
        """Give the connector a moment to send anything it (wrongly) might."""
        await asyncio.sleep(seconds)

    # --- sending --------------------------------------------------------------------------

    def authorization(self, audience: str) -> str:
        return bearer(self.issuer.issue(audience))

    def _headers(self, audience: str, authorization: object) -> dict[str, str]:
        if authorization is SIGNED:
            return {"Authorization": self.authorization(audience)}
        if authorization is None:
            return {}
        return {"Authorization": str(authorization)}

    async def post(
        self, connector: Connector, path: str, body: Any, *, authorization: object = SIGNED
    ) -> httpx.Response:
        """POST `body` to `connector.base + path` (e.g. `/dsp/2025-1/negotiations/request`)."""
        return await self.http.post(
            connector.base + path, json=body, headers=self._headers(connector.did, authorization)
        )

    async def get(
        self, connector: Connector, path: str, *, authorization: object = SIGNED
    ) -> httpx.Response:
        return await self.http.get(
            connector.base + path, headers=self._headers(connector.did, authorization)
        )

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_config=None, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        await self.http.aclose()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task


@asynccontextmanager
async def scripted_peer(data_dir: Path) -> AsyncIterator[ScriptedPeer]:
    peer = ScriptedPeer(data_dir)
    await peer.start()
    try:
        yield peer
    finally:
        await peer.stop()


def connector_trusting(
    peer: ScriptedPeer,
    data_dir: Path,
    *,
    pg_server_url: str,
    redis_url: str,
    temporal_address: str,
    name: str = "connector",
    **overrides: Any,
) -> AbstractAsyncContextManager[Connector]:
    """The connector under test on a free port, trusting `peer` (running_connector's overrides)."""
    return running_connector(
        name,
        free_port(),
        peer.did,
        pg_server_url=pg_server_url,
        redis_url=redis_url,
        temporal_address=temporal_address,
        data_dir=data_dir,
        **overrides,
    )


def trust_also(connector: Connector, *dids: str) -> None:
    """Add `dids` to the running connector's allow-list (running_connector trusts one DID)."""
    verifier = connector.recorder.app.state.identity.verifier
    current: TrustList = verifier._trust
    verifier._trust = TrustList(
        allowed_dids=current.allowed_dids | frozenset(dids),
        trusted_issuers=current.trusted_issuers,
        require_capability_invocation=current.require_capability_invocation,
        relaxed=current.relaxed,
    )


def _field(body: dict[str, Any], key: str) -> Any:
    return body.get(key, body.get(f"dspace:{key}"))


# --- DSP 2025-1 message builders (compact dicts, as a peer puts them on the wire) -------------


def negotiation_body(
    provider_pid: str, consumer_pid: str, state: str, *, v08: bool = False
) -> dict[str, Any]:
    if v08:
        return {
            "@context": DSP_CONTEXT_0_8,
            "@type": "dspace:ContractNegotiation",
            "dspace:providerPid": provider_pid,
            "dspace:consumerPid": consumer_pid,
            "dspace:state": f"dspace:{state}",
        }
    return {
        "@context": CONTEXT,
        "@type": "ContractNegotiation",
        "providerPid": provider_pid,
        "consumerPid": consumer_pid,
        "state": state,
    }


def request_message(
    offer: dict[str, Any],
    consumer_pid: str,
    *,
    provider_pid: str | None = None,
    callback_address: str | None = None,
) -> dict[str, Any]:
    """Initial (callback_address, no provider_pid) or counter ContractRequestMessage."""
    body: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "ContractRequestMessage",
        "consumerPid": consumer_pid,
        "offer": offer,
    }
    if provider_pid is not None:
        body["providerPid"] = provider_pid
    if callback_address is not None:
        body["callbackAddress"] = callback_address
    return body


def offer_message(offer: dict[str, Any], provider_pid: str, consumer_pid: str) -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "@type": "ContractOfferMessage",
        "providerPid": provider_pid,
        "consumerPid": consumer_pid,
        "offer": offer,
    }


def agreement_message(
    provider_pid: str,
    consumer_pid: str,
    *,
    target: str,
    assigner: str,
    assignee: str,
    permission: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "@type": "ContractAgreementMessage",
        "providerPid": provider_pid,
        "consumerPid": consumer_pid,
        "agreement": {
            "@id": new_pid(),
            "@type": "Agreement",
            "target": target,
            "assigner": assigner,
            "assignee": assignee,
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "permission": permission or [{"action": "use"}],
        },
    }


def verification_message(provider_pid: str, consumer_pid: str) -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "@type": "ContractAgreementVerificationMessage",
        "providerPid": provider_pid,
        "consumerPid": consumer_pid,
    }


def event_message(provider_pid: str, consumer_pid: str, event_type: str) -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "@type": "ContractNegotiationEventMessage",
        "providerPid": provider_pid,
        "consumerPid": consumer_pid,
        "eventType": event_type,
    }


def termination_message(
    provider_pid: str, consumer_pid: str, *, code: str = "1", reason: list[Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "ContractNegotiationTerminationMessage",
        "providerPid": provider_pid,
        "consumerPid": consumer_pid,
        "code": code,
    }
    if reason:
        body["reason"] = reason
    return body


__all__ = [
    "SIGNED",
    "Received",
    "ScriptedPeer",
    "agreement_message",
    "event_message",
    "negotiation_body",
    "new_pid",
    "offer_message",
    "request_message",
    "scripted_peer",
    "termination_message",
    "trust_also",
    "verification_message",
]
