"""StatusList2021 bitstrings: bit order, encoding, refusals (decision 0024)."""

import base64
import gzip

import pytest

from connector.core.issuer.statuslist import (
    MAX_BITS,
    MIN_BITS,
    StatusListError,
    bit_is_set,
    decode_list,
    encode_list,
    revoked_list,
)


def test_bit_zero_is_the_most_significant_bit_of_the_first_byte() -> None:
    bits = revoked_list([0, 9, MIN_BITS - 1])
    assert len(bits) == MIN_BITS // 8
    assert bits[0] == 0b1000_0000
    assert bits[1] == 0b0100_0000
    assert bits[-1] == 0b0000_0001
    assert sum(bin(b).count("1") for b in bits) == 3


def test_encoded_list_is_unpadded_base64url_of_gzip_and_decodes_back() -> None:
    bits = revoked_list([5, 77_777])
    encoded = encode_list(bits)
    assert "=" not in encoded
    assert "+" not in encoded
    assert "/" not in encoded
    raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    assert gzip.decompress(raw) == bits
    decoded = decode_list(encoded)
    assert bit_is_set(decoded, 5)
    assert bit_is_set(decoded, 77_777)
    assert not bit_is_set(decoded, 4)
    assert not bit_is_set(decoded, 6)


def test_the_same_bits_encode_to_the_same_text() -> None:
    assert encode_list(revoked_list([3])) == encode_list(revoked_list([3]))


def test_a_list_shorter_than_the_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        revoked_list([], size_bits=MIN_BITS - 8)


def test_an_index_outside_the_list_is_refused() -> None:
    with pytest.raises(StatusListError):
        revoked_list([MIN_BITS])
    with pytest.raises(StatusListError):
        bit_is_set(revoked_list([]), -1)


def test_text_that_is_not_base64url_gzip_is_refused() -> None:
    with pytest.raises(StatusListError):
        decode_list("not*base64")
    with pytest.raises(StatusListError):
        decode_list(base64.urlsafe_b64encode(b"plain bytes").decode().rstrip("="))


def test_a_list_inflating_beyond_the_cap_is_refused() -> None:
    bomb = base64.urlsafe_b64encode(gzip.compress(bytes(MAX_BITS // 8 + 1))).decode()
    with pytest.raises(StatusListError, match="too large"):
        decode_list(bomb.rstrip("="))
