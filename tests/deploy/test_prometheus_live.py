"""Alert rules and dashboards against a real Prometheus scraping running stacks (issue 17).

The Prometheus server of Debian's `prometheus` package (the one that ships promtool) with a copy of
`ops/prometheus/rules.yml` whose `for:` durations are 10 s, so anything that would page shows
within the test (and one slow scrape on a busy machine does not), scraping:

- `connector up` (the edge, one process) with `deploy/edge/prometheus.yml`: every target up, every
  rule evaluating, no alert firing on the fresh stack, nor after its first backup; every metric the
  rules and dashboards name exported with the type its use needs (the `# TYPE` lines of the live
  `/metrics`, not a list kept by hand): `_bucket` of a histogram, rate()/increase() over counters
  (or a histogram's series), deriv() over gauges; every dashboard panel query answering with
  series, with numbers (listed exceptions say why);
- the standard-cloud roles as compose runs them (control plane, data plane, a worker per queue,
  each its own process and metrics port) with `ops/prometheus/prometheus.yml`: all five targets
  up, nothing firing, and a stopped worker (SIGSTOP: a hung pod) takes its target down and fires
  ConnectorTaskQueueWithoutWorker for its queue only, resolved when it continues.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from connector.runtime.embedded import free_port
from connector.settings import TaskQueues
from tests.deploy import metric_refs
from tests.edge import Edge

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "prometheus" / "rules.yml"
EDGE_PROMETHEUS = ROOT / "deploy" / "edge" / "prometheus.yml"
COMPOSE_PROMETHEUS = ROOT / "ops" / "prometheus" / "prometheus.yml"
DASHBOARDS = sorted((ROOT / "ops" / "grafana" / "dashboards").glob("*.json"))
# The control plane exports one backlog gauge per task queue.
QUEUES = TaskQueues().all()

SCRAPE_SECONDS = 2
SHORT_FOR_SECONDS = 10
# Grafana's range macros, as a dashboard opened over the last few minutes would resolve them.
MACROS = {"$__rate_interval": "1m", "$__interval": "2s", "$__range": "5m"}
RANGE_FUNCTIONS = ("rate", "irate", "increase")
GAUGE_FUNCTIONS = ("deriv", "delta", "predict_linear")

# Panels whose query has series but no number on a stack that has not done the thing measured: a
# quantile of zero observations is NaN. The series themselves must exist (labels set up at zero).
NO_NUMBER_UNTIL_EVENT = {
    "Negotiation duration p95 (request to FINALIZED)": "needs a FINALIZED negotiation "
    "(tests/e2e negotiation tests drive it between two connectors)",
    "Transfer duration p95": "needs a finished transfer (tests/e2e transfer tests)",
    "Schedule-to-start latency p95": "needs a workflow or activity task within the rate window "
    "(an idle one-process edge node polls none between backups)",
}


# --------------------------------------------------------------------------- the Prometheus server


def prometheus_binary() -> str:
    """The server from Debian's package; installed when missing (the check needs it, no skip)."""
    found = shutil.which("prometheus")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        [*sudo, "apt-get", "update", "-qq"],
        [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"],
    ):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}"
    found = shutil.which("prometheus")
    assert found, "apt-get install prometheus did not provide the prometheus binary"
    return found


def short_for_rules() -> dict[str, Any]:
    """ops/prometheus/rules.yml with every `for:` at 10 s (0 stays 0): a condition that holds pages
    within the test."""
    rules: dict[str, Any] = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule and rule.get("for") not in {None, "0m", "0s"}:
                rule["for"] = f"{SHORT_FOR_SECONDS}s"
    return rules


def edge_scrape_config(metrics_port: int) -> dict[str, Any]:
    """deploy/edge/prometheus.yml, its targets pointed at this test's metrics port."""
    config: dict[str, Any] = yaml.safe_load(EDGE_PROMETHEUS.read_text())
    config["global"] = {
        "scrape_interval": f"{SCRAPE_SECONDS}s",
        "scrape_timeout": f"{SCRAPE_SECONDS}s",
        "evaluation_interval": "1s",
    }
    config["rule_files"] = ["rules.yml"]
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            static["targets"] = [f"127.0.0.1:{metrics_port}" for _ in static["targets"]]
    return config


class Prometheus:
    def __init__(self, workdir: Path, config: dict[str, Any], rules: dict[str, Any]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        (workdir / "rules.yml").write_text(yaml.safe_dump(rules))
        self.port = free_port()
        self.log = workdir / "prometheus.log"
        self.process = subprocess.Popen(
            [
                prometheus_binary(),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10.0)
        self.wait(lambda: self.http.get("/-/ready").status_code == 200, "ready", 60)

    def api(self, path: str, **params: str) -> Any:
        response = self.http.get(f"/api/v1/{path}", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] in {"vector", "scalar"}, data
        return data["result"] if data["resultType"] == "vector" else [{"value": data["result"]}]

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api("alerts")["alerts"])

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log.read_text()}")
            try:
                if predicate():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"prometheus: {what} not reached in {timeout}s")

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --------------------------------------------------------------------------- the live metric types


def live_types(exposition: str) -> dict[str, str]:
    """Family name -> type, from the `# TYPE` lines of the running stack's /metrics."""
    types = {}
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            types[name] = kind
    return types


def resolve(series: str, types: dict[str, str]) -> tuple[str, str] | None:
    """(family, type) of a series name as PromQL writes it, or None when nothing exports it."""
    if series in types:
        return series, types[series]
    for suffix in metric_refs.HISTOGRAM_SUFFIXES:
        family = series.removesuffix(suffix)
        if family != series and types.get(family) in {"histogram", "summary"}:
            return family, types[family]
    return None


def type_problems(where: str, expr: str, types: dict[str, str]) -> Iterator[str]:
    for name in sorted(metric_refs.names_in_expr_regex(expr)):
        found = resolve(name, types)
        if found is None:
            yield f"{where}: {name} is not exported by the running stack"
            continue
        family, kind = found
        if name.endswith("_bucket") and kind != "histogram":
            yield f"{where}: {name} is the bucket of a {kind}, not of a histogram"
    for function, name in re.findall(r"\b(\w+)\s*\(\s*([A-Za-z_:][\w:]*)\s*[\[{]", expr):
        found = resolve(name, types)
        if found is None:
            continue
        family, kind = found
        over_series_of_histogram = family != name
        if function in RANGE_FUNCTIONS and kind != "counter" and not over_series_of_histogram:
            yield f"{where}: {function}() over {name}, a {kind} (needs a counter)"
        if function in GAUGE_FUNCTIONS and kind != "gauge":
            yield f"{where}: {function}() over {name}, a {kind} (needs a gauge)"


def panel_queries() -> Iterator[tuple[str, str]]:
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in metric_refs._panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                expr = target.get("expr")
                if expr:
                    for macro, value in MACROS.items():
                        expr = expr.replace(macro, value)
                    yield str(panel["title"]), expr


def _number(sample: dict[str, Any]) -> float:
    return float(sample["value"][1])


# --------------------------------------------------------------------------- the test


@contextlib.contextmanager
def scraped_stack(tmp_path: Path) -> Iterator[tuple[Edge, Prometheus]]:
    """A fresh `connector up` and a Prometheus scraping it, its targets up and its rules loaded."""
    edge = Edge.allocate(tmp_path / "var")
    edge.start()
    prom: Prometheus | None = None
    try:
        edge.wait_ready()
        prom = Prometheus(
            tmp_path / "prometheus", edge_scrape_config(edge.ports["metrics"]), short_for_rules()
        )
        scraping = prom

        def targets_up() -> bool:
            active = scraping.api("targets")["activeTargets"]
            return bool(active) and all(t["health"] == "up" for t in active)

        prom.wait(targets_up, "every target up", 60)
        prom.wait(
            lambda: len(scraping.query("connector_task_queue_backlog")) == len(QUEUES),
            "queue gauges",
            60,
        )
        _assert_rules_healthy(prom)
        yield edge, prom
    finally:
        if prom is not None:
            prom.stop()
        edge.stop(signal.SIGTERM)


def test_edge_stack_pages_nobody_and_feeds_every_rule_and_panel(tmp_path: Path) -> None:
    with scraped_stack(tmp_path) as (edge, prom):
        _traffic(edge)  # creates the HTTP series; rate() sees the next round

        # A fresh install: no backup known, so no backup gauge at all, and nothing pages.
        exposition = edge.get("metrics", "/metrics").text
        for name in (
            "connector_backup_last_success_timestamp_seconds",
            "connector_backup_last_verified",
        ):
            assert re.search(rf"^{name} ", exposition, re.M) is None, name
        assert re.search(r"^connector_backup_expected_since_timestamp_seconds ", exposition, re.M)
        _assert_silent(prom, phase="fresh stack")

        # Its first backup (dump, verify in a scratch database, prune) through the ops worker.
        assert asyncio.run(_backup_now(edge)) == 0
        # verify sets last_verified, the run's outcome then last_success: wait for both
        prom.wait(
            lambda: (
                bool(prom.query("connector_backup_last_verified == 1"))
                and bool(prom.query("connector_backup_last_success_timestamp_seconds"))
            ),
            "backup scraped",
            60,
        )
        age = prom.query("time() - max(connector_backup_last_success_timestamp_seconds)")
        assert 0 <= _number(age[0]) < 300, age
        _assert_silent(prom, phase="after the first backup")

        # Names and types of every metric the rules and dashboards use, from the live exposition.
        _traffic(edge)
        time.sleep(SCRAPE_SECONDS * 2)
        types = live_types(edge.get("metrics", "/metrics").text)
        problems = [
            problem
            for where, expr in metric_refs.expressions()
            for problem in type_problems(where, expr, types)
        ]
        assert problems == []

        # Every dashboard panel query answers with series, and with numbers where it can.
        empty, no_number = [], []
        for title, expr in panel_queries():
            result = prom.query(expr)
            if not result:
                empty.append(f"{title}: {expr}")
            elif not any(math.isfinite(_number(s)) for s in result):
                no_number.append(title)
        assert empty == []
        # A listed panel may have its number already (an event happened); no other may lack one.
        assert set(no_number) <= set(NO_NUMBER_UNTIL_EVENT), no_number


# The standard-cloud roles as docker-compose.yaml runs them, one process each with its own
# metrics port: ops/prometheus/prometheus.yml scrapes them under these job names.
CLOUD_ROLES = {
    "control-plane": ["control-plane"],
    "data-plane": ["data-plane"],
    "worker-control": ["worker", "--queue", "connector.control"],
    "worker-ops": ["worker", "--queue", "connector.ops"],
}
CLOUD_NAMESPACE = "cloud"
Role = tuple[subprocess.Popen[bytes], int]  # the process and its metrics port


def compose_scrape_config(metrics_ports: dict[str, int]) -> dict[str, Any]:
    """ops/prometheus/prometheus.yml (the compose topology), each job pointed at its process."""
    config: dict[str, Any] = yaml.safe_load(COMPOSE_PROMETHEUS.read_text())
    config["global"] = {
        "scrape_interval": f"{SCRAPE_SECONDS}s",
        "scrape_timeout": f"{SCRAPE_SECONDS}s",
        "evaluation_interval": "1s",
    }
    config["rule_files"] = ["rules.yml"]
    assert {job["job_name"] for job in config["scrape_configs"]} == set(CLOUD_ROLES)
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            static["targets"] = [f"127.0.0.1:{metrics_ports[job['job_name']]}"]
    return config


@contextlib.contextmanager
def cloud_roles(
    edge: Edge, workdir: Path
) -> Iterator[dict[str, tuple[subprocess.Popen[bytes], int]]]:
    """The five roles on the edge stack's Postgres, Redis and Temporal server, in a database,
    Redis db and Temporal namespace of their own (the edge's workers serve only theirs), after
    the one-shots compose runs first (migrate, temporal-bootstrap)."""
    p = edge.ports
    asyncio.run(_create_database(p["postgres"], CLOUD_NAMESPACE))
    base = {
        "CONNECTOR_DATABASE__URL": f"postgresql://postgres@127.0.0.1:{p['postgres']}/{CLOUD_NAMESPACE}",
        "CONNECTOR_REDIS__URL": f"redis://127.0.0.1:{p['redis']}/1",
        "CONNECTOR_TEMPORAL__ADDRESS": f"127.0.0.1:{p['temporal']}",
        "CONNECTOR_TEMPORAL__NAMESPACE": CLOUD_NAMESPACE,
    }
    workdir.mkdir(parents=True, exist_ok=True)
    for one_shot in ("migrate", "temporal-bootstrap"):
        proc = subprocess.run(
            [sys.executable, "-m", "connector", one_shot],
            env=edge.env(**base),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, f"{one_shot}: {proc.stdout}{proc.stderr}"
    started: dict[str, Role] = {}
    try:
        for name, argv in CLOUD_ROLES.items():
            metrics, http, health = free_port(), free_port(), free_port()
            env = edge.env(
                **base,
                CONNECTOR_METRICS__PORT=str(metrics),
                CONNECTOR_SERVER__PORT=str(http),
                CONNECTOR_DATAPLANE__PORT=str(http),
                CONNECTOR_WORKERS__HEALTH_PORT=str(health),
            )
            log = (workdir / f"{name}.log").open("wb")
            started[name] = (
                subprocess.Popen(
                    [sys.executable, "-m", "connector", *argv],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                ),
                metrics,
            )
        yield started
    finally:
        for process, _ in started.values():
            process.send_signal(signal.SIGCONT)
            process.terminate()
        for process, _ in started.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _create_database(port: int, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def test_compose_topology_every_target_up_and_a_stopped_worker_fires_its_alert(
    tmp_path: Path,
) -> None:
    edge = Edge.allocate(tmp_path / "var")
    edge.start()
    try:
        edge.wait_ready()
        with cloud_roles(edge, tmp_path / "roles") as roles:
            prom = Prometheus(
                tmp_path / "prometheus",
                compose_scrape_config({name: port for name, (_, port) in roles.items()}),
                short_for_rules(),
            )
            try:

                def all_up() -> bool:
                    active = prom.api("targets")["activeTargets"]
                    jobs = {t["labels"]["job"] for t in active if t["health"] == "up"}
                    return len(active) == len(CLOUD_ROLES) and jobs == set(CLOUD_ROLES)

                prom.wait(all_up, "all five compose targets up", 120)
                prom.wait(
                    lambda: len(prom.query("connector_task_queue_backlog")) == len(QUEUES),
                    "queue gauges",
                    60,
                )
                _assert_rules_healthy(prom)
                _assert_silent(prom, phase="compose topology, fresh")

                # The ops worker stops (a hung pod): its target goes down, its queue has no worker.
                process, _ = roles["worker-ops"]
                process.send_signal(signal.SIGSTOP)

                def without_worker() -> set[str]:
                    return {
                        a["labels"]["task_queue"]
                        for a in prom.alerts()
                        if a["labels"]["alertname"] == "ConnectorTaskQueueWithoutWorker"
                        and a["state"] == "firing"
                    }

                prom.wait(
                    lambda: without_worker() == {"connector.ops"},
                    "ConnectorTaskQueueWithoutWorker for connector.ops only",
                    90,
                )
                assert _number(prom.query('up{job="worker-ops"}')[0]) == 0
                process.send_signal(signal.SIGCONT)
                prom.wait(lambda: not prom.alerts(), "every alert resolved after SIGCONT", 90)
            finally:
                prom.stop()
    finally:
        edge.stop(signal.SIGTERM)


def _traffic(edge: Edge) -> None:
    """A little HTTP traffic for the request, latency and error panels."""
    for _ in range(5):
        for name in ("server", "dataplane"):
            assert edge.get(name, "/health").status_code == 200


def _assert_rules_healthy(prom: Prometheus) -> None:
    def evaluated() -> bool:
        rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
        return bool(rules) and all(r.get("lastEvaluation", "").startswith("20") for r in rules)

    prom.wait(evaluated, "every rule evaluated", 30)
    broken = [
        f"{r['name']}: {r.get('lastError')}"
        for g in prom.api("rules")["groups"]
        for r in g["rules"]
        if r["health"] != "ok"
    ]
    assert broken == []
    loaded = {r["name"] for g in prom.api("rules")["groups"] for r in g["rules"]}
    assert loaded == {a["alert"] for g in short_for_rules()["groups"] for a in g["rules"]}


def _assert_silent(prom: Prometheus, *, phase: str) -> None:
    """No alert fires for longer than the short `for:`: one pending now would fire within it."""
    deadline = time.monotonic() + SHORT_FOR_SECONDS + 5
    while time.monotonic() < deadline:
        firing = [a for a in prom.alerts() if a["state"] == "firing"]
        targets = [(t["health"], t["lastError"]) for t in prom.api("targets")["activeTargets"]]
        assert firing == [], f"{phase}: " + json.dumps({"firing": firing, "targets": targets})
        time.sleep(1)


async def _backup_now(edge: Edge) -> int:
    from commands.backup import backup_now
    from connector.temporal.client import connect

    settings = edge.settings()
    client = await connect(settings)
    return await backup_now(client, settings, verify=None, wait=True, out=lambda _: None)
