import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from joserfc.jwk import ECKey

from connector.identity.keys import (
    KEYRING_FILE,
    InsecureKeyFileError,
    generate_key,
    key_id,
    keyring_from_files,
    load_or_create_keyring,
    load_private_key,
    prune_keyring,
    rotate_keyring,
    save_private_key,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=15)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generated_key_is_p256_and_key_id_is_thumbprint() -> None:
    key = generate_key()
    assert key.curve_name == "P-256"
    assert key.is_private
    assert key_id(key) == ECKey.import_key(key.as_dict(private=False)).thumbprint()


def test_save_uses_private_modes_and_reloads(tmp_path: Path) -> None:
    key = generate_key()
    path = tmp_path / "keys" / "k.pem"
    save_private_key(path, key)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert key_id(load_private_key(path)) == key_id(key)


def test_group_readable_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    save_private_key(path, generate_key())
    path.chmod(0o644)
    with pytest.raises(InsecureKeyFileError, match="chmod 600"):
        load_private_key(path)
    assert load_private_key(path, check_permissions=False).is_private


def test_non_p256_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(ECKey.generate_key("P-384", private=True).as_pem(private=True))
    path.chmod(0o600)
    with pytest.raises(ValueError, match="P-256"):
        load_private_key(path)


def test_first_start_generates_and_keeps_the_key(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    first = load_or_create_keyring(directory)
    assert mode(directory) == 0o700
    assert mode(directory / f"{first.current.key_id}.pem") == 0o600
    assert mode(directory / KEYRING_FILE) == 0o600
    again = load_or_create_keyring(directory)
    assert again.current.key_id == first.current.key_id
    assert again.previous == ()


def test_world_readable_key_directory_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    with pytest.raises(InsecureKeyFileError):
        load_or_create_keyring(directory)


def test_rotation_keeps_old_key_published_for_the_grace_period(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    old = load_or_create_keyring(directory, grace=GRACE)
    rotated = rotate_keyring(directory, now=NOW, grace=GRACE)
    assert rotated.current.key_id != old.current.key_id
    assert [e.key_id for e in rotated.previous] == [old.current.key_id]
    assert rotated.previous[0].retired_at == NOW

    published = [e.key_id for e in rotated.published(NOW + GRACE - timedelta(seconds=1))]
    assert published == [rotated.current.key_id, old.current.key_id]
    assert [e.key_id for e in rotated.published(NOW + GRACE)] == [rotated.current.key_id]

    reloaded = load_or_create_keyring(directory, grace=GRACE)
    assert reloaded == rotated
    assert reloaded.find(old.current.key_id) is not None


def test_prune_deletes_keys_past_their_grace(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    old = load_or_create_keyring(directory, grace=GRACE)
    rotate_keyring(directory, now=NOW, grace=GRACE)
    kept = prune_keyring(directory, now=NOW + timedelta(minutes=5), grace=GRACE)
    assert len(kept.previous) == 1
    pruned = prune_keyring(directory, now=NOW + GRACE, grace=GRACE)
    assert pruned.previous == ()
    assert not (directory / f"{old.current.key_id}.pem").exists()
    state = json.loads((directory / KEYRING_FILE).read_text())
    assert state == {"current": pruned.current.key_id, "previous": []}


def test_external_key_files(tmp_path: Path) -> None:
    current, previous = generate_key(), generate_key()
    save_private_key(tmp_path / "cur.pem", current)
    save_private_key(tmp_path / "old.pem", previous)
    ring = keyring_from_files(tmp_path / "cur.pem", [tmp_path / "old.pem"])
    assert ring.current.key_id == key_id(current)
    assert [e.key_id for e in ring.published(NOW)] == [key_id(current), key_id(previous)]
    assert set(ring.current.public_jwk()) == {"kty", "crv", "x", "y"}
