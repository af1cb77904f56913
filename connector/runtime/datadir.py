"""The data dir is private: what a connector (and every service it starts) writes under it is
readable by the connector's user only.

- `private_umask()`: umask 077 for this process and, inherited, every child `connector up` starts
  (Postgres, Redis, the Temporal dev server and its SQLite file, the roles, pg_dump): new files
  are 0600, new directories 0700.
- `secure_data_dir()`: at start, the data dir itself becomes 0700 and whatever already exists
  below it loses every group and other permission bit (files created by older versions, or
  before the umask, such as `temporal/temporal.db` and `backups/<id>/connector.dump`). Owner
  bits are kept (a 0400 key stays 0400). Symbolic links are neither followed nor changed.

One exception: run as root, the embedded Postgres runs as its own system user, which must pass
through the data dir to reach `postgres/`: the data dir is then 0710 with that user's group (no
listing, no access for anybody else), and `postgres/` belongs to that user (0700).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

__all__ = ["PRIVATE_UMASK", "private_umask", "secure_data_dir"]

PRIVATE_UMASK: Final = 0o077
_OPEN_BITS: Final = stat.S_IRWXG | stat.S_IRWXO


def private_umask() -> int:
    """Set umask 077; returns the previous one."""
    return os.umask(PRIVATE_UMASK)


def secure_data_dir(data_dir: Path, *, traverse_gid: int | None = None, tree: bool = True) -> int:
    """Create `data_dir` if needed and make it (and with `tree` everything below) private;
    returns how many modes were changed. `traverse_gid`: a group that may pass through the data
    dir (mode 0710)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    changed = 0
    if traverse_gid is not None:
        info = data_dir.stat()
        if info.st_gid != traverse_gid:
            os.chown(data_dir, -1, traverse_gid)
        wanted = 0o710
    else:
        wanted = 0o700
    if stat.S_IMODE(data_dir.stat().st_mode) != wanted:
        data_dir.chmod(wanted)
        changed += 1
    if not tree:
        return changed
    for root, dirs, files in os.walk(data_dir):
        for name in (*dirs, *files):
            path = os.path.join(root, name)
            try:
                info = os.lstat(path)
            except FileNotFoundError:  # a service removed it meanwhile
                continue
            if stat.S_ISLNK(info.st_mode):
                continue
            mode = stat.S_IMODE(info.st_mode)
            if mode & _OPEN_BITS:
                try:
                    os.chmod(path, mode & ~_OPEN_BITS)
                except FileNotFoundError:
                    continue
                changed += 1
    return changed
