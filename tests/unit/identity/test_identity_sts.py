from datetime import UTC, datetime

import pytest
from joserfc import jwt
from joserfc.jws import extract_compact

from connector.identity.did import MemoryDidSource
from connector.identity.keys import KeyEntry, KeyRing, generate_key, key_id
from connector.identity.profile import AuthProfile
from connector.identity.replay import MemoryReplayStore
from connector.identity.sts import DcpTokenIssuer, issue_access_token, issue_si_token
from connector.identity.tokens import TokenVerifier
from connector.identity.trust import TrustList

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
US = "did:web:holder.example"
VERIFIER = "did:web:verifier.example"
SCOPE = "org.eclipse.dspace.dcp.vc.type:MembershipCredential:read"


def ring() -> KeyRing:
    key = generate_key()
    return KeyRing(current=KeyEntry(key=key, key_id=key_id(key)))


def test_access_token_is_signed_by_us_for_us_naming_the_verifier() -> None:
    keys = ring()
    token = issue_access_token(keys, US, VERIFIER, [SCOPE, "x:y:z"], NOW)
    header = extract_compact(token.encode()).protected
    assert header == {"alg": "ES256", "typ": "JWT", "kid": f"{US}#{keys.current.key_id}"}
    claims = jwt.decode(token, keys.current.key, algorithms=["ES256"]).claims
    t = int(NOW.timestamp())
    assert claims["iss"] == claims["aud"] == US
    assert claims["sub"] == VERIFIER
    assert claims["scope"] == f"{SCOPE} x:y:z"
    assert (claims["iat"], claims["exp"]) == (t, t + 300)
    assert claims["jti"].startswith("urn:uuid:")


def test_si_token_carries_token_only_when_given() -> None:
    keys = ring()
    bare = jwt.decode(
        issue_si_token(keys, US, VERIFIER, NOW), keys.current.key, algorithms=["ES256"]
    ).claims
    assert bare["iss"] == bare["sub"] == US
    assert bare["aud"] == VERIFIER
    assert "token" not in bare
    carrying = jwt.decode(
        issue_si_token(keys, US, VERIFIER, NOW, token="abc"),
        keys.current.key,
        algorithms=["ES256"],
    ).claims
    assert carrying["token"] == "abc"
    assert carrying["jti"] != bare["jti"]
    assert carrying["exp"] - carrying["iat"] == 300


def test_dcp_issuer_puts_our_access_token_in_the_si_token() -> None:
    keys = ring()
    issuer = DcpTokenIssuer(keys, US, [SCOPE], clock=lambda: NOW)
    si = jwt.decode(issuer.issue(VERIFIER), keys.current.key, algorithms=["ES256"]).claims
    assert (si["iss"], si["aud"]) == (US, VERIFIER)
    access = jwt.decode(si["token"], keys.current.key, algorithms=["ES256"]).claims
    assert (access["iss"], access["aud"], access["sub"], access["scope"]) == (
        US,
        US,
        VERIFIER,
        SCOPE,
    )


def test_the_dcp_profile_needs_a_presentation_check_and_only_it() -> None:
    source = MemoryDidSource({})
    with pytest.raises(ValueError, match="presentation check"):
        TokenVerifier(source, MemoryReplayStore(), TrustList(), US, lambda: NOW, AuthProfile.DCP)
