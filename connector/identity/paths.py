"""Confine file data addresses to a base directory (identity.md §6.5).

`confine_path` rejects absolute paths, drive letters, backslashes, NUL, `.`/`..` segments (also
percent-encoded ones) and then resolves symlinks (`Path.resolve`) and requires the result to stay
under the resolved base, so a symlink pointing outside is refused too. `open_confined` re-checks at
open time and refuses a symlink as the final component (`O_NOFOLLOW`) to narrow the race between
check and use.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import BinaryIO, Final
from urllib.parse import unquote

from connector.core.errors import BadRequestError

__all__ = ["PathEscapeError", "confine_path", "open_confined"]

_DRIVE_RE: Final = re.compile(r"^[A-Za-z]:")


class PathEscapeError(BadRequestError):
    """A relative path tried to leave its base directory."""


def confine_path(base: Path, relative: str, *, must_exist: bool = False) -> Path:
    """Resolve `relative` under `base`; the result is guaranteed to be inside `base`.

    Raises:
        PathEscapeError: the path is absolute, malformed, or escapes `base` (also via symlinks).
        FileNotFoundError: `must_exist` and the target does not exist.
    """
    if not relative or "\x00" in relative or "\\" in relative:
        raise PathEscapeError("invalid file path")
    if relative.startswith("/") or _DRIVE_RE.match(relative):
        raise PathEscapeError("absolute file paths are not allowed")
    for segment in relative.split("/"):
        if unquote(segment) in (".", ".."):
            raise PathEscapeError("'.' and '..' segments are not allowed")
    root = base.resolve(strict=True)
    target = (root / relative).resolve(strict=must_exist)
    if not target.is_relative_to(root) or target == root:
        raise PathEscapeError("file path escapes the base directory")
    return target


def open_confined(base: Path, relative: str) -> BinaryIO:
    """Open a confined file for reading, refusing a symlink as the final component."""
    target = confine_path(base, relative, must_exist=True)
    fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    return os.fdopen(fd, "rb")
