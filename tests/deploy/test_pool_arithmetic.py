"""Postgres connection arithmetic (issue 17): the most connections the deployed values can open
fit the server's limit, through PgBouncer.

Numbers come from Terraform itself (deploy/tools/tf_stack.py budget evaluates each environment's
values.tf): the connector's values as Helm receives them (every role at its most replicas x the
pool size), the PgBouncer Pooler sizing and `max_connections` of the CloudNativePG cluster, and
the Temporal server's pools (4 services x replicas x (default + visibility store)).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.deploy.deploy_testlib import ROOT, Run, tool

pytestmark = pytest.mark.deploy

# superuser_reserved_connections (3), per instance the operator's instance manager and metrics
# exporter, per PgBouncer instance its auth_query connection.
SUPERUSER_RESERVED = 3
PER_INSTANCE = 2
PER_POOLER = 1


def server_connections(env: dict[str, Any]) -> int:
    """The most connections the Postgres server sees: PgBouncer's server pools, Temporal's pools,
    direct backup sessions, reserved and operator connections."""
    b = env["budget"]
    return int(
        b["pooler_instances"] * (b["default_pool_size"] + PER_POOLER)
        + b["temporal"]
        + env["backup_sessions"]
        + SUPERUSER_RESERVED
        + PER_INSTANCE * b["instances"]
    )


def problems(env: dict[str, Any]) -> list[str]:
    b = env["budget"]
    clients = sum(env["connector_clients"].values())
    out = []
    # Clients are spread over the pooler instances by the Service, not evenly: every client must
    # fit one instance.
    if clients > b["max_client_conn"]:
        out.append(f"{clients} connector clients > max_client_conn {b['max_client_conn']}")
    server = server_connections(env)
    if server > b["max_connections"]:
        out.append(f"{server} server connections > max_connections {b['max_connections']}")
    return out


@pytest.fixture(scope="module")
def budgets(run: Run) -> dict[str, Any]:
    proc = run(tool("python"), ROOT / "deploy" / "tools" / "tf_stack.py", "budget", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


@pytest.mark.parametrize("env", ["dev", "staging", "production"])
def test_connections_fit_the_server_through_pgbouncer(budgets: dict[str, Any], env: str) -> None:
    report = budgets[env]
    print(env, json.dumps(report))
    assert not problems(report), (env, report)


def test_production_counts_every_role(budgets: dict[str, Any]) -> None:
    clients = budgets["production"]["connector_clients"]
    assert set(clients) == {
        "control-plane",
        "data-plane",
        "worker-control",
        "worker-ops",
    }
    # values-prod: 12 + 20 + 20 + 2 pods at most, pool 10 each (docs/deploy.md)
    assert sum(clients.values()) == 540
    # 2 x (40 + 1) + 120 + 12 + 3 + 2 x 3 of max_connections 300 (docs/deploy.md)
    assert server_connections(budgets["production"]) == 223


def test_the_check_catches_the_old_production_pool(budgets: dict[str, Any]) -> None:
    """values-prod's former pool of 20 (54 pods x 20 = 1080) does not fit one PgBouncer instance."""
    report = json.loads(json.dumps(budgets["production"]))
    report["connector_clients"] = {k: v * 2 for k, v in report["connector_clients"].items()}
    assert any("max_client_conn" in p for p in problems(report))
    report = json.loads(json.dumps(budgets["production"]))
    report["budget"]["max_connections"] = 100  # Postgres's default
    assert any("max_connections" in p for p in problems(report))
