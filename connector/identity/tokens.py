"""Self-issued DSP tokens: issue (outbound) and verify (inbound) (identity.md §1.3, §1.8 L0/L1).

Outbound: `Authorization: Bearer <JWT>`, header `{"alg":"ES256","kid":"<our DID>#<key id>",
"typ":"JWT"}`, claims `iss = sub = our DID`, `aud = counterparty DID`, `jti`, `iat`, `exp` (at most
5 minutes later).

Inbound (`TokenVerifier.verify`), in order: `Bearer` prefix and size cap; header allow-list
(ES256/EdDSA/Ed25519 only; no `jku`/`x5u`/`jwk`/`x5c`/`crit`); unverified `iss == sub`, did:web;
trust pre-check (allow-list, or membership credential present) *before* any DID resolution, so
untrusted callers cannot make us fetch; `kid` under `iss#`; DID document via the guarded resolver
(one forced refresh on an unknown `kid`, and on a key that does not verify the signature: the peer
may have rotated it under the same `kid`; both rate-limited per DID by the resolver); key in
`capabilityInvocation` unless relaxed for the caller; signature with the algorithm derived from
the key type; registered claims
(`connector.core.identity.claims`); membership credential if the caller is not allow-listed; `jti`
claimed in the replay store last. Every failure raises `UnauthorizedError` (the API answers a
generic 401); the reason is logged with iss/kid/jti, never the token. Replay-store outages raise
`UnavailableError` (fail closed).

`dcp` profile: the token must carry a `token` claim (the caller's Credential Service access
token); after the checks above, `presentations.verify` queries and verifies the caller's
credentials (`connector.identity.presentations`, decision 0022) and the caller's claims are those
credentials' policy claims. The allow-list and the `membership` claim play no part there.

Profiles: `secure` (default), `dcp` and `dev`. `dev` additionally accepts `Authorization: Bearer
dev:<participant-id>` (unsigned) and, for the DSP TCK, an EDC iam-mock JSON token
(`{"clientId": ...}`, with or without `Bearer`). `check_profile` refuses `dev` unless the explicit
insecure flag is set and logs a warning at every start.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ec import (
    ECDSA,
    EllipticCurvePublicKey,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey
from joserfc.jws import extract_compact
from joserfc.util import urlsafe_b64decode

from connector.core.clock import Clock
from connector.core.errors import UnauthorizedError
from connector.core.identity.claims import (
    DEFAULT_LEEWAY_SECONDS,
    MAX_LIFETIME_SECONDS,
    VerifiedCaller,
    check_claims,
)
from connector.identity.did import DidDocumentSource, UnknownKeyError, select_key
from connector.identity.keys import KeyRing
from connector.identity.profile import AuthProfile, InsecureProfileError, check_profile
from connector.identity.replay import ReplayStore
from connector.identity.trust import MEMBERSHIP_CREDENTIAL, TrustList

__all__ = [
    "DEV_TOKEN_PREFIX",
    "AuthProfile",
    "DevTokenIssuer",
    "InsecureProfileError",
    "PresentationCheck",
    "TokenIssuer",
    "TokenVerifier",
    "VerifiedCaller",
    "bearer",
    "check_profile",
]

logger = logging.getLogger(__name__)


DEV_TOKEN_PREFIX: Final = "dev:"  # noqa: S105 - a scheme marker, not a secret
MAX_TOKEN_BYTES: Final = 8192
_ALGS_BY_KEY: Final = {("EC", "P-256"): ["ES256"], ("OKP", "Ed25519"): ["EdDSA", "Ed25519"]}
_ALLOWED_ALGS: Final = frozenset({"ES256", "EdDSA", "Ed25519"})
_FORBIDDEN_HEADERS: Final = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})


class PresentationCheck(Protocol):
    """The DCP presentation step (`connector.identity.presentations.PresentationVerifier`)."""

    async def verify(self, holder: str, access_token: str) -> Mapping[str, object]: ...


def bearer(token: str) -> str:
    """The `Authorization` header value for `token`."""
    return f"Bearer {token}"


class TokenIssuer:
    """Mints outbound self-issued tokens with the key ring's current key."""

    def __init__(
        self,
        keyring: KeyRing,
        our_did: str,
        *,
        clock: Clock,
        lifetime: timedelta = timedelta(seconds=MAX_LIFETIME_SECONDS),
    ) -> None:
        if not timedelta(0) < lifetime <= timedelta(seconds=MAX_LIFETIME_SECONDS):
            raise ValueError(f"token lifetime must be in (0, {MAX_LIFETIME_SECONDS}] seconds")
        self.keyring = keyring
        self.our_did = our_did
        self._clock = clock
        self._lifetime = int(lifetime.total_seconds())

    def issue(self, audience: str, *, extra_claims: Mapping[str, object] | None = None) -> str:
        """A compact ES256 JWT for `audience` (the counterparty's DID)."""
        now = int(self._clock().timestamp())
        entry = self.keyring.current
        claims: dict[str, object] = dict(extra_claims or {})
        claims.update(
            iss=self.our_did,
            sub=self.our_did,
            aud=audience,
            jti=str(uuid.uuid4()),
            iat=now,
            exp=now + self._lifetime,
        )
        header = {"alg": "ES256", "typ": "JWT", "kid": f"{self.our_did}#{entry.key_id}"}
        return jwt.encode(header, claims, entry.key, algorithms=["ES256"])


class DevTokenIssuer:
    """`dev` profile: unsigned `dev:<participant-id>` tokens. Never in production."""

    def __init__(self, participant_id: str) -> None:
        self.participant_id = participant_id

    def issue(self, audience: str, *, extra_claims: Mapping[str, object] | None = None) -> str:
        return f"{DEV_TOKEN_PREFIX}{self.participant_id}"


def _b64json(segment: str) -> dict[str, object]:
    padded = segment + "=" * (-len(segment) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _import_key(jwk: dict[str, object]) -> ECKey | OKPKey:
    # Building the key object (decoding and validating the curve point) costs more than the
    # signature check itself, and a counterparty signs every message with the same key.
    return _import_public_key(json.dumps(jwk, sort_keys=True))


@functools.lru_cache(maxsize=256)
def _import_public_key(canonical_jwk: str) -> ECKey | OKPKey:
    jwk = json.loads(canonical_jwk)
    if jwk.get("kty") == "EC":
        return ECKey.import_key(jwk)
    return OKPKey.import_key(jwk)


_VerifyKey = EllipticCurvePublicKey | Ed25519PublicKey
#: Key selections kept per verifier (one per caller key) before the table starts over.
_SELECTED_MAX: Final = 1024
_ES256: Final = ECDSA(SHA256())


def _verify_key(jwk: Mapping[str, object]) -> _VerifyKey:
    """The `cryptography` key of a DID document's public JWK, imported once per key.

    joserfc imports and validates it (curve point, `use`/`key_ops` allowing `verify`); the cache
    is keyed on every member, so a changed JWK under the same kid is a new import."""
    return _verify_key_cached(tuple(sorted((str(k), json.dumps(v)) for k, v in jwk.items())))


@functools.lru_cache(maxsize=256)
def _verify_key_cached(members: tuple[tuple[str, str], ...]) -> _VerifyKey:
    jwk = {name: json.loads(value) for name, value in members}
    key = ECKey.import_key(jwk) if jwk.get("kty") == "EC" else OKPKey.import_key(jwk)
    native = key.get_op_key("verify")
    if not isinstance(native, EllipticCurvePublicKey | Ed25519PublicKey):
        raise ValueError("unsupported key type")
    return native


def _signature_valid(key: _VerifyKey, alg: str, signing_input: bytes, signature: bytes) -> bool:
    """The JWS signature check joserfc's ES256/EdDSA algorithms make, on the key object itself
    (decision 0026): ES256 carries r || s, 32 bytes each, which `cryptography` wants as DER."""
    try:
        if alg == "ES256" and isinstance(key, EllipticCurvePublicKey):
            if len(signature) != 64 or key.curve.name != "secp256r1":
                return False
            r = int.from_bytes(signature[:32], "big")
            s = int.from_bytes(signature[32:], "big")
            key.verify(encode_dss_signature(r, s), signing_input, _ES256)
            return True
        if alg in ("EdDSA", "Ed25519") and isinstance(key, Ed25519PublicKey):
            key.verify(signature, signing_input)
            return True
    except InvalidSignature:
        return False
    return False


def _json_object(data: bytes) -> dict[str, object]:
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


@dataclass(frozen=True, slots=True)
class _Signed:
    """A compact JWS taken apart once: what the signature covers, the signature, the claims."""

    signing_input: bytes
    signature: bytes
    claims: dict[str, object]


class TokenVerifier:
    """Verifies inbound `Authorization` headers (see the module docstring)."""

    def __init__(
        self,
        resolver: DidDocumentSource,
        replay_store: ReplayStore,
        trust_list: TrustList,
        our_did: str,
        clock: Clock,
        profile: AuthProfile = AuthProfile.SECURE,
        *,
        leeway: int = DEFAULT_LEEWAY_SECONDS,
        max_lifetime: int = MAX_LIFETIME_SECONDS,
        max_token_bytes: int = MAX_TOKEN_BYTES,
        presentations: PresentationCheck | None = None,
    ) -> None:
        if (profile == AuthProfile.DCP) != (presentations is not None):
            raise ValueError("the dcp profile needs a presentation check, and only it")
        self._resolver = resolver
        self._replay = replay_store
        self._trust = trust_list
        self._our_did = our_did
        self._clock = clock
        self._profile = AuthProfile(profile)
        self._leeway = leeway
        self._max_lifetime = max_lifetime
        self._max_token_bytes = max_token_bytes
        #: (issuer, kid, strict) -> (document, verification method id, algorithms, key).
        self._selected: dict[
            tuple[str, str | None, bool],
            tuple[Mapping[str, object], str, list[str], _VerifyKey],
        ] = {}
        self._presentations = presentations

    async def verify(
        self, authorization_header: str | None, *, correlation_id: str | None = None
    ) -> VerifiedCaller:
        """Authenticate a caller from its `Authorization` header.

        `correlation_id` goes into the log line of a refusal (the answer carries it too).

        Raises:
            UnauthorizedError: any authentication or trust failure (reason for logs only).
            UnavailableError: the replay store is down (fail closed).
        """
        context: dict[str, object] = {}
        if correlation_id is not None:
            context["correlation_id"] = correlation_id
        try:
            return await self._verify(authorization_header, context)
        except UnauthorizedError as exc:
            logger.info("DSP caller rejected", extra={"reason": exc.reasons[0], **context})
            raise

    async def _verify(self, header: str | None, context: dict[str, object]) -> VerifiedCaller:
        if not header:
            raise UnauthorizedError("missing Authorization header")
        if len(header) > self._max_token_bytes:
            raise UnauthorizedError("Authorization header too large")
        scheme, _, token = header.strip().partition(" ")
        if self._profile is AuthProfile.DEV:
            dev_caller = self._dev_caller(header.strip(), scheme, token.strip())
            if dev_caller is not None:
                return dev_caller
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthorizedError("Authorization is not a Bearer token")
        return await self._verify_jwt(token.strip(), context)

    def _dev_caller(self, raw: str, scheme: str, token: str) -> VerifiedCaller | None:
        if scheme.lower() == "bearer" and token.startswith(DEV_TOKEN_PREFIX):
            participant = token[len(DEV_TOKEN_PREFIX) :]
            if not participant:
                raise UnauthorizedError("dev token without participant id")
            return VerifiedCaller(did=participant, participant_id=participant, insecure=True)
        # EDC iam-mock token as sent by the DSP TCK (JSON, usually without `Bearer`).
        candidate = token if scheme.lower() == "bearer" else raw
        if candidate.startswith("{"):
            try:
                value = json.loads(candidate)
            except ValueError:
                return None
            if isinstance(value, dict):
                pid = value.get("clientId", value.get("client_id"))
                if isinstance(pid, str) and pid:
                    return VerifiedCaller(did=pid, participant_id=pid, insecure=True)
        return None

    async def _verify_jwt(self, token: str, context: dict[str, object]) -> VerifiedCaller:
        parts = token.split(".")
        if len(parts) != 3:
            raise UnauthorizedError("token is not a compact JWS")
        # Each segment is decoded and parsed once; the claims used after the signature check are
        # these, which is sound because the signature covers exactly these bytes (decision 0026).
        try:
            raw = [urlsafe_b64decode(part.encode("ascii")) for part in parts]
            header = _json_object(raw[0])
            unverified = _json_object(raw[1])
        except (ValueError, UnicodeError):  # binascii.Error is a ValueError
            raise UnauthorizedError("malformed token") from None
        signed = _Signed(f"{parts[0]}.{parts[1]}".encode("ascii"), raw[2], unverified)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in _ALLOWED_ALGS:
            raise UnauthorizedError("token algorithm not allowed")
        if _FORBIDDEN_HEADERS & header.keys():
            raise UnauthorizedError("token header carries a forbidden parameter")

        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or issuer != unverified.get("sub"):
            raise UnauthorizedError("claims 'iss' and 'sub' missing or differ")
        if not issuer.startswith("did:web:"):
            raise UnauthorizedError("issuer is not a did:web DID")
        context["iss"] = issuer
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or not kid.startswith(issuer + "#")):
            raise UnauthorizedError("kid does not belong to the issuer")
        context["kid"] = kid
        if isinstance(unverified.get("jti"), str):
            context["jti"] = unverified["jti"]

        dcp = self._presentations is not None
        allow_listed = not dcp and self._trust.is_allowed(issuer)
        membership = unverified.get("membership")
        if dcp:
            # Before any DID resolution, like the trust pre-check it replaces.
            if not isinstance(unverified.get("token"), str) or not unverified["token"]:
                raise UnauthorizedError("no 'token' claim (DCP access token)")
        elif not allow_listed and not (
            self._trust.membership_enabled and isinstance(membership, str)
        ):
            raise UnauthorizedError("issuer is not trusted")

        strict = self._trust.requires_capability_invocation(issuer)
        document = await self._resolver.resolve(issuer)
        try:
            vm_id, claims = self._signed_claims(signed, alg, document, issuer, kid, strict)
        except UnknownKeyError:
            document = await self._resolver.resolve(issuer, force_refresh=True)
            vm_id, claims = self._signed_claims(signed, alg, document, issuer, kid, strict)
        except UnauthorizedError:
            # The key under this kid may have been replaced since we cached the document (a
            # rotation that kept the kid): look once more, as the resolver allows (at most once
            # per refresh interval per DID, and not right after a fetch), before refusing.
            fresher = await self._resolver.resolve(issuer, force_refresh=True)
            if fresher == document:
                raise
            context["refetched"] = True
            vm_id, claims = self._signed_claims(signed, alg, fresher, issuer, kid, strict)

        now = self._clock()
        checked = check_claims(
            claims,
            audience=self._our_did,
            now=now,
            leeway=self._leeway,
            max_lifetime=self._max_lifetime,
        )
        if checked.issuer != issuer:
            raise UnauthorizedError("claims changed after key selection")
        if not dcp and not allow_listed:
            await self._check_membership(claims.get("membership"), issuer, now)

        ttl = checked.expires_at + self._leeway - int(now.timestamp())
        await self._replay.claim(issuer, checked.jti, ttl_seconds=ttl)
        if self._presentations is not None:
            # After the replay claim: a replayed token never makes us query anyone.
            access_token = claims.get("token")
            if not isinstance(access_token, str) or not access_token:
                raise UnauthorizedError("no 'token' claim (DCP access token)")
            credentials = await self._presentations.verify(issuer, access_token)
            return VerifiedCaller(
                did=issuer, participant_id=issuer, claims=credentials, key_id=vm_id
            )
        return VerifiedCaller(did=issuer, participant_id=issuer, claims=claims, key_id=vm_id)

    def _signed_claims(
        self,
        signed: _Signed,
        alg: str,
        document: Mapping[str, object],
        issuer: str,
        kid: str | None,
        strict: bool,
    ) -> tuple[str, dict[str, object]]:
        """(verification method id, claims) of a token signed by `kid`'s key in `document`.

        Raises:
            UnknownKeyError: `kid` is not in the document.
            UnauthorizedError: the key does not fit the token or the signature is invalid.
        """
        selected = self._selected.get((issuer, kid, strict))
        # The same document object gives the same selection; the entry holds the document, so
        # its identity cannot be reused by another one (decision 0026).
        if selected is None or selected[0] is not document:
            vm_id, jwk = select_key(document, issuer, kid, require_relationship=strict)
            algorithms = _ALGS_BY_KEY[(str(jwk["kty"]), str(jwk["crv"]))]
            try:
                key = _verify_key(jwk)
            except (JoseError, ValueError):
                raise UnauthorizedError("token signature invalid") from None
            if len(self._selected) >= _SELECTED_MAX:
                self._selected.clear()
            selected = (document, vm_id, algorithms, key)
            self._selected[(issuer, kid, strict)] = selected
        _, vm_id, algorithms, key = selected
        if alg not in algorithms:
            raise UnauthorizedError("token algorithm does not match the key type")
        if not _signature_valid(key, alg, signed.signing_input, signed.signature):
            raise UnauthorizedError("token signature invalid")
        return vm_id, dict(signed.claims)

    async def _check_membership(self, credential: object, holder: str, now: datetime) -> None:
        """A JWT membership credential (VC 1.1 JWT form) signed by a trusted issuer for `holder`.

        Checked: issuer trusted for the credential type; signature by a key of the issuer DID
        listed under `assertionMethod`; `sub` (or `vc.credentialSubject.id`) == holder;
        `exp`/`nbf` against `now` with leeway.
        """
        if not isinstance(credential, str):
            raise UnauthorizedError("issuer is not trusted")
        parts = credential.split(".")
        try:
            header = extract_compact(credential.encode("ascii")).protected
            unverified = _b64json(parts[1]) if len(parts) == 3 else {}
        except (JoseError, ValueError, UnicodeError):
            raise UnauthorizedError("malformed membership credential") from None
        vc_issuer = unverified.get("iss")
        kid = header.get("kid")
        vc = unverified.get("vc")
        types = vc.get("type", []) if isinstance(vc, dict) else []
        types = [types] if isinstance(types, str) else types
        if (
            not isinstance(vc_issuer, str)
            or not vc_issuer.startswith("did:web:")
            or header.get("alg") not in _ALLOWED_ALGS
            or _FORBIDDEN_HEADERS & header.keys()
            or not isinstance(types, list)
            or MEMBERSHIP_CREDENTIAL not in types
            or not self._trust.trusts_issuer(vc_issuer, [t for t in types if isinstance(t, str)])
        ):
            raise UnauthorizedError("membership credential not from a trusted issuer")
        if kid is not None and (not isinstance(kid, str) or not kid.startswith(vc_issuer + "#")):
            raise UnauthorizedError("membership credential kid does not belong to its issuer")
        document = await self._resolver.resolve(vc_issuer)
        _vm_id, jwk = select_key(
            document, vc_issuer, kid, relationship="assertionMethod", require_relationship=True
        )
        algorithms = _ALGS_BY_KEY[(str(jwk["kty"]), str(jwk["crv"]))]
        try:
            claims = jwt.decode(credential, _import_key(jwk), algorithms=algorithms).claims
        except (JoseError, ValueError):
            raise UnauthorizedError("membership credential signature invalid") from None
        subject = claims.get("sub")
        if subject is None and isinstance(vc, dict):
            cs = vc.get("credentialSubject")
            subject = cs.get("id") if isinstance(cs, dict) else None
        if subject != holder:
            raise UnauthorizedError("membership credential is about another participant")
        current = int(now.timestamp())
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if isinstance(exp, int | float) and current >= exp + self._leeway:
            raise UnauthorizedError("membership credential expired")
        if isinstance(nbf, int | float) and nbf > current + self._leeway:
            raise UnauthorizedError("membership credential not yet valid")
