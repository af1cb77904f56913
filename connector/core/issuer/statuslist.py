"""StatusList2021 bitstrings (profile `vc11-sl2021/jwt`, decision 0024).

The list is a bitstring of at least `MIN_BITS` bits, gzip-compressed and base64url-encoded
without padding (`encodedList`). Bit `i` is read left to right: bit 0 is the most significant
bit of byte 0. A set bit means the credential holding that index is revoked.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import zlib
from collections.abc import Iterable
from typing import Final

__all__ = [
    "MIN_BITS",
    "StatusListError",
    "bit_is_set",
    "decode_list",
    "encode_list",
    "revoked_list",
]

#: 16 KiB: the minimum size StatusList2021 asks for, so one index says little about a holder.
MIN_BITS: Final = 131072
#: A decoded list larger than this is refused (gzip bombs); 16 times the minimum.
MAX_BITS: Final = 16 * MIN_BITS


class StatusListError(ValueError):
    """An `encodedList` that is not base64url of gzip, or an index outside the list."""


def revoked_list(revoked: Iterable[int], *, size_bits: int = MIN_BITS) -> bytes:
    """The raw bitstring with every index in `revoked` set."""
    if size_bits % 8 or size_bits < MIN_BITS:
        raise ValueError(f"a status list has a multiple of 8 bits, at least {MIN_BITS}")
    bits = bytearray(size_bits // 8)
    for index in revoked:
        if not 0 <= index < size_bits:
            raise StatusListError(f"status index {index} is outside the list")
        bits[index // 8] |= 0x80 >> (index % 8)
    return bytes(bits)


def encode_list(bits: bytes) -> str:
    """`encodedList`: base64url (no padding) of the gzip of `bits` (mtime 0: same bits, same
    text)."""
    compressed = gzip.compress(bits, mtime=0)
    return base64.urlsafe_b64encode(compressed).rstrip(b"=").decode("ascii")


def decode_list(encoded: str) -> bytes:
    """The raw bitstring of an `encodedList`.

    Raises:
        StatusListError: not base64url, not gzip, or larger than `MAX_BITS`.
    """
    try:
        compressed = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        bits = inflater.decompress(compressed, MAX_BITS // 8 + 1)
    except (binascii.Error, ValueError, zlib.error):
        raise StatusListError("encodedList is not base64url-encoded gzip") from None
    if len(bits) > MAX_BITS // 8:
        raise StatusListError("encodedList is too large")
    return bits


def bit_is_set(bits: bytes, index: int) -> bool:
    """Whether bit `index` (left to right) of `bits` is 1.

    Raises:
        StatusListError: `index` is outside the list.
    """
    if not 0 <= index < len(bits) * 8:
        raise StatusListError(f"status index {index} is outside the list")
    return bool(bits[index // 8] & (0x80 >> (index % 8)))
