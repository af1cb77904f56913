"""A DCP 1.0 counterparty on loopback for the holder tests: an issuer service and a verifier.

`DcpPeer` is a small FastAPI app on a free port with its own did:web identity (generated key
ring; DID document at `/.well-known/did.json` with an `IssuerService` at `<base>/issuer`) and
its StatusList2021 credential at `<base>/status/1` (nothing revoked). It
signs real ES256 JWTs: VCs (`vc`), self-issued tokens (`si_token`), access tokens minted with
the HOLDER's key ring (`access_token`, what the holder's STS would put in the `token` claim).

As an issuer it answers the Credential Issuance Protocol per the wire contract:
`POST /issuer/credentials` -> 201 + Location, and then, by `mode`:
  * "issue":  writes a real signed VC back to the holder's Storage API (found through the
    holder's DID document `CredentialService` entry); status ISSUED;
  * "reject": status REJECTED on `GET /issuer/requests/<holderPid>`, writes nothing;
  * "reject-write": writes a REJECTED CredentialMessage back; its status stays RECEIVED (so
    only the write can end the request);
  * "silent": status RECEIVED forever (the request expires at its deadline).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from joserfc import jwt

from connector.core.identity.dcp import DCP_CONTEXT, scope_for
from connector.core.identity.dcp_holder import VC_CONTEXT
from connector.identity.did import build_did_document
from connector.identity.keys import KeyRing, load_or_create_keyring
from connector.runtime.embedded import free_port
from connector.settings import Settings, to_env
from tests.twoconn import did_for

STATUS_LIST_BITS: Final = 131072
ROOT: Final = Path(__file__).resolve().parents[1]
Mode = Literal["issue", "reject", "reject-write", "silent"]


def sign(keyring: KeyRing, did: str, claims: dict[str, Any], kid: str | None = None) -> str:
    entry = keyring.current
    header = {"alg": "ES256", "typ": "JWT", "kid": kid or f"{did}#{entry.key_id}"}
    return jwt.encode(header, claims, entry.key, algorithms=["ES256"])


def access_token(
    holder_keyring: KeyRing,
    holder_did: str,
    verifier_did: str,
    types: list[str],
    *,
    lifetime: int = 300,
    iss: str | None = None,
    sub: str | None = None,
) -> str:
    """The holder's access token for `verifier_did` (as the holder's STS mints it)."""
    now = int(datetime.now(UTC).timestamp())
    return sign(
        holder_keyring,
        holder_did,
        {
            "iss": iss or holder_did,
            "aud": holder_did,
            "sub": sub or verifier_did,
            "scope": " ".join(scope_for(t) for t in types),
            "jti": str(uuid.uuid4()),
            "iat": now - 1,
            "exp": now + lifetime,
        },
    )


@dataclass
class IssuerRequest:
    holder_pid: str
    issuer_pid: str
    credential_type: str
    authorization: str | None
    status: str = "RECEIVED"


@dataclass
class DcpPeer:
    data_dir: Path
    mode: Mode = "issue"
    port: int = field(default_factory=free_port)
    requests: dict[str, IssuerRequest] = field(default_factory=dict)
    issued_validity: timedelta = timedelta(days=365)

    def __post_init__(self) -> None:
        self.did = did_for(self.port)
        self.keyring = load_or_create_keyring(self.data_dir / "keys")
        self.http = httpx.AsyncClient(timeout=15)
        self.app = self._build_app()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._writes: list[asyncio.Task[None]] = []
        self.write_answers: list[int] = []

    @property
    def base(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def status_list_url(self) -> str:
        return f"{self.base}/status/1"

    def status_list(self) -> str:
        """Our StatusList2021Credential (nothing revoked), as a verifier fetches it."""
        bits = bytes(STATUS_LIST_BITS // 8)
        encoded = base64.urlsafe_b64encode(gzip.compress(bits)).decode().rstrip("=")
        now = datetime.now(UTC).replace(microsecond=0)
        url = self.status_list_url
        return sign(
            self.keyring,
            self.did,
            {
                "iss": self.did,
                "sub": f"{url}#list",
                "iat": int(now.timestamp()),
                "exp": int(now.timestamp()) + 3600,
                "vc": {
                    "@context": [VC_CONTEXT],
                    "id": url,
                    "type": ["VerifiableCredential", "StatusList2021Credential"],
                    "issuer": self.did,
                    "issuanceDate": now.isoformat().replace("+00:00", "Z"),
                    "credentialSubject": {
                        "id": f"{url}#list",
                        "type": "StatusList2021",
                        "statusPurpose": "revocation",
                        "encodedList": encoded,
                    },
                },
            },
        )

    # --- tokens and credentials -------------------------------------------------------------

    def si_token(self, audience: str, *, token: str | None = None, **overrides: Any) -> str:
        now = int(datetime.now(UTC).timestamp())
        claims: dict[str, Any] = {
            "iss": self.did,
            "sub": self.did,
            "aud": audience,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + 300,
        }
        if token is not None:
            claims["token"] = token
        claims.update(overrides)
        return sign(self.keyring, self.did, {k: v for k, v in claims.items() if v is not None})

    def vc(
        self,
        subject: str,
        credential_type: str = "MembershipCredential",
        *,
        validity: timedelta | None = None,
        credential_id: str | None = None,
    ) -> str:
        now = datetime.now(UTC).replace(microsecond=0)
        expires = now + (validity or self.issued_validity)
        jti = credential_id or f"urn:uuid:{uuid.uuid4()}"
        return sign(
            self.keyring,
            self.did,
            {
                "iss": self.did,
                "sub": subject,
                "jti": jti,
                "iat": int(now.timestamp()),
                "nbf": int(now.timestamp()),
                "exp": int(expires.timestamp()),
                "vc": {
                    "@context": [VC_CONTEXT],
                    "id": jti,
                    "type": ["VerifiableCredential", credential_type],
                    "issuer": self.did,
                    "issuanceDate": now.isoformat().replace("+00:00", "Z"),
                    "expirationDate": expires.isoformat().replace("+00:00", "Z"),
                    "credentialSubject": {"id": subject, "memberOf": "test-dataspace"},
                    "credentialStatus": {
                        "id": f"{self.status_list_url}#7",
                        "type": "StatusList2021Entry",
                        "statusPurpose": "revocation",
                        "statusListIndex": "7",
                        "statusListCredential": self.status_list_url,
                    },
                },
            },
        )

    def credential_message(
        self, holder_pid: str, payloads: list[str], *, status: str = "ISSUED"
    ) -> dict[str, Any]:
        return {
            "@context": [DCP_CONTEXT],
            "type": "CredentialMessage",
            "issuerPid": f"urn:uuid:{uuid.uuid4()}",
            "holderPid": holder_pid,
            "status": status,
            "credentials": [
                {"credentialType": "MembershipCredential", "format": "vc1_0_jwt", "payload": p}
                for p in payloads
            ],
        }

    async def store_at(self, holder_base: str, holder_did: str, message: dict[str, Any]) -> int:
        """POST `message` to the holder's Storage API with our SI token; the status."""
        resp = await self.http.post(
            f"{holder_base}/dcp/credentials",
            json=message,
            headers={"Authorization": f"Bearer {self.si_token(holder_did)}"},
        )
        return resp.status_code

    # --- the app ----------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/.well-known/did.json")
        async def did_document() -> JSONResponse:
            doc = build_did_document(
                self.did,
                self.keyring.published(datetime.now(UTC)),
                [
                    {
                        "id": f"{self.did}#issuer-service",
                        "type": "IssuerService",
                        "serviceEndpoint": f"{self.base}/issuer",
                    }
                ],
            )
            return JSONResponse(doc, media_type="application/did+json")

        @app.post("/issuer/credentials")
        async def request_credential(request: Request) -> Response:
            body = await request.json()
            holder_pid = body["holderPid"]
            issuer_pid = f"urn:uuid:{uuid.uuid4()}"
            entry = IssuerRequest(
                holder_pid,
                issuer_pid,
                body["credentials"][0]["credentialType"],
                request.headers.get("authorization"),
            )
            self.requests[holder_pid] = entry
            if self.mode == "reject":
                entry.status = "REJECTED"
            elif self.mode in ("issue", "reject-write"):
                holder_did = _unverified_iss(entry.authorization)
                self._writes.append(asyncio.create_task(self._issue(entry, holder_did)))
            return Response(
                status_code=201, headers={"Location": f"{self.base}/issuer/requests/{issuer_pid}"}
            )

        @app.get("/status/1")
        async def status_list() -> Response:
            return Response(self.status_list(), media_type="application/jwt")

        @app.get("/issuer/requests/{pid}")
        async def request_status(pid: str) -> Response:
            entry = self.requests.get(pid)
            if entry is None:
                return Response(status_code=404)
            return JSONResponse(
                {
                    "@context": [DCP_CONTEXT],
                    "type": "CredentialStatus",
                    "issuerPid": entry.issuer_pid,
                    "holderPid": entry.holder_pid,
                    "status": entry.status,
                }
            )

        return app

    async def _issue(self, entry: IssuerRequest, holder_did: str) -> None:
        """Write the credential back, after the 201 went out (DCP issuance is asynchronous)."""
        await asyncio.sleep(0.2)
        resp = await self.http.get(
            f"http://{holder_did.split(':')[2].replace('%3A', ':')}/.well-known/did.json"
        )
        (service,) = [s for s in resp.json()["service"] if s["type"] == "CredentialService"]
        holder_base = service["serviceEndpoint"].removesuffix("/dcp")
        if self.mode == "reject-write":
            message = self.credential_message(entry.holder_pid, [], status="REJECTED")
        else:
            entry.status = "ISSUED"
            message = self.credential_message(
                entry.holder_pid, [self.vc(holder_did, entry.credential_type)]
            )
        message["issuerPid"] = entry.issuer_pid
        self.write_answers.append(await self.store_at(holder_base, holder_did, message))

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
        for task in self._writes:
            task.cancel()
        await asyncio.gather(*self._writes, return_exceptions=True)
        await self.http.aclose()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task


def _unverified_iss(authorization: str | None) -> str:
    from connector.core.identity.dcp_holder import unverified_claims

    assert authorization is not None
    assert authorization.startswith("Bearer ")
    iss = unverified_claims(authorization.removeprefix("Bearer "))["iss"]
    assert isinstance(iss, str)
    return iss


@asynccontextmanager
async def dcp_peer(data_dir: Path, mode: Mode = "issue") -> AsyncIterator[DcpPeer]:
    peer = DcpPeer(data_dir, mode)
    await peer.start()
    try:
        yield peer
    finally:
        await peer.stop()


async def credentials_cli(settings: Settings, *argv: str) -> tuple[int, str]:
    """`connector credentials ...` in a subprocess, as an operator runs it against the
    connector configured by `settings`: (exit code, stdout and stderr)."""
    env = {**os.environ, **to_env(settings), "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connector",
        "credentials",
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()
