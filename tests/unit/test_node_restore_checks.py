"""`connector restore --node`'s checks before it touches anything: what counts as a non-empty data
dir (a backup directory or work dir placed inside does not) and which configuration differences
it names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connector.backup.node_restore import _occupied, _unused_ring, config_differences
from connector.settings import load_settings


def test_a_data_dir_holding_only_its_backups_and_work_dir_counts_as_empty(tmp_path: Path) -> None:
    data = tmp_path / "var"
    settings = load_settings(env={}, data_dir=data)
    assert _occupied(settings, data) == []  # not even created yet
    (data / "backups" / "20260101T000000Z-abcdef").mkdir(parents=True)
    (data / "backups-work").mkdir()
    assert _occupied(settings, data) == []
    (data / "temporal").mkdir()
    (data / "management-api-key").write_text("k")
    assert [p.name for p in _occupied(settings, data)] == ["management-api-key", "temporal"]


def test_a_data_key_ring_alone_is_an_unused_one_the_restore_may_replace(tmp_path: Path) -> None:
    data = tmp_path / "var"
    settings = load_settings(env={}, data_dir=data)
    ring = settings.encryption.resolved_key_file(data)
    ring.parent.mkdir(parents=True)
    ring.write_text("{}")
    assert _unused_ring(settings, data, _occupied(settings, data)) == ring
    # An identity key beside it: the node has been used, the data dir is not empty.
    (ring.parent / "identity.pem").write_text("k")
    assert _unused_ring(settings, data, _occupied(settings, data)) is None
    (ring.parent / "identity.pem").unlink()
    (data / "temporal").mkdir()
    assert _unused_ring(settings, data, _occupied(settings, data)) is None
    explicit = load_settings(env={}, data_dir=data, encryption={"key_file": str(ring)})
    (data / "temporal").rmdir()
    assert _unused_ring(explicit, data, _occupied(explicit, data)) is None


def test_a_backup_directory_elsewhere_leaves_nothing_inside_unaccounted(tmp_path: Path) -> None:
    data = tmp_path / "var"
    settings = load_settings(env={}, data_dir=data, backup={"directory": str(tmp_path / "b")})
    (data / "backups").mkdir(parents=True)
    assert [p.name for p in _occupied(settings, data)] == ["backups"]


def test_identity_settings_that_differ_are_named_and_nothing_else() -> None:
    server = {"public_url": "https://edge.example", "port": 3000, "host": "0.0.0.0"}
    backed_up: dict[str, Any] = {
        "identity": {"participant_id": "urn:a", "did": None, "trust": {"x": 1}},
        "server": server,
        "temporal": {"namespace": "connector"},
    }
    same = {**backed_up, "server": {**server, "host": "127.0.0.1"}}
    assert config_differences(backed_up, same) == []
    moved = {**backed_up, "server": {**server, "public_url": "https://new.example"}}
    assert config_differences(backed_up, moved) == [
        "server.public_url: backup 'https://edge.example', now 'https://new.example'"
    ]
