"""A test-side DCP world on one loopback HTTP server: an issuer (and a second, "other" issuer)
with their DID documents and a StatusList2021 revocation list, and holders with DID documents,
credentials signed by real keys and a Credential Service answering presentation queries with
freshly signed VPs. It is the counterparty our verifier talks to (tests of decision 0022).

DIDs: `did:web:127.0.0.1%3A<port>:issuer`, `...:other-issuer`, `...:holders:<name>`.
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from joserfc import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.core.identity.dcp import (
    DCP_CONTEXT,
    DEFAULT_SCOPES,
    MIN_STATUS_LIST_BITS,
    VC_CONTEXT_V1,
    scope_type,
)
from connector.identity.did import build_did_document
from connector.identity.keys import KeyEntry, KeyRing, generate_key, key_id
from connector.identity.sts import issue_access_token, issue_si_token
from connector.identity.tokens import bearer
from connector.runtime.embedded import free_port
from tests.loopback import serving_app


def ring() -> KeyRing:
    key = generate_key()
    return KeyRing(current=KeyEntry(key=key, key_id=key_id(key)))


def sign(keys: KeyRing, did: str, claims: dict[str, Any], *, kid: str | None = None) -> str:
    header = {"alg": "ES256", "typ": "JWT", "kid": f"{did}#{kid or keys.current.key_id}"}
    return jwt.encode(header, claims, keys.current.key, algorithms=["ES256"])


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Party:
    did: str
    keys: KeyRing = field(default_factory=ring)
    # Relationships to publish the key under (all three by default, like ours).
    relationships: tuple[str, ...] = ("authentication", "assertionMethod", "capabilityInvocation")
    services: list[dict[str, Any]] = field(default_factory=list)
    document_patch: dict[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        doc = build_did_document(self.did, [self.keys.current], self.services)
        doc.update(self.document_patch)
        for rel in ("authentication", "assertionMethod", "capabilityInvocation"):
            if rel not in self.relationships:
                doc.pop(rel)
        return doc


@dataclass
class Holder(Party):
    name: str = ""
    credentials: list[str] = field(default_factory=list)
    # Overrides of the VP claims / vp object, the key signing the VP, the answer status.
    vp_claims: dict[str, Any] = field(default_factory=dict)
    vp_object: dict[str, Any] = field(default_factory=dict)
    vp_keys: KeyRing | None = None
    answer_status: int = 200
    answer_body: bytes | None = None
    queries: list[dict[str, Any]] = field(default_factory=list)

    def authorization(
        self,
        verifier_did: str,
        *,
        token: str | None = "",
        keys: KeyRing | None = None,
        **claims: Any,
    ) -> str:
        """A DSP request's `Authorization`: our SI token with our access token in `token`
        (`token=None`: no `token` claim; `claims` override or add claims, `None` removes)."""
        now = datetime.now(UTC)
        access = issue_access_token(self.keys, self.did, verifier_did, DEFAULT_SCOPES, now)
        si = issue_si_token(
            self.keys, self.did, verifier_did, now, access if token == "" else token
        )
        if not claims and keys is None:
            return bearer(si)
        payload = jwt.decode(si, self.keys.current.key, algorithms=["ES256"]).claims
        for name, value in claims.items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        return bearer(sign(keys or self.keys, self.did, payload))


class DcpWorld:
    """Issuers, holders and a status list served on 127.0.0.1:<port>."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        root = f"did:web:127.0.0.1%3A{port}"
        self.root = root
        self.issuer = Party(f"{root}:issuer")
        self.other_issuer = Party(f"{root}:other-issuer")
        self.status_url = f"{self.base}/status/1"
        self.revoked: set[int] = set()
        self.status_fetches = 0
        # Who signs the status list, and how long it is valid (overridable per test).
        self.status_signer: Party = self.issuer
        self.status_valid_for = timedelta(hours=1)
        self.holders: dict[str, Holder] = {}
        self._next_index = 1
        # (path, Authorization header, body) of every DSP message the connector sent us.
        self.callbacks: list[tuple[str, str, Any]] = []

    @property
    def callback(self) -> str:
        """A callbackAddress for negotiations started from this world (any holder)."""
        return f"{self.base}/callback"

    def holder(self, name: str) -> Holder:
        did = f"{self.root}:holders:{name}"
        service = {
            "id": f"{did}#credential-service",
            "type": "CredentialService",
            "serviceEndpoint": f"{self.base}/holders/{name}/dcp",
        }
        holder = Holder(did=did, name=name, services=[service])
        self.holders[name] = holder
        return holder

    def credential(
        self,
        holder: Holder,
        credential_type: str = "MembershipCredential",
        *,
        issuer: Party | None = None,
        subject: dict[str, Any] | None = None,
        valid_from: timedelta = timedelta(days=-1),
        valid_for: timedelta = timedelta(days=30),
        subject_id: str | None = None,
        status_url: str | None = None,
        vc: dict[str, Any] | None = None,
    ) -> int:
        """Issue a VC to `holder` (stored in its Credential Service); returns its status index.
        `vc` overrides members of the `vc` object (a schema violation, say)."""
        signer = issuer or self.issuer
        index = self._next_index
        self._next_index += 1
        now = datetime.now(UTC)
        start, end = now + valid_from, now + valid_from + valid_for
        cid = f"urn:uuid:{uuid.uuid4()}"
        claims: dict[str, Any] = {
            "iss": signer.did,
            "sub": subject_id or holder.did,
            "jti": cid,
            "iat": int(start.timestamp()),
            "nbf": int(start.timestamp()),
            "exp": int(end.timestamp()),
            "vc": {
                "@context": [VC_CONTEXT_V1],
                "id": cid,
                "type": ["VerifiableCredential", credential_type],
                "issuer": signer.did,
                "issuanceDate": rfc3339(start),
                "expirationDate": rfc3339(end),
                "credentialSubject": {"id": subject_id or holder.did, **(subject or {})},
                "credentialStatus": {
                    "id": f"{status_url or self.status_url}#{index}",
                    "type": "StatusList2021Entry",
                    "statusPurpose": "revocation",
                    "statusListIndex": str(index),
                    "statusListCredential": status_url or self.status_url,
                },
            },
        }
        claims["vc"].update(vc or {})
        holder.credentials.append(sign(signer.keys, signer.did, claims))
        return index

    def status_list(self) -> str:
        bits = bytearray(MIN_STATUS_LIST_BITS // 8)
        for index in self.revoked:
            bits[index // 8] |= 0x80 >> (index % 8)
        encoded = base64.urlsafe_b64encode(gzip.compress(bytes(bits))).decode().rstrip("=")
        now = int(datetime.now(UTC).timestamp())
        signer = self.status_signer
        return sign(
            signer.keys,
            signer.did,
            {
                "iss": signer.did,
                "sub": f"{self.status_url}#list",
                "iat": now,
                "exp": now + int(self.status_valid_for.total_seconds()),
                "vc": {
                    "@context": [VC_CONTEXT_V1],
                    "id": self.status_url,
                    "type": ["VerifiableCredential", "StatusList2021Credential"],
                    "issuer": signer.did,
                    "issuanceDate": rfc3339(datetime.now(UTC)),
                    "credentialSubject": {
                        "id": f"{self.status_url}#list",
                        "type": "StatusList2021",
                        "statusPurpose": "revocation",
                        "encodedList": encoded,
                    },
                },
            },
        )

    def _presentation(self, holder: Holder, verifier: str, scopes: list[str]) -> str:
        wanted = {scope_type(s) for s in scopes}
        chosen = []
        for vc in holder.credentials:
            if wanted & set(_claims(vc)["vc"]["type"]):
                chosen.append(vc)
        now = int(datetime.now(UTC).timestamp())
        vp = {
            "@context": [VC_CONTEXT_V1],
            "type": ["VerifiablePresentation"],
            "holder": holder.did,
            "verifiableCredential": chosen,
            **holder.vp_object,
        }
        claims: dict[str, Any] = {
            "iss": holder.did,
            "sub": holder.did,
            "aud": verifier,
            "jti": f"urn:uuid:{uuid.uuid4()}",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "vp": vp,
            **holder.vp_claims,
        }
        # `vp_keys`: another key signs under the holder's published key id.
        keys = holder.vp_keys or holder.keys
        return sign(keys, holder.did, claims, kid=holder.keys.current.key_id)

    async def _query(self, request: Request) -> Response:
        holder = self.holders[request.path_params["name"]]
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        si = auth[len("Bearer ") :]
        body = await request.json()
        unverified = _claims(si)
        verifier = unverified["iss"]
        # The verifier hands our own access token back: it must be one we signed, for it.
        access = jwt.decode(unverified["token"], holder.keys.current.key, algorithms=["ES256"])
        if access.claims["sub"] != verifier or unverified["aud"] != holder.did:
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        holder.queries.append({"token": unverified, "body": body})
        if holder.answer_status != 200:
            return JSONResponse({"error": "nope"}, status_code=holder.answer_status)
        if holder.answer_body is not None:
            return Response(holder.answer_body, media_type="application/json")
        presentation = self._presentation(holder, verifier, body["scope"])
        return JSONResponse(
            {
                "@context": [DCP_CONTEXT],
                "type": "PresentationResponseMessage",
                "presentation": [presentation],
            }
        )

    async def _did(self, request: Request) -> Response:
        path = request.url.path
        parties = [self.issuer, self.other_issuer, *self.holders.values()]
        for party in parties:
            suffix = party.did[len(self.root) :].replace(":", "/")
            if path == f"{suffix}/did.json":
                return JSONResponse(party.document(), media_type="application/did+json")
        return JSONResponse({"error": "unknown"}, status_code=404)

    async def _callback(self, request: Request) -> Response:
        body = await request.json()
        self.callbacks.append((request.url.path, request.headers.get("authorization", ""), body))
        return Response(status_code=200)

    async def _status(self, request: Request) -> Response:
        self.status_fetches += 1
        return Response(self.status_list(), media_type="application/vc+jwt")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/holders/{name}/dcp/presentations/query", self._query, methods=["POST"]),
                Route("/status/1", self._status),
                Route("/callback/{rest:path}", self._callback, methods=["POST"]),
                Route("/{rest:path}", self._did),
            ]
        )


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


@asynccontextmanager
async def dcp_world() -> AsyncIterator[DcpWorld]:
    world = DcpWorld(free_port())
    async with serving_app(world.app(), world.port):
        yield world
