from datetime import UTC, datetime

import pytest

from connector.core.errors import UnauthorizedError
from connector.core.identity.claims import MAX_JTI_LENGTH, check_claims

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
T = int(NOW.timestamp())
US = "did:web:us.example"
THEM = "did:web:them.example"


def claims(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "iss": THEM,
        "sub": THEM,
        "aud": US,
        "jti": "j-1",
        "iat": T,
        "exp": T + 300,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_valid_claims_are_returned() -> None:
    checked = check_claims(claims(nbf=T), audience=US, now=NOW)
    assert checked.issuer == THEM
    assert checked.audience == (US,)
    assert checked.jti == "j-1"
    assert (checked.issued_at, checked.expires_at, checked.not_before) == (T, T + 300, T)


def test_audience_list_containing_us_is_accepted() -> None:
    assert check_claims(claims(aud=["x", US]), audience=US, now=NOW).audience == ("x", US)


def test_small_skew_is_tolerated() -> None:
    check_claims(claims(iat=T + 4, exp=T + 200, nbf=T + 5), audience=US, now=NOW)
    check_claims(claims(iat=T - 300, exp=T - 4), audience=US, now=NOW)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"iss": None}, "claim 'iss' is missing"),
        ({"sub": None}, "claim 'sub' is missing"),
        ({"sub": "did:web:other"}, "claims 'iss' and 'sub' differ"),
        ({"aud": None}, "claim 'aud' is missing"),
        ({"aud": [1, 2]}, "claim 'aud' is missing"),
        ({"aud": "did:web:someone-else"}, "claim 'aud' does not name this participant"),
        ({"exp": None}, "claim 'exp' is missing"),
        ({"iat": None}, "claim 'iat' is missing"),
        ({"exp": "soon"}, "claim 'exp' is not a number"),
        ({"exp": True}, "claim 'exp' is not a number"),
        ({"iat": T - 400, "exp": T - 5}, "token expired"),
        ({"iat": T + 60, "exp": T + 120}, "claim 'iat' is in the future"),
        ({"nbf": T + 60}, "token not yet valid ('nbf')"),
        ({"exp": T}, "claim 'exp' is not after 'iat'"),
        ({"iat": T - 10, "exp": T + 600}, "token lifetime 610s exceeds 300s"),
        ({"jti": None}, "claim 'jti' is missing"),
        ({"jti": ""}, "claim 'jti' is missing"),
        ({"jti": "x" * (MAX_JTI_LENGTH + 1)}, "claim 'jti' is too long"),
    ],
)
def test_each_violation_has_a_precise_reason(overrides: dict[str, object], reason: str) -> None:
    with pytest.raises(UnauthorizedError) as info:
        check_claims(claims(**overrides), audience=US, now=NOW)
    assert info.value.reasons == [reason]


def test_lifetime_and_leeway_are_configurable() -> None:
    with pytest.raises(UnauthorizedError, match="lifetime"):
        check_claims(claims(exp=T + 120), audience=US, now=NOW, max_lifetime=60)
    with pytest.raises(UnauthorizedError, match="expired"):
        check_claims(claims(iat=T - 100, exp=T - 1), audience=US, now=NOW, leeway=0)
