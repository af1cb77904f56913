"""`connector issuer` as an operator runs it: init, participants, issue, revoke, list
(decision 0024). Real subprocesses of the `connector` command."""

import json
import stat
import subprocess
import sys
from pathlib import Path

from tests.issuer.issuer_harness import issuer_cli, issuer_json

HOLDER = "did:web:127.0.0.1%3A7301"
OTHER = "did:web:127.0.0.1%3A7302:participant"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_creates_a_private_issuer_whose_did_follows_the_public_url(tmp_path: Path) -> None:
    data_dir = tmp_path / "issuer"
    done = issuer_cli(data_dir, "init", "--public-url", "http://127.0.0.1:7300/", "--name", "ds")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "issuer did:web:127.0.0.1%3A7300"
    config = json.loads((data_dir / "issuer.json").read_text())
    assert config["did"] == "did:web:127.0.0.1%3A7300"
    assert config["public_url"] == "http://127.0.0.1:7300"
    assert config["data_space"] == "ds"
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "keys") == 0o700
    pems = list((data_dir / "keys").glob("*.pem"))
    assert len(pems) == 1
    assert mode(pems[0]) == 0o600
    assert b"PRIVATE KEY" in pems[0].read_bytes()
    assert mode(data_dir / "issuer.json") == 0o600
    assert mode(data_dir / "issuer.db") == 0o600

    again = issuer_cli(data_dir, "init", "--public-url", "http://127.0.0.1:7300")
    assert again.returncode == 1
    assert "holds an issuer already" in again.stderr


def test_a_public_url_with_a_path_makes_a_did_with_path_segments(tmp_path: Path) -> None:
    done = issuer_cli(tmp_path / "i", "init", "--public-url", "http://127.0.0.1:7300/ds/issuer")
    assert done.returncode == 0, done.stderr
    assert "issuer did:web:127.0.0.1%3A7300:ds:issuer" in done.stdout


def test_bad_input_gets_a_clear_error_and_no_traceback(tmp_path: Path) -> None:
    bad_url = issuer_cli(tmp_path / "a", "init", "--public-url", "ftp://127.0.0.1/x")
    assert bad_url.returncode == 2
    assert "--public-url" in bad_url.stderr
    missing = issuer_cli(tmp_path / "none", "list")
    assert missing.returncode == 2
    assert "connector issuer init" in missing.stderr
    data_dir = tmp_path / "b"
    assert issuer_cli(data_dir, "init", "--public-url", "http://127.0.0.1:7300").returncode == 0
    not_did = issuer_cli(data_dir, "participants", "add", "https://example.org")
    assert not_did.returncode == 1
    assert "not a did:web DID" in not_did.stderr
    stranger = issuer_cli(data_dir, "issue", HOLDER)
    assert stranger.returncode == 1
    assert "not a participant" in stranger.stderr
    unknown = issuer_cli(data_dir, "revoke", "urn:uuid:00000000-0000-0000-0000-000000000000")
    assert unknown.returncode == 1
    assert "no credential" in unknown.stderr
    for result in (bad_url, missing, not_did, stranger, unknown):
        assert "Traceback" not in result.stderr


def test_participants_issue_revoke_and_list(tmp_path: Path) -> None:
    data_dir = tmp_path / "issuer"
    assert issuer_cli(data_dir, "init", "--public-url", "http://127.0.0.1:7300").returncode == 0
    assert issuer_cli(data_dir, "participants", "add", HOLDER).stdout.startswith("added")
    assert "already" in issuer_cli(data_dir, "participants", "add", HOLDER).stdout
    assert issuer_cli(data_dir, "participants", "add", OTHER).returncode == 0
    listed = issuer_json(data_dir, "participants", "list")
    assert [p["did"] for p in listed] == [HOLDER, OTHER]
    assert issuer_cli(data_dir, "participants", "remove", OTHER).returncode == 0
    assert [p["did"] for p in issuer_json(data_dir, "participants", "list")] == [HOLDER]
    assert issuer_cli(data_dir, "participants", "remove", OTHER).returncode == 1

    printed = issuer_cli(data_dir, "issue", HOLDER, "--days", "30")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip().count(".") == 2  # a compact JWS on stdout, nothing else
    out = tmp_path / "vc.jwt"
    written = issuer_cli(data_dir, "issue", HOLDER, "--out", str(out))
    assert written.returncode == 0, written.stderr
    assert mode(out) == 0o600
    assert out.read_text().strip().count(".") == 2

    credentials = issuer_json(data_dir, "list")
    assert len(credentials) == 2
    assert {c["status"] for c in credentials} == {"valid"}
    assert {c["holder"] for c in credentials} == {HOLDER}
    indexes = {c["statusListIndex"] for c in credentials}
    assert len(indexes) == 2  # each credential has its own bit

    first = str(credentials[0]["credentialId"])
    revoked = issuer_cli(data_dir, "revoke", first)
    assert revoked.returncode == 0
    assert "revoked" in revoked.stdout
    after = {str(c["credentialId"]): c for c in issuer_json(data_dir, "list")}
    assert after[first]["status"] == "revoked"
    assert after[first]["revokedAt"] is not None
    assert [c["status"] for i, c in after.items() if i != first] == ["valid"]
    assert issuer_cli(data_dir, "revoke", first).returncode == 0  # revoking twice is harmless


def test_the_connector_help_lists_the_issuer_commands() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "connector", "issuer", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    for command in ("init", "participants", "issue", "revoke", "list", "requests", "serve"):
        assert command in done.stdout
