"""The Temporal payload codec: AES-256-GCM over every payload, keys from the data key ring.

Installed on every client the connector builds (`connector.temporal.client.connect`), and so on
every worker, it encrypts workflow and activity inputs and results, update and query arguments
and answers, signal arguments, heartbeat and failure details before they leave the process:
workflow histories, the Temporal database (the dev server's SQLite file, an external cluster,
Temporal Cloud) and the UI without a codec server hold ciphertext only. Search attributes are
not payloads of the codec and stay readable (ids and states only); failure messages stay readable.

Encoded payload:

    metadata: encoding = "binary/encrypted", encryption-key-id = <kid>,
              encryption-cipher = "AES-256-GCM"
    data:     nonce (12 random bytes) || AES-256-GCM(subkey, nonce, inner Payload protobuf,
              associated data = "connector/temporal-payload/v1|<kid>")

New payloads use the ring's current key; decoding looks the key id up, so histories written
before a rotation still decode (keep old keys for at least `temporal.retention_days`). A payload
without the `binary/encrypted` encoding (histories from before this codec, a test's plain
client) passes through unchanged.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

from connector.encryption.keyring import DataKeys, KeyFileError
from connector.encryption.runtime import data_keys
from connector.settings import Settings
from connector.temporal.codec_path import ENDPOINT_PATH

__all__ = [
    "CIPHER",
    "ENCODING",
    "ENDPOINT_PATH",
    "KEY_ID_METADATA",
    "CodecError",
    "EncryptionCodec",
    "data_converter",
]

ENCODING: Final = b"binary/encrypted"
KEY_ID_METADATA: Final = "encryption-key-id"
CIPHER_METADATA: Final = "encryption-cipher"
CIPHER: Final = b"AES-256-GCM"
NONCE_BYTES: Final = 12


class CodecError(Exception):
    """A payload does not decode: unknown key id, tampered, or not ours."""


def _aad(kid: str) -> bytes:
    return f"connector/temporal-payload/v1|{kid}".encode()


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: DataKeys) -> None:
        self.keys = keys
        self._ciphers: dict[str, AESGCM] = {}

    def _cipher(self, kid: str, key: bytes) -> AESGCM:
        cipher = self._ciphers.get(kid)
        if cipher is None:
            cipher = self._ciphers[kid] = AESGCM(key)
        return cipher

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        kid, key = self.keys.current("temporal-payload")
        cipher = self._cipher(kid, key)
        aad = _aad(kid)
        out = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), aad)
            out.append(
                Payload(
                    metadata={
                        "encoding": ENCODING,
                        KEY_ID_METADATA: kid.encode(),
                        CIPHER_METADATA: CIPHER,
                    },
                    data=nonce + sealed,
                )
            )
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                out.append(payload)
                continue
            kid = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
            try:
                cipher = self._cipher(kid, self.keys.get(kid, "temporal-payload"))
                data = payload.data
                plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], _aad(kid))
            except KeyFileError as exc:
                raise CodecError(str(exc)) from None
            except (InvalidTag, ValueError):
                raise CodecError(f"a payload encrypted with key {kid!r} does not open") from None
            out.append(Payload.FromString(plain))
        return out


def data_converter(settings: Settings, keys: DataKeys | None = None) -> DataConverter:
    """The pydantic data converter, with the encryption codec unless
    `encryption.temporal_payloads` is off."""
    if not settings.encryption.temporal_payloads:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter, payload_codec=EncryptionCodec(keys or data_keys(settings))
    )
