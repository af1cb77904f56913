"""The development issuer as an operator runs it (the real `connector issuer` CLI in
subprocesses) and a holder's Storage API on loopback that checks the issuer's token."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connector.core.errors import UnauthorizedError
from connector.http.outbound import GuardedHttp, OutboundConfig
from connector.identity.did import DidResolver, build_did_document, did_web
from connector.identity.keys import KeyEntry, KeyRing, generate_key, key_id
from connector.identity.replay import MemoryReplayStore
from connector.identity.tokens import TokenIssuer, TokenVerifier, bearer
from connector.identity.trust import TrustList
from connector.runtime.embedded import free_port
from tests.loopback import serving_app


def utc_now() -> datetime:
    return datetime.now(UTC)


def issuer_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`connector issuer <args> --data-dir <data_dir>` in a subprocess."""
    command, *rest = args
    argv = [sys.executable, "-m", "connector", "issuer", command]
    if command == "participants":
        argv += [rest[0], "--data-dir", str(data_dir), *rest[1:]]
    else:
        argv += ["--data-dir", str(data_dir), *rest]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def issuer_json(data_dir: Path, *args: str) -> list[dict[str, object]]:
    done = issuer_cli(data_dir, *args, "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert isinstance(rows, list)
    return rows


def loopback_resolver(participant: str) -> DidResolver:
    """The connector's own did:web resolver, allowed to reach loopback over http."""
    http = GuardedHttp(OutboundConfig(allow_http=True, allow_cidrs=("127.0.0.0/8",)))
    return DidResolver(http, None, participant=participant, allow_http=True, allow_ip=True)


@dataclass
class IssuerProcess:
    data_dir: Path
    port: int
    did: str
    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)


def init_issuer(data_dir: Path, *, status_ttl: int = 60) -> tuple[str, int]:
    """`connector issuer init` for a free loopback port: (DID, port)."""
    port = free_port()
    done = issuer_cli(
        data_dir, "init", "--public-url", f"http://127.0.0.1:{port}", "--name", "test-space",
        "--status-ttl", str(status_ttl),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[0].removeprefix("issuer ").strip(), port


@contextmanager
def serving_issuer(data_dir: Path, did: str, port: int) -> Iterator[IssuerProcess]:
    """`connector issuer serve` until the block ends (SIGTERM)."""
    url = f"http://127.0.0.1:{port}"
    log_path = data_dir.parent / f"issuer-{port}.log"
    log = log_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "connector", "issuer", "serve", "--data-dir", str(data_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
    )
    issuer = IssuerProcess(data_dir, port, did, url, process)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{url}/.well-known/did.json", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "issuer did not start"
            time.sleep(0.1)
        yield issuer
    finally:
        issuer.stop()
        log.close()


@contextmanager
def running_issuer(data_dir: Path, *, status_ttl: int = 60) -> Iterator[IssuerProcess]:
    """A new issuer (`init`) served on a free loopback port."""
    did, port = init_issuer(data_dir, status_ttl=status_ttl)
    with serving_issuer(data_dir, did, port) as issuer:
        yield issuer


# A holder's POST <CS base>/credentials: (issuer token claims, body)
Delivery = tuple[dict[str, object], dict[str, object]]


@dataclass
class LoopbackHolder:
    """A participant with its own did:web document (CredentialService entry, signing key) and a
    Storage API that accepts only the trusted issuer's self-issued token."""

    issuer_did: str
    fail_first: int = 0
    port: int = field(default_factory=free_port)
    deliveries: list[Delivery] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        key = generate_key()
        self.ring = KeyRing(current=KeyEntry(key=key, key_id=key_id(key)))
        self.did = did_web("127.0.0.1", self.port)
        self.tokens = TokenIssuer(self.ring, self.did, clock=utc_now)

    def token(self, audience: str | None = None) -> str:
        return bearer(self.tokens.issue(audience or self.issuer_did))

    def _app(self) -> FastAPI:
        app = FastAPI()
        service = {
            "id": f"{self.did}#credential-service",
            "type": "CredentialService",
            "serviceEndpoint": f"http://127.0.0.1:{self.port}/cs",
        }
        document = build_did_document(self.did, [self.ring.current], [service])
        verifier = TokenVerifier(
            loopback_resolver("holder"),
            MemoryReplayStore(),
            TrustList.of([self.issuer_did]),
            self.did,
            utc_now,
        )

        @app.get("/.well-known/did.json")
        async def did_json() -> Response:
            return JSONResponse(document, media_type="application/did+json")

        @app.post("/cs/credentials")
        async def store(request: Request) -> Response:
            try:
                caller = await verifier.verify(request.headers.get("authorization"))
            except UnauthorizedError as exc:
                self.refused.append(exc.reasons[0])
                self.answered.append(401)
                return Response(status_code=401)
            if len(self.answered) < self.fail_first:
                self.answered.append(503)
                return Response(status_code=503)
            self.deliveries.append((dict(caller.claims), await request.json()))
            self.answered.append(200)
            return Response(status_code=200)

        return app

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[LoopbackHolder]:
        async with serving_app(self._app(), self.port):
            yield self

    async def wait_for_deliveries(self, count: int = 1, timeout: float = 20.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.deliveries) < count:
            assert asyncio.get_running_loop().time() < deadline, (self.answered, self.refused)
            await asyncio.sleep(0.05)
