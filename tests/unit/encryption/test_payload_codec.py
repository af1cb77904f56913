"""The Temporal payload codec on its own: encryption, key ids, rotation, pass-through."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload

from connector.core.transfer.aggregate import JsonObject
from connector.encryption.keyring import DataKeys, rotate
from connector.settings import load_settings
from connector.temporal.codec import (
    ENCODING,
    KEY_ID_METADATA,
    CodecError,
    EncryptionCodec,
    data_converter,
)

SECRET = "push-sink-secret-7f3a"


@pytest.fixture
def keys(tmp_path: Path) -> DataKeys:
    return DataKeys.open(tmp_path / "keys" / "data-keys.json", create=True)


async def test_payloads_are_encrypted_with_the_key_id_in_the_metadata(keys: DataKeys) -> None:
    converter = data_converter(load_settings(env={}, data_dir=keys.path.parent.parent), keys)
    address: JsonObject = {"endpoint": "http://sink", "authorization": SECRET}
    encoded = await converter.encode([address])
    assert len(encoded) == 1
    payload = encoded[0]
    assert payload.metadata["encoding"] == ENCODING
    assert payload.metadata[KEY_ID_METADATA] == keys.current_kid.encode()
    assert SECRET.encode() not in payload.SerializeToString()
    assert b"json/plain" not in payload.SerializeToString()  # the inner metadata is hidden too
    assert await converter.decode(encoded, [dict]) == [address]


async def test_old_payloads_decode_after_rotation_and_new_ones_use_the_new_key(
    keys: DataKeys,
) -> None:
    codec = EncryptionCodec(keys)
    inner = Payload(metadata={"encoding": b"json/plain"}, data=b'{"token": "old"}')
    old = await codec.encode([inner])
    old_kid = keys.current_kid
    rotated = DataKeys.open(keys.path, create=False)
    rotate(keys.path)
    after = EncryptionCodec(DataKeys.open(keys.path, create=False))
    new = await after.encode([inner])
    assert new[0].metadata[KEY_ID_METADATA] != old_kid.encode()
    assert await after.decode(old) == [inner]
    # A process that loaded the ring before the rotation reads the new key from the file.
    assert await EncryptionCodec(rotated).decode(new) == [inner]


async def test_plain_payloads_pass_through_and_foreign_ones_fail(
    keys: DataKeys, tmp_path: Path
) -> None:
    codec = EncryptionCodec(keys)
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b"1")
    assert await codec.decode([plain]) == [plain]
    foreign = await EncryptionCodec(DataKeys.open(tmp_path / "other.json", create=True)).encode(
        [plain]
    )
    with pytest.raises(CodecError, match="not in"):
        await codec.decode(foreign)
    tampered = Payload()
    tampered.CopyFrom((await codec.encode([plain]))[0])
    tampered.data = tampered.data[:-1] + bytes([tampered.data[-1] ^ 1])
    with pytest.raises(CodecError, match="does not open"):
        await codec.decode([tampered])


def test_the_codec_can_be_switched_off(tmp_path: Path) -> None:
    settings = load_settings(env={}, data_dir=tmp_path, encryption={"temporal_payloads": False})
    assert data_converter(settings).payload_codec is None
    assert not (tmp_path / "keys").exists()  # no ring is created for a codec that is off
