"""The operator webhook's signature header (decision 0013): HMAC-SHA256 over `<t>.<body>`,
checked against a tolerance window; a changed body, key or timestamp fails."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from connector.core.webhook_signature import HEADER, sign, signature_header, verify

SECRET = b"webhook-secret-0123456789"
BODY = b'{"id":"n1","process":"transfer"}'
T = 1_700_000_000


def test_the_header_is_the_documented_hmac() -> None:
    mac = hmac.new(SECRET, f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, T, BODY) == mac
    assert signature_header(SECRET, T, BODY) == f"t={T},v1={mac}"
    assert HEADER == "X-Connector-Signature"


def test_a_fresh_signature_verifies() -> None:
    header = signature_header(SECRET, T, BODY)
    assert verify(header, SECRET, BODY, now=T)
    assert verify(header, SECRET, BODY, now=T + 300)
    assert verify(header, SECRET, BODY, now=T - 300)
    # Several v1 values (a receiver during key rotation): one valid one suffices.
    assert verify(f"t={T},v1=00,v1={sign(SECRET, T, BODY)}", SECRET, BODY, now=T)


@pytest.mark.parametrize(
    ("header", "secret", "body", "now"),
    [
        (None, SECRET, BODY, T),
        ("", SECRET, BODY, T),
        (signature_header(SECRET, T, BODY), SECRET, BODY, T + 301),  # replayed later
        (signature_header(SECRET, T, BODY), SECRET, BODY, T - 301),
        (signature_header(SECRET, T, BODY), b"another-secret-0123456", BODY, T),
        (signature_header(SECRET, T, BODY), SECRET, BODY + b" ", T),
        # A replay with a new timestamp but the old MAC: the timestamp is inside the MAC.
        (f"t={T + 60},v1={sign(SECRET, T, BODY)}", SECRET, BODY, T + 60),
        (f"v1={sign(SECRET, T, BODY)}", SECRET, BODY, T),
        (f"t=abc,v1={sign(SECRET, T, BODY)}", SECRET, BODY, T),
        (f"t={T},t={T},v1={sign(SECRET, T, BODY)}", SECRET, BODY, T),
        (f"t={T}", SECRET, BODY, T),
        ("garbage", SECRET, BODY, T),
    ],
)
def test_what_does_not_verify(header: str | None, secret: bytes, body: bytes, now: int) -> None:
    assert not verify(header, secret, body, now=now)
