"""Verify a VC JWT handed to us as holder: by an issuer's Storage API call, or imported by the
operator (decision 0023).

Checked, in order: compact ES256/EdDSA JWS without forbidden headers; issuer a DID trusted
(`identity.trust.trusted_issuers`) for one of the credential's types, *before* any resolution
(an untrusted issuer cannot make us fetch); `kid` under the issuer's DID; signature by a key of
the issuer's DID document listed under `assertionMethod`; the subject is our DID; not expired.
"""

from __future__ import annotations

from datetime import datetime

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey
from joserfc.jws import extract_compact

from connector.core.errors import BadRequestError, UnauthorizedError
from connector.core.identity.dcp_holder import (
    CredentialFacts,
    credential_facts,
    unverified_claims,
)
from connector.identity.did import DidDocumentSource, select_key
from connector.identity.trust import TrustList

__all__ = ["ALGORITHMS_BY_KEY", "FORBIDDEN_HEADERS", "public_key", "verify_credential"]

ALGORITHMS_BY_KEY = {("EC", "P-256"): ["ES256"], ("OKP", "Ed25519"): ["EdDSA", "Ed25519"]}
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})


def public_key(jwk: dict[str, object]) -> ECKey | OKPKey:
    if jwk.get("kty") == "EC":
        return ECKey.import_key(jwk)  # type: ignore[arg-type]
    return OKPKey.import_key(jwk)  # type: ignore[arg-type]


async def verify_credential(
    token: str,
    *,
    resolver: DidDocumentSource,
    trust: TrustList,
    our_did: str,
    now: datetime,
    leeway: int = 30,
) -> CredentialFacts:
    """The facts of a credential about us, signed by an issuer we trust for its type.

    Raises:
        BadRequestError: not a VC JWT, or not about us, or expired.
        UnauthorizedError: untrusted issuer, unresolvable key, bad signature.
    """
    try:
        header = extract_compact(token.encode("ascii")).protected
        claims = unverified_claims(token)
    except (JoseError, ValueError, UnicodeError):
        raise BadRequestError("credential is not a compact JWT") from None
    facts = credential_facts(claims)
    if FORBIDDEN_HEADERS & header.keys() or header.get("alg") not in ("ES256", "EdDSA"):
        raise UnauthorizedError("credential header not acceptable")
    if not trust.trusts_issuer(facts.issuer_did, facts.types):
        raise UnauthorizedError("credential issuer is not trusted for its type")
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid.startswith(facts.issuer_did + "#")):
        raise UnauthorizedError("credential kid does not belong to its issuer")
    document = await resolver.resolve(facts.issuer_did)
    _vm, jwk = select_key(document, facts.issuer_did, kid, relationship="assertionMethod")
    algorithms = ALGORITHMS_BY_KEY[(str(jwk["kty"]), str(jwk["crv"]))]
    try:
        verified = jwt.decode(token, public_key(jwk), algorithms=algorithms).claims
    except (JoseError, ValueError):
        raise UnauthorizedError("credential signature invalid") from None
    if verified != claims:  # pragma: no cover - the same bytes decoded twice
        raise UnauthorizedError("credential claims changed")
    if facts.subject_did != our_did:
        raise BadRequestError("credential is about another participant")
    if facts.expires_at is not None and facts.expires_at.timestamp() + leeway <= now.timestamp():
        raise BadRequestError("credential expired")
    return facts
