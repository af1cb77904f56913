"""AES-256-GCM with keys of the data key ring: sealed strings and a chunked file format.

**Sealed strings** (EDR tokens in Postgres): `enc:v1:<kid>:<base64url(nonce || ciphertext+tag)>`,
a random 96-bit nonce per value, the caller's context (e.g. transfer id and property name) as
associated data, so a sealed value copied to another row does not open there.

**Stream format** (backup archives), never holding a whole file in memory:

    header  = MAGIC (8 bytes "CNENC\\x00\\x01\\n") | len(kid) (1 byte) | kid (ASCII)
              | salt (16 random bytes) | chunk size (4 bytes, big endian)
    body    = chunk_0 | chunk_1 | ... | chunk_n    each = AES-256-GCM(plaintext chunk) (+16 tag)

The file key is HKDF-SHA256(purpose subkey, salt, "connector/stream/v1"), fresh per file. Chunk
`i` uses the nonce `i` (11 bytes, big endian) followed by 0x01 for the last chunk and 0x00 for
the others (the STREAM construction), with the header as associated data: reordered, dropped,
truncated or appended chunks and a changed header all fail authentication. Every chunk but the
last holds exactly `chunk size` plaintext bytes; the last holds 0..chunk size.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from connector.encryption.keyring import DataKeys, Purpose, UnknownKeyError

__all__ = [
    "CHUNK_BYTES",
    "MAGIC",
    "SEALED_PREFIX",
    "DecryptionError",
    "StreamEncryptor",
    "decrypt_file",
    "decrypt_stream",
    "is_encrypted_stream",
    "is_sealed",
    "open_value",
    "seal_value",
]

SEALED_PREFIX: Final = "enc:v1:"
MAGIC: Final = b"CNENC\x00\x01\n"
CHUNK_BYTES: Final = 1024 * 1024
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
SALT_BYTES: Final = 16
_MAX_CHUNK: Final = 64 * 1024 * 1024


class DecryptionError(Exception):
    """A ciphertext does not open: wrong or missing key, tampered, truncated or not ours."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- sealed strings ----------------------------------------------------------------------------


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


def seal_value(keys: DataKeys, purpose: Purpose, value: str, context: bytes) -> str:
    """`value` encrypted under the current key; `context` must be given again to open it."""
    kid, key = keys.current(purpose)
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, value.encode(), context)
    return f"{SEALED_PREFIX}{kid}:{_b64(nonce + sealed)}"


def open_value(keys: DataKeys, purpose: Purpose, value: str, context: bytes) -> str:
    """The plaintext of a sealed value (a value that is not sealed is returned as it is).

    Raises:
        DecryptionError: wrong context, tampered, or its key is not in the ring.
    """
    if not is_sealed(value):
        return value
    try:
        kid, blob = value[len(SEALED_PREFIX) :].split(":", 1)
        raw = _unb64(blob)
        key = keys.get(kid, purpose)
        plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context)
    except (ValueError, InvalidTag) as exc:
        raise DecryptionError(f"a sealed value does not open ({type(exc).__name__})") from None
    except UnknownKeyError as exc:
        raise DecryptionError(str(exc)) from None
    return plain.decode()


# --- stream format -----------------------------------------------------------------------------


def _file_key(subkey: bytes, salt: bytes) -> AESGCM:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=salt, info=b"connector/stream/v1"
    ).derive(subkey)
    return AESGCM(derived)


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class StreamEncryptor:
    """Encrypts a byte stream chunk by chunk: `header`, then `update()` per input piece, then
    `finalize()` once; concatenated, the outputs are the encrypted file."""

    def __init__(self, keys: DataKeys, purpose: Purpose, chunk_bytes: int = CHUNK_BYTES) -> None:
        kid, subkey = keys.current(purpose)
        self.kid = kid
        salt = secrets.token_bytes(SALT_BYTES)
        encoded = kid.encode("ascii")
        self.header = (
            MAGIC + bytes([len(encoded)]) + encoded + salt + chunk_bytes.to_bytes(4, "big")
        )
        self._aead = _file_key(subkey, salt)
        self._chunk = chunk_bytes
        self._buffer = bytearray()
        self._index = 0
        self._done = False

    def update(self, data: bytes) -> bytes:
        """Encrypted output for `data` (complete chunks only; the rest waits for more)."""
        if self._done:
            raise ValueError("the stream is finalized")
        self._buffer.extend(data)
        out = bytearray()
        # Strictly more than one chunk buffered: the last chunk is only known at finalize().
        while len(self._buffer) > self._chunk:
            piece = bytes(self._buffer[: self._chunk])
            del self._buffer[: self._chunk]
            out += self._aead.encrypt(_nonce(self._index, False), piece, self.header)
            self._index += 1
        return bytes(out)

    def finalize(self) -> bytes:
        """The last chunk (marked as last; empty plaintext for an empty stream)."""
        if self._done:
            raise ValueError("the stream is finalized")
        self._done = True
        last = self._aead.encrypt(_nonce(self._index, True), bytes(self._buffer), self.header)
        self._buffer.clear()
        return last


def is_encrypted_stream(head: bytes) -> bool:
    return head.startswith(MAGIC)


def _read_header(source: BinaryIO) -> tuple[bytes, str, bytes, int]:
    fixed = source.read(len(MAGIC) + 1)
    if len(fixed) < len(MAGIC) + 1 or not fixed.startswith(MAGIC):
        raise DecryptionError("not an encrypted archive (no header)")
    kid_len = fixed[-1]
    rest = source.read(kid_len + SALT_BYTES + 4)
    if len(rest) != kid_len + SALT_BYTES + 4:
        raise DecryptionError("truncated header")
    kid = rest[:kid_len].decode("ascii", errors="replace")
    salt = rest[kid_len : kid_len + SALT_BYTES]
    chunk = int.from_bytes(rest[kid_len + SALT_BYTES :], "big")
    if not 0 < chunk <= _MAX_CHUNK:
        raise DecryptionError(f"implausible chunk size {chunk}")
    return fixed + rest, kid, salt, chunk


def decrypt_stream(keys: DataKeys, purpose: Purpose, source: BinaryIO) -> Iterator[bytes]:
    """Plaintext chunks of an encrypted stream; raises DecryptionError at the first bad chunk
    (a consumer must discard what it received when that happens)."""
    header, kid, salt, chunk = _read_header(source)
    try:
        aead = _file_key(keys.get(kid, purpose), salt)
    except UnknownKeyError as exc:
        raise DecryptionError(str(exc)) from None
    size = chunk + TAG_BYTES
    index = 0
    pending = source.read(size)
    while True:
        following = source.read(size)
        last = not following
        if not pending or (not last and len(pending) != size):
            raise DecryptionError("truncated archive")
        try:
            yield aead.decrypt(_nonce(index, last), pending, header)
        except InvalidTag:
            raise DecryptionError(f"chunk {index} does not authenticate") from None
        if last:
            return
        index += 1
        pending = following


def decrypt_file(keys: DataKeys, purpose: Purpose, source: Path, target: Path) -> int:
    """Decrypt `source` into `target` (created 0600, removed again on failure); plaintext bytes."""
    written = 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(target, flags, 0o600)
    try:
        with source.open("rb") as src, os.fdopen(fd, "wb") as dst:
            for piece in decrypt_stream(keys, purpose, src):
                dst.write(piece)
                written += len(piece)
            dst.flush()
            os.fsync(dst.fileno())
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return written
