"""docs/reliability.md from a chaos campaign (`python -m tests.chaos --write`)."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from tests.chaos.driver import KINDS, MIB, SIDES, Campaign, RoundResult

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "docs" / "reliability.md"
MAX_FAILURES_SHOWN = 12


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        memory = f"{mem_kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        memory = "unknown RAM"
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory}, Linux {platform.release()}, "
        f"Python {sys.version.split()[0]}"
    )


def commit() -> str:
    """The commit the campaign ran (CHAOS_COMMIT: for a run from an exported tree)."""
    if os.environ.get("CHAOS_COMMIT"):
        return os.environ["CHAOS_COMMIT"]

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return head + (" with uncommitted changes" if dirty else "")


def _p50_max(values: list[float]) -> tuple[str, str]:
    if not values:
        return "-", "-"
    return f"{statistics.median(values):.1f} s", f"{max(values):.1f} s"


def _states(counts: dict[str, Counter[str]], side: str, good: str, n: int) -> str:
    states = counts.get(side, Counter())
    other = ", ".join(f"{v} {k}" for k, v in sorted(states.items()) if k != good)
    return f"{states.get(good, 0)}/{n}" + (f" ({other})" if other else "")


def _kinds_table(rounds: list[RoundResult]) -> list[str]:
    lines = [
        "| process kind | side | kills | lost | recovery p50 | recovery max | settled p50 "
        "| settled max | rounds failed | also restarted |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        for side in SIDES:
            mine = [r for r in rounds if r.kind == kind and r.side == side and r.kill]
            if not mine:
                continue
            recovery = [r.kill.recovery for r in mine if r.kill and r.kill.recovery is not None]
            settled = [r.kill.settled for r in mine if r.kill and r.kill.settled is not None]
            lost = sum(len(r.lost) for r in mine)
            also = Counter(c for r in mine if r.kill for c in r.kill.collateral)
            lines.append(
                f"| {kind} | {side} | {len(mine)} | {lost} | "
                + " | ".join(_p50_max(recovery))
                + " | "
                + " | ".join(_p50_max(settled))
                + f" | {sum(not r.ok for r in mine)} | "
                + (", ".join(f"{k} x{v}" for k, v in sorted(also.items())) or "-")
                + " |"
            )
    return lines


def _rounds_table(rounds: list[RoundResult]) -> list[str]:
    lines = [
        "| round | seed | kill at | in flight at the kill | recovery | settled | lost "
        "| negotiations FINALIZED (consumer / provider) | transfers COMPLETED (consumer / "
        "provider) | 5xx answers | round time | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rounds:
        k = r.kill
        fivexx = sum(v for key, v in r.responses.items() if key.rsplit(" ", 1)[-1][0] == "5")
        lines.append(
            f"| {r.label} | {r.seed} | "
            + (f"{k.at:.1f} s" if k else "no kill")
            + " | "
            + (", ".join(f"{v} {p}" for p, v in sorted(k.in_flight.items())) if k else "-")
            + " | "
            + (f"{k.recovery:.1f} s" if k and k.recovery is not None else "-")
            + " | "
            + (f"{k.settled:.1f} s" if k and k.settled is not None else "-")
            + f" | {len(r.lost)} | "
            + _states(r.negotiations, "consumer", "FINALIZED", r.n)
            + " / "
            + _states(r.negotiations, "provider", "FINALIZED", r.n)
            + " | "
            + _states(r.transfers, "consumer", "COMPLETED", r.n)
            + " / "
            + _states(r.transfers, "provider", "COMPLETED", r.n)
            + f" | {fivexx} | {r.checked:.0f} s | "
            + ("OK" if r.ok else f"**{len(r.failures)} failures**")
            + " |"
        )
    return lines


def _wrap(text: str) -> list[str]:
    return textwrap.wrap(text, 100, break_on_hyphens=False, break_long_words=False)


def _bullet(text: str) -> list[str]:
    return textwrap.wrap(
        text,
        100,
        initial_indent="- ",
        subsequent_indent="  ",
        break_on_hyphens=False,
        break_long_words=False,
    )


def _load(loads: list[float]) -> list[str]:
    if not loads:
        return []
    cores = os.cpu_count() or 1
    busy = max(loads) > cores * 1.5
    return _bullet(
        f"**Load** (1-minute load average at the end of each round, {cores} cores): median "
        f"{statistics.median(loads):.1f}, max {max(loads):.1f}"
        + ("; other work competed for the CPU, which stretches the times below" if busy else "")
    )


def render(chaos: Campaign, elapsed: float) -> str:
    cfg = chaos.config
    rounds = chaos.results
    killed = [r for r in rounds if r.kill]
    loads = [r.load for r in rounds if r.load]
    failed = [r for r in rounds if not r.ok]
    push = chaos.push
    verdict = (
        "every round passed"
        if not failed and (push is None or push.ok)
        else f"{len(failed) + int(bool(push and not push.ok))} of "
        f"{len(rounds) + int(push is not None)} rounds failed (below)"
    )
    method = (
        "Two connectors as an operator runs them: `connector up` twice, each with its own data "
        "dir and ports, so each has its own embedded Postgres, Redis and Temporal dev server, "
        "control plane, data plane and worker; each trusts the other's did:web (secure profile, "
        "loopback allowed by `outbound.allow_cidrs`). A round publishes a fresh asset (a random "
        "file) and runs N pipelines at once through the consumer's management API: start a "
        "negotiation, wait for FINALIZED, start a pull transfer under the agreement, wait for "
        "STARTED, fetch the EDR, pull the file and hash it, wait for COMPLETED. Every creating "
        "POST carries an `Idempotency-Key` and is retried with the same key after a 5xx, a 409 "
        "with `Retry-After` or a dropped connection; every other call is retried too, as a "
        "client would.",
        "When the round's progress (the pipelines' mean step) reaches a seeded random share "
        "(5-80 %; 45-85 % for the data plane, which works only once transfers start), the "
        "chosen process of the chosen side gets SIGKILL (its pid from the supervisor's "
        "`run/pids.json`). **Recovery** is the time from the kill until the supervisor's restart "
        "answers its readiness probe (`/ready` of the control plane, data plane and worker; a "
        "query for Postgres; PING for Redis; DescribeNamespace for Temporal); **settled** until "
        "every process of both sides answers and both `/health` are 200. The supervisor waits "
        "2 s before the first restart of a child (back-off). A process is **lost** when it is "
        "not running (or not back within the settle timeout) after the round.",
        "Then the round must show: every negotiation FINALIZED on both sides with the same "
        "agreement id; every transfer COMPLETED on both sides, the pulled file's SHA-256 equal "
        "to the source's; exactly N negotiations and N transfers on each side (list routes: a "
        "retried POST must not create a second process); each process's state in the Postgres "
        "projection (management API) equal to the `DspNegotiationState` / `DspTransferState` "
        "search attribute in Temporal visibility; no 5xx answered by a creating POST that did "
        "create the process (the server's `createdAt` against the times each request was sent "
        "and answered). A push of a large file to an HTTP sink, with the provider's data plane "
        "killed when a random share of the bytes has arrived, must end COMPLETED with the right "
        "SHA-256 at the sink or TERMINATED, never COMPLETED with a partial body.",
    )
    out = [
        "# Reliability: `kill -9` of every process, under load",
        "",
        *_wrap(
            "Written by `make chaos` (`python -m tests.chaos --write`); re-run it to refresh. "
            "The small version (N=10, one round per process kind and side, a 256 MiB push) runs "
            "in `make test` (`tests/chaos/test_chaos.py`)."
        ),
        "",
        *_bullet(f"**Date**: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit()}"),
        *_bullet(f"**Machine**: {machine()}"),
        *_bullet(
            f"**Parameters**: N={cfg.n} concurrent negotiations + pull transfers per round, "
            f"{cfg.rounds} round(s) per process kind and side, files of "
            f"{cfg.pull_bytes / MIB:g} MiB, push of {cfg.push_bytes / MIB:g} MiB, campaign seed "
            f"{cfg.seed} (`python -m tests.chaos --seed {cfg.seed}` repeats the kill moments)"
        ),
        *_bullet(f"**Campaign**: {len(killed)} kill(s) in {elapsed / 60:.1f} min; {verdict}"),
        *_load(loads),
        "",
        "## Method",
        "",
        *[line for paragraph in method for line in [*_wrap(paragraph), ""]],
        "## Per process kind",
        "",
        *_kinds_table(rounds),
        "",
        "## Per round",
        "",
        *_rounds_table(rounds),
        "",
    ]
    if push is not None:
        k = push.kill
        out += [
            "## Push with the provider's data plane killed",
            "",
        ]
        out += _wrap(
            f"{push.size / MIB:g} MiB pushed to an HTTP sink, data plane killed at "
            f"{push.bytes_at_kill / MIB:.0f} MiB (seed {push.seed})"
            + (
                f", restarted and ready after {k.recovery:.1f} s"
                if k and k.recovery is not None
                else ""
            )
            + f": ended **{push.state}** {push.duration:.0f} s after the start"
            + (f" ({push.reason})" if push.reason else "")
            + f"; the sink holds {len(push.sink_complete)} complete body "
            f"({'checksum right' if push.sink_right else 'checksum WRONG'}) and "
            f"{len(push.sink_incomplete)} cut-off one(s); "
            + ("OK." if push.ok else f"**{len(push.failures)} failures**.")
        )
        out.append("")
    if failed or (push is not None and not push.ok):
        classes: Counter[str] = Counter()
        where: dict[str, set[str]] = {}
        for r in failed:
            for name, count in r.failure_classes().items():
                classes[name] += count
                where.setdefault(name, set()).add(f"{r.side} {r.kind}")
        out += [
            "## Failures by kind",
            "",
            "| failure (ids and ports left out) | count | rounds with it (side, killed process) |",
            "|---|---|---|",
        ]
        for name, count in classes.most_common():
            cell = name.replace("|", "/")
            out.append(f"| {cell} | {count} | {', '.join(sorted(where[name]))} |")
        out += ["", "## Failures", ""]
        for r in failed:
            out.append(f"**{r.label}** (seed {r.seed}):")
            out.append("")
            for f in r.failures[:MAX_FAILURES_SHOWN]:
                out.extend(_bullet(str(f)))
            if len(r.failures) > MAX_FAILURES_SHOWN:
                out.append(f"- ... and {len(r.failures) - MAX_FAILURES_SHOWN} more")
            out.extend(f"- lost: {lost}" for lost in r.lost)
            out.append("")
        if push is not None and not push.ok:
            out.append(f"**{push.label}** (seed {push.seed}):")
            out.append("")
            for f in push.failures:
                out.extend(_bullet(str(f)))
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def write_reliability(chaos: Campaign, elapsed: float, target: Path = TARGET) -> Path:
    target.write_text(render(chaos, elapsed))
    return target
