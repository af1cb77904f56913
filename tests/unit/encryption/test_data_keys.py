"""The data key ring, sealed values and the stream format (real files, no services)."""

from __future__ import annotations

import io
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from connector.encryption import keyring
from connector.encryption.aead import (
    CHUNK_BYTES,
    DecryptionError,
    StreamEncryptor,
    decrypt_file,
    decrypt_stream,
    open_value,
    seal_value,
)
from connector.encryption.keyring import (
    DataKeys,
    InsecureKeyFileError,
    KeyFileError,
    UnknownKeyError,
    create_key_file,
    rotate,
)
from connector.encryption.runtime import data_keys
from connector.encryption.values import is_secret_property, open_address, seal_address
from connector.settings import load_settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def ring(tmp_path: Path) -> DataKeys:
    return DataKeys.open(tmp_path / "keys" / "data-keys.json", create=True)


def test_the_managed_ring_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    settings = load_settings(env={}, data_dir=tmp_path / "var")
    first = data_keys(settings)
    path = tmp_path / "var" / "keys" / "data-keys.json"
    assert first.path == path.resolve()
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert data_keys(settings).current_kid == first.current_kid  # found again, not regenerated
    stored = json.loads(path.read_text())
    assert stored["current"] == first.current_kid
    assert len(stored["keys"]) == 1


def test_concurrent_first_starts_create_exactly_one_ring(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "data-keys.json"
    created: list[bool] = []
    threads = [
        threading.Thread(target=lambda: created.append(create_key_file(path))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert created.count(True) == 1


def test_an_explicit_key_file_must_exist_and_must_be_private(tmp_path: Path) -> None:
    missing = load_settings(env={}, data_dir=tmp_path, encryption={"key_file": tmp_path / "no"})
    with pytest.raises(KeyFileError, match="does not exist"):
        data_keys(missing)
    path = tmp_path / "ring.json"
    create_key_file(path)
    path.chmod(0o644)
    settings = load_settings(env={}, data_dir=tmp_path, encryption={"key_file": path})
    with pytest.raises(InsecureKeyFileError, match="chmod 600"):
        data_keys(settings)
    path.chmod(0o400)  # read-only for the owner is fine (a mounted secret)
    assert data_keys(settings).current_kid


def test_a_malformed_ring_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "ring.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b'{"current": "dk-x", "keys": []}')
    os.close(fd)
    with pytest.raises(KeyFileError, match=str(path)):
        DataKeys.open(path, create=False)


def test_purposes_use_different_subkeys(ring: DataKeys) -> None:
    kid, payload_key = ring.current("temporal-payload")
    assert ring.get(kid, "backup") != payload_key
    assert ring.get(kid, "edr") not in (payload_key, ring.get(kid, "backup"))
    sealed = seal_value(ring, "edr", "secret", b"ctx")
    with pytest.raises(DecryptionError):
        open_value(ring, "backup", sealed, b"ctx")


def test_sealed_values_need_their_context_and_survive_rotation(ring: DataKeys) -> None:
    sealed = seal_value(ring, "edr", "token-123", b"edr|t1|authorization")
    assert "token-123" not in sealed
    assert sealed.startswith(f"enc:v1:{ring.current_kid}:")
    with pytest.raises(DecryptionError):
        open_value(ring, "edr", sealed, b"edr|t2|authorization")  # another transfer's row
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(DecryptionError):
        open_value(ring, "edr", tampered, b"edr|t1|authorization")
    old_kid = ring.current_kid
    new_kid = rotate(ring.path)
    reopened = DataKeys.open(ring.path, create=False)
    assert reopened.current_kid == new_kid != old_kid
    assert open_value(reopened, "edr", sealed, b"edr|t1|authorization") == "token-123"
    assert open_value(reopened, "edr", "plain", b"x") == "plain"  # stored before sealing


def test_a_running_process_follows_a_rotation_by_another_process(ring: DataKeys) -> None:
    other = DataKeys.open(ring.path, create=False)
    rotate(ring.path)
    sealed = seal_value(DataKeys.open(ring.path, create=False), "edr", "v", b"c")
    # `other` loaded the ring before the rotation: the unknown key id makes it re-read the file.
    assert open_value(other, "edr", sealed, b"c") == "v"
    with pytest.raises(UnknownKeyError):
        other.get("dk-not-there", "edr")


def test_data_address_secrets_are_sealed_and_the_rest_stays_readable(ring: DataKeys) -> None:
    address = {
        "@type": "DataAddress",
        "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
        "endpoint": "http://provider/public/1",
        "endpointProperties": [
            {"@type": "EndpointProperty", "name": "authorization", "value": "tok-abc"},
            {"@type": "EndpointProperty", "name": "refreshToken", "value": "ref-def"},
            {"@type": "EndpointProperty", "name": "authType", "value": "bearer"},
            {"@type": "EndpointProperty", "name": "expiresIn", "value": "300"},
        ],
    }
    sealed = seal_address(ring, address, "pid-1")
    text = json.dumps(sealed)
    assert "tok-abc" not in text
    assert "ref-def" not in text
    assert "bearer" in text
    assert "http://provider/public/1" in text
    assert seal_address(ring, sealed, "pid-1") == sealed  # sealing twice changes nothing
    assert open_address(ring, sealed, "pid-1") == address
    with pytest.raises(DecryptionError):
        open_address(ring, sealed, "pid-2")
    assert is_secret_property("https://w3id.org/edc/v0.0.1/ns/authorization")
    assert not is_secret_property("authType")


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES + 7]
)
def test_the_stream_format_round_trips_at_chunk_boundaries(
    ring: DataKeys, tmp_path: Path, size: int
) -> None:
    plain = os.urandom(size)
    enc = StreamEncryptor(ring, "backup")
    parts = [enc.header]
    for offset in range(0, size, 300_000):  # input pieces that do not align with chunks
        parts.append(enc.update(plain[offset : offset + 300_000]))
    parts.append(enc.finalize())
    cipher = b"".join(parts)
    assert size < 16 or plain[:64] not in cipher  # (a byte or two may occur by chance)
    assert b"".join(decrypt_stream(ring, "backup", io.BytesIO(cipher))) == plain
    source, target = tmp_path / "a.enc", tmp_path / "a.plain"
    source.write_bytes(cipher)
    assert decrypt_file(ring, "backup", source, target) == size
    assert target.read_bytes() == plain
    assert mode(target) == 0o600


def test_the_stream_format_detects_truncation_tampering_and_reordering(ring: DataKeys) -> None:
    enc = StreamEncryptor(ring, "backup", chunk_bytes=1024)
    cipher = enc.header + enc.update(os.urandom(5000)) + enc.finalize()
    header = len(enc.header)
    block = 1024 + 16

    def fails(data: bytes) -> None:
        with pytest.raises(DecryptionError):
            b"".join(decrypt_stream(ring, "backup", io.BytesIO(data)))

    fails(cipher[:-1])  # cut inside the last chunk
    fails(cipher[: header + 2 * block])  # whole chunks dropped at the end: no last chunk
    flipped = bytearray(cipher)
    flipped[header + 10] ^= 1
    fails(bytes(flipped))
    swapped = cipher[:header] + cipher[header + block : header + 2 * block]
    swapped += cipher[header : header + block] + cipher[header + 2 * block :]
    fails(swapped)
    fails(b"PGDMP" + cipher[5:])  # not ours
    other = DataKeys.open(ring.path.parent / "other.json", create=True)
    fails_other = enc.header.replace(ring.current_kid.encode(), other.current_kid.encode())
    with pytest.raises(DecryptionError):
        b"".join(decrypt_stream(other, "backup", io.BytesIO(fails_other + cipher[header:])))


def test_keyring_module_exports_exist() -> None:
    for name in keyring.__all__:
        assert hasattr(keyring, name), name
