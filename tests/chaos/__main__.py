"""`python -m tests.chaos` (`make chaos`): the chaos campaign against two `connector up` stacks.

Options (each also as an environment variable, CLI first):

    --n N            concurrent negotiations + pull transfers per round   CHAOS_N       (50)
    --rounds R       rounds per process kind and side                     CHAOS_ROUNDS  (3)
    --kinds K,...    control-plane,data-plane,worker,postgres,redis,temporal  CHAOS_KINDS
    --sides S,...    provider,consumer                                    CHAOS_SIDES
    --seed S         campaign seed (random when unset; printed)           CHAOS_SEED
    --pull-bytes B   size of each round's file                            CHAOS_PULL_BYTES (1 MiB)
    --push-bytes B   the push round's file; 0 skips it                    CHAOS_PUSH_BYTES (1 GiB)
    --round-timeout  seconds every pipeline of a round gets               CHAOS_ROUND_TIMEOUT (240)
    --json PATH      every round's result, the failures in full
    --write          the figures into docs/reliability.md
    --keep           keep the data dirs (logs, Postgres, Temporal) afterwards

Exit code 0 only when every round passed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from tests.chaos.driver import GIB, KINDS, MIB, SIDES, Campaign, Config
from tests.chaos.report import write_reliability


def plain(value: Any) -> Any:
    """JSON-ready data (dataclasses.asdict would rebuild a Counter from its items)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _options(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--n", type=int, default=int(env("CHAOS_N", "50")))
    parser.add_argument("--rounds", type=int, default=int(env("CHAOS_ROUNDS", "3")))
    parser.add_argument("--kinds", default=env("CHAOS_KINDS", ",".join(KINDS)))
    parser.add_argument("--sides", default=env("CHAOS_SIDES", ",".join(SIDES)))
    parser.add_argument("--seed", type=int, default=int(env("CHAOS_SEED", "-1")))
    parser.add_argument("--pull-bytes", type=int, default=int(env("CHAOS_PULL_BYTES", str(MIB))))
    parser.add_argument("--push-bytes", type=int, default=int(env("CHAOS_PUSH_BYTES", str(GIB))))
    parser.add_argument(
        "--round-timeout", type=float, default=float(env("CHAOS_ROUND_TIMEOUT", "240"))
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--keep", action="store_true")
    options = parser.parse_args(argv)
    for name, allowed in (("kinds", KINDS), ("sides", SIDES)):
        chosen = tuple(v for v in getattr(options, name).split(",") if v)
        unknown = [v for v in chosen if v not in allowed]
        if unknown or not chosen:
            parser.error(f"--{name}: {unknown or 'none'} (choose from {', '.join(allowed)})")
        setattr(options, name, chosen)
    if options.seed < 0:
        options.seed = random.SystemRandom().randrange(2**32)
    return options


async def campaign(options: argparse.Namespace) -> int:
    # SIGTERM stops the connectors as Ctrl-C does (their supervisors outlive a killed driver).
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    config = Config(
        n=options.n,
        rounds=options.rounds,
        kinds=options.kinds,
        sides=options.sides,
        seed=options.seed,
        pull_bytes=options.pull_bytes,
        push_bytes=options.push_bytes,
        round_timeout=options.round_timeout,
    )
    root = Path(tempfile.mkdtemp(prefix="connector-chaos-"))
    print(
        f"chaos campaign: seed {config.seed}, N={config.n}, {config.rounds} round(s) x "
        f"{len(config.kinds)} kind(s) x {len(config.sides)} side(s), data under {root}",
        flush=True,
    )
    started = time.monotonic()
    keep = options.keep
    try:
        async with Campaign(config, root, say=lambda line: print(line, flush=True)) as chaos:
            await chaos.baseline()
            # Interleaved: the same process is killed again only after every other one was, so
            # the supervisor's restart back-off (reset after 300 s) stays comparable.
            for index in range(config.rounds):
                for kind in config.kinds:
                    for side in config.sides:
                        await chaos.run_round(kind, side, index)
            if config.push_bytes:
                await chaos.push_round()
            elapsed = time.monotonic() - started
            failed = [r for r in chaos.results if not r.ok]
            push_failed = chaos.push is not None and not chaos.push.ok
            print(f"\ncampaign done in {elapsed / 60:.1f} min (seed {config.seed})")
            for result in chaos.results:
                print(result.summary())
            if chaos.push is not None:
                print(chaos.push.describe())
            if options.write:
                try:
                    print(f"figures written to {write_reliability(chaos, elapsed)}")
                except Exception as exc:  # the JSON below still keeps every figure
                    print(f"docs/reliability.md not written: {exc!r}")
            if options.json is not None:
                options.json.write_text(
                    json.dumps(
                        {
                            "config": plain(config),
                            "rounds": plain(chaos.results),
                            "push": plain(chaos.push),
                        },
                        indent=1,
                    )
                )
                print(f"results: {options.json}")
            if failed or push_failed:
                keep = True  # the logs and databases, to look into the failures
                print(f"{len(failed) + int(push_failed)} round(s) FAILED; logs: {chaos.logs()}")
                return 1
            return 0
    except BaseException:
        keep = True
        raise
    finally:
        if keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(campaign(_options(argv)))


if __name__ == "__main__":
    sys.exit(main())
