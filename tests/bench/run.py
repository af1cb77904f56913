"""`make bench`: every benchmark in sequence; each writes its own section of docs/benchmarks.md.

    python -m tests.bench.run [--quick] [--only NAME ...]

Full (the default) takes about 5 minutes on 2 cores (budget: under 15); `--quick` is a
shorter smoke run of every module with smaller sizes. A failing module is reported and the
others still run; the exit code is non-zero when any failed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time

from tests.bench.common import DOC

# (name, module, full arguments, quick arguments)
BENCHES: list[tuple[str, str, list[str], list[str]]] = [
    ("startup", "tests.bench.startup_bench", [], ["--warm", "2", "--idle", "10", "--no-make"]),
    ("negotiation", "tests.bench.negotiation_bench", [], ["--quick"]),
    (
        "negotiation-layouts",
        "tests.bench.negotiation_bench",
        ["--layouts", "--rounds", "3", "--total", "100"],
        ["--layouts", "--rounds", "1", "--total", "60"],
    ),
    (
        "negotiation-engine",
        "tests.bench.negotiation_engine_bench",
        ["--count", "20"],
        ["--count", "5"],
    ),
    ("catalog", "tests.bench.catalog_bench", [], ["--quick"]),
    (
        "transfer",
        "tests.bench.transfer_bench",
        ["--size-mib", "1024", "--rounds", "3"],
        ["--size-mib", "256", "--rounds", "1"],
    ),
    ("backup", "tests.bench.backup_bench", [], ["--rows", "20000", "--workflows", "50"]),
    (
        "node-restore",
        "tests.bench.node_restore_bench",
        [],
        ["--finished", "500", "--real", "20", "--inflight", "10"],
    ),
]

HOW_TO_RUN = """## How to run

`make bench` (= `python -m tests.bench.run`) runs every benchmark below in sequence on this
machine and rewrites each one's section with the numbers of that run (about 5 minutes on 2
cores; `python -m tests.bench.run --quick` is a shorter smoke run with smaller sizes). One
benchmark alone: `python -m tests.bench.<name>_bench` (`--no-write` prints without touching this
file; `--help` lists each one's sizes). Every benchmark starts its own embedded Postgres, Redis
and Temporal dev server on free loopback ports under a temporary directory, and reports the
machine, the date, the method and whether each target was met. Numbers from a shared or busy
machine are noisy: compare rows of the same run rather than runs.
"""


def ensure_how_to_run() -> None:
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## How to run\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: HOW_TO_RUN + "\n", text)
    else:
        head, sep, rest = text.partition("\n## ")
        text = head.rstrip() + "\n\n" + HOW_TO_RUN + ("\n## " + rest if sep else "")
    DOC.write_text(text.rstrip() + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    parser.add_argument("--only", nargs="*", choices=[b[0] for b in BENCHES], default=None)
    args = parser.parse_args()
    ensure_how_to_run()
    failed: list[str] = []
    started = time.monotonic()
    for name, module, full, quick in BENCHES:
        if args.only and name not in args.only:
            continue
        argv = [sys.executable, "-m", module, *(quick if args.quick else full)]
        print(f"=== {name}: {' '.join(argv[1:])}", flush=True)
        t0 = time.monotonic()
        code = subprocess.run(argv, check=False).returncode
        print(f"=== {name}: exit {code} in {time.monotonic() - t0:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    print(f"=== all done in {time.monotonic() - started:.0f} s; results in {DOC}", flush=True)
    if failed:
        print(f"=== FAILED: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
