"""The one codec of page tokens (connector.core.cursor): round trip, URL-safe, refusals."""

from __future__ import annotations

import base64
import json

import pytest

from connector.core import cursor


def test_a_token_round_trips_and_is_url_safe_without_padding() -> None:
    data = {"s": "createdAt:desc", "k": "2026-01-01T00:00:00+00:00", "id": "a/b?c"}
    token = cursor.encode(data)
    assert cursor.decode(token) == data
    assert not set(token) & {"=", "+", "/"}


def test_tokens_written_with_spaces_still_decode() -> None:
    spaced = base64.urlsafe_b64encode(json.dumps(["2026-01-01", "urn:uuid:1"]).encode())
    assert cursor.decode(spaced.decode().rstrip("=")) == ["2026-01-01", "urn:uuid:1"]


@pytest.mark.parametrize("token", ["garbage!", "bm90IGpzb24", "\u00e9"])
def test_what_is_not_a_token_is_a_value_error(token: str) -> None:
    with pytest.raises(ValueError, match="not a page token"):
        cursor.decode(token)
