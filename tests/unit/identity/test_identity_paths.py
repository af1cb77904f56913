import os
from pathlib import Path

import pytest

from connector.identity.paths import PathEscapeError, confine_path, open_confined


@pytest.fixture
def base(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "data" / "nested").mkdir(parents=True)
    (root / "data" / "nested" / "file.csv").write_text("a,b\n")
    (tmp_path / "secret.txt").write_text("secret")
    return root


def test_valid_nested_path_is_served(base: Path) -> None:
    target = confine_path(base, "data/nested/file.csv", must_exist=True)
    assert target == (base / "data" / "nested" / "file.csv").resolve()
    with open_confined(base, "data/nested/file.csv") as handle:
        assert handle.read() == b"a,b\n"


def test_not_yet_existing_file_inside_base_is_allowed(base: Path) -> None:
    assert confine_path(base, "data/new.bin").parent == (base / "data").resolve()


@pytest.mark.parametrize(
    "relative",
    [
        "../secret.txt",
        "../../etc/passwd",
        "a/../../b",
        "data/../data/nested/file.csv",
        "%2e%2e/secret.txt",
        "./data",
        "/etc/passwd",
        "C:/Windows/win.ini",
        "foo\\..\\bar",
        "name\x00.txt",
        "",
    ],
)
def test_escapes_and_malformed_paths_are_rejected(base: Path, relative: str) -> None:
    with pytest.raises(PathEscapeError):
        confine_path(base, relative)


def test_symlink_escape_is_rejected(base: Path, tmp_path: Path) -> None:
    os.symlink(tmp_path / "secret.txt", base / "data" / "link.txt")
    os.symlink(tmp_path, base / "data" / "outside")
    with pytest.raises(PathEscapeError):
        confine_path(base, "data/link.txt")
    with pytest.raises(PathEscapeError):
        confine_path(base, "data/outside/secret.txt")


def test_symlink_inside_base_resolves_to_its_target(base: Path) -> None:
    os.symlink(base / "data" / "nested" / "file.csv", base / "data" / "alias.csv")
    assert confine_path(base, "data/alias.csv") == (base / "data" / "nested" / "file.csv").resolve()


def test_missing_file_with_must_exist(base: Path) -> None:
    with pytest.raises(FileNotFoundError):
        confine_path(base, "data/nope.csv", must_exist=True)
