import hmac
import stat
import statistics
import time
from pathlib import Path

import pytest

from connector.identity.apikeys import (
    EDGE_KEY_FILE,
    ensure_edge_api_key,
    generate_api_key,
    hash_api_key,
    load_api_keys,
)


def test_generated_keys_are_long_and_random() -> None:
    keys = {generate_api_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(len(k) >= 43 for k in keys)


def test_plain_and_prehashed_keys_verify() -> None:
    plain, hashed = generate_api_key(), generate_api_key()
    verifier = load_api_keys([plain, hash_api_key(hashed)], names=["ops", "ci"])
    assert verifier.verify(plain) == "ops"
    assert verifier.verify(hashed) == "ci"
    assert verifier.verify(hash_api_key(hashed)) is None
    assert verifier.verify(plain.swapcase()) is None
    assert verifier.verify(plain + "x") is None
    assert verifier.verify("") is None
    assert verifier.verify(None) is None
    assert hash_api_key(plain).startswith("sha256:")
    assert plain not in hash_api_key(plain)


def test_rotation_accepts_every_configured_key() -> None:
    keys = [generate_api_key() for _ in range(3)]
    verifier = load_api_keys(keys)
    assert [verifier.verify(k) for k in keys] == ["key-1", "key-2", "key-3"]


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        load_api_keys(["short"])
    with pytest.raises(ValueError, match="64 hex"):
        load_api_keys(["sha256:abc"])
    with pytest.raises(ValueError, match="one name"):
        load_api_keys([generate_api_key()], names=["a", "b"])


def test_every_digest_is_compared_without_early_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [generate_api_key() for _ in range(4)]
    verifier = load_api_keys(keys)
    calls: list[int] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert verifier.verify(keys[0]) == "key-1"
    assert len(calls) == 4
    verifier.verify("wrong" * 10)
    assert len(calls) == 8


def test_timing_does_not_depend_on_a_shared_prefix() -> None:
    """Statistical check (generous bound): wrong keys sharing a long prefix with a real key take
    as long as wrong keys sharing nothing. Medians of interleaved samples resist noise."""
    key = generate_api_key() * 4
    verifier = load_api_keys([key, generate_api_key(), generate_api_key()])
    near = key[:-1] + ("A" if key[-1] != "A" else "B")
    far = ("A" if key[0] != "A" else "B") + key[1:]
    near_times, far_times = [], []
    for _ in range(3000):
        t0 = time.perf_counter_ns()
        verifier.verify(near)
        t1 = time.perf_counter_ns()
        verifier.verify(far)
        t2 = time.perf_counter_ns()
        near_times.append(t1 - t0)
        far_times.append(t2 - t1)
    ratio = statistics.median(near_times) / statistics.median(far_times)
    assert 0.67 < ratio < 1.5, ratio


def test_edge_key_is_generated_once_with_mode_0600(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    key, created = ensure_edge_api_key(data_dir)
    path = data_dir / EDGE_KEY_FILE
    assert created
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == key
    assert all(key not in r.getMessage() and key not in str(r.__dict__) for r in caplog.records)
    again, created_again = ensure_edge_api_key(data_dir)
    assert (again, created_again) == (key, False)
    assert load_api_keys([again]).verify(key) == "key-1"


def test_edge_key_file_with_loose_mode_is_refused(tmp_path: Path) -> None:
    ensure_edge_api_key(tmp_path)
    (tmp_path / EDGE_KEY_FILE).chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        ensure_edge_api_key(tmp_path)
