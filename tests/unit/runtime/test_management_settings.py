"""`management.port`/`host`/`oidc` settings (env form, validation), the listener routing rule
(pure ASGI, no sockets), the `connector up` banner and port check, and the CLI's start-up check
of a configured JWKS file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.listeners import ListenerRouting
from connector.http.errors import install_error_handlers
from connector.runtime.embedded import free_port
from connector.runtime.runner import StartError, Supervisor, banner
from connector.settings import ConfigError, load_settings, to_env

OIDC_ENV = {
    "CONNECTOR_MANAGEMENT__OIDC__ISSUER": "https://idp.example/realms/ops",
    "CONNECTOR_MANAGEMENT__OIDC__AUDIENCE": "connector-management",
    "CONNECTOR_MANAGEMENT__OIDC__JWKS_URL": "https://idp.example/realms/ops/certs",
}


def test_management_settings_from_env_vars() -> None:
    s = load_settings(
        env={
            "CONNECTOR_MANAGEMENT__PORT": "3100",
            "CONNECTOR_MANAGEMENT__HOST": "127.0.0.1",
            **OIDC_ENV,
            "CONNECTOR_MANAGEMENT__OIDC__ALGORITHMS": '["ES256", "PS256"]',
            "CONNECTOR_MANAGEMENT__OIDC__REQUIRED_SCOPE": "connector:manage",
            "CONNECTOR_MANAGEMENT__OIDC__REQUIRED_ROLE": "admin",
            "CONNECTOR_MANAGEMENT__OIDC__ROLES_CLAIM": "realm_access.roles",
            "CONNECTOR_MANAGEMENT__OIDC__LEEWAY_SECONDS": "10",
            "CONNECTOR_MANAGEMENT__OIDC__JWKS_CACHE_SECONDS": "600",
        }
    )
    m = s.management
    assert (m.port, m.host) == (3100, "127.0.0.1")
    assert m.oidc is not None
    assert m.oidc.algorithms == ["ES256", "PS256"]
    assert (m.oidc.required_scope, m.oidc.required_role) == ("connector:manage", "admin")
    assert (m.oidc.roles_claim, m.oidc.leeway_seconds, m.oidc.jwks_cache_seconds) == (
        "realm_access.roles",
        10,
        600,
    )
    # `connector up` hands the same settings to its children as env vars.
    assert load_settings(env=to_env(s)) == s


def test_defaults_keep_one_listener_and_api_keys_only() -> None:
    s = load_settings(env={})
    assert (s.management.port, s.management.host, s.management.oidc) == (None, None, None)
    assert s.management.base_url(s.server) == s.server.base_url()
    oidc = load_settings(env=OIDC_ENV).management.oidc
    assert oidc is not None
    assert oidc.algorithms == ["RS256", "ES256"]
    assert (oidc.leeway_seconds, oidc.jwks_cache_seconds) == (30, 300)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"CONNECTOR_MANAGEMENT__PORT": "0"}, "management.port"),
        ({"CONNECTOR_MANAGEMENT__PORT": "70000"}, "management.port"),
        ({**OIDC_ENV, "CONNECTOR_MANAGEMENT__OIDC__ALGORITHMS": '["none"]'}, "algorithms"),
        ({**OIDC_ENV, "CONNECTOR_MANAGEMENT__OIDC__ALGORITHMS": '["HS256"]'}, "algorithms"),
        ({**OIDC_ENV, "CONNECTOR_MANAGEMENT__OIDC__ALGORITHMS": "[]"}, "algorithms"),
        ({**OIDC_ENV, "CONNECTOR_MANAGEMENT__OIDC__JWKS_PATH": "/etc/jwks.json"}, "exactly one"),
        (
            {k: v for k, v in OIDC_ENV.items() if not k.endswith("JWKS_URL")},
            "exactly one",
        ),
        ({**OIDC_ENV, "CONNECTOR_MANAGEMENT__OIDC__JWKS_URL": "file:///etc/passwd"}, "jwks_url"),
        ({k: v for k, v in OIDC_ENV.items() if not k.endswith("AUDIENCE")}, "audience"),
    ],
)
def test_bad_management_settings_are_refused_naming_the_key(
    env: dict[str, str], names: str
) -> None:
    with pytest.raises(ConfigError, match=names) as info:
        load_settings(env=env)
    assert "management" in str(info.value)


def _routed_app(management_port: int) -> ListenerRouting:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/management/v1/assets")
    async def assets() -> list[str]:
        return []

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/.well-known/dspace-version")
    async def version() -> dict[str, str]:
        return {"version": "2025-1"}

    return ListenerRouting(app, management_port, app.openapi)


async def test_listener_routing_decides_by_local_port() -> None:
    routed = _routed_app(3100)
    transport = httpx.ASGITransport(routed)  # scope["server"] is the URL's host and port
    async with httpx.AsyncClient(transport=transport) as http:
        main, management = "http://connector:3000", "http://connector:3100"
        assert (await http.get(f"{management}/management/v1/assets")).status_code == 200
        assert (await http.get(f"{management}/health")).status_code == 200
        assert (await http.get(f"{main}/health")).status_code == 200
        assert (await http.get(f"{main}/.well-known/dspace-version")).status_code == 200
        hidden = await http.get(f"{main}/management/v1/assets")
        assert hidden.status_code == 404
        assert hidden.headers["content-type"].startswith("application/problem+json")
        assert hidden.json()["type"] == "urn:connector:error:not_found"
        # Exactly what an unknown management route answers (nothing reveals the other port).
        unknown = await http.get(f"{management}/management/v1/nothing-here")
        assert hidden.json() == unknown.json()
        assert (await http.get(f"{management}/.well-known/dspace-version")).status_code == 404
        assert (await http.get(f"{management}/managementx")).status_code == 404
        # A Host header naming the other port changes nothing: the local port decides.
        spoofed = await http.get(f"{main}/management/v1/assets", headers={"Host": "x:3100"})
        assert spoofed.status_code == 404


async def test_each_listener_documents_only_the_paths_it_serves() -> None:
    routed = _routed_app(3100)
    transport = httpx.ASGITransport(routed)
    async with httpx.AsyncClient(transport=transport) as http:
        main = (await http.get("http://connector:3000/openapi.json")).json()
        management = (await http.get("http://connector:3100/openapi.json")).json()
        assert set(main["paths"]) == {"/health", "/.well-known/dspace-version"}
        assert set(management["paths"]) == {"/management/v1/assets", "/health"}
        assert (await http.get("http://connector:3100/docs")).status_code == 200


def test_banner_names_the_management_url_on_its_own_port(tmp_path: Path) -> None:
    s = load_settings(env={}, data_dir=tmp_path, management={"port": 3100})
    text = banner(s, None)
    assert "management API  http://localhost:3100/management/v1" in text
    control = next(line for line in text.splitlines() if "control plane" in line)
    assert "http://localhost:3000" in control
    assert "/management" not in control
    single = banner(load_settings(env={}, data_dir=tmp_path), None)
    assert "management /management/v1" in single
    assert "management API" not in single


def test_up_refuses_a_management_port_equal_to_another_port(tmp_path: Path) -> None:
    port = free_port()
    s = load_settings(
        env={},
        data_dir=tmp_path,
        server={"port": port},
        management={"port": port},
        dataplane={"port": free_port()},
        metrics={"port": 0},
        workers={"health_port": free_port()},
        temporal={"address": "127.0.0.1:1"},
        database={"url": "postgresql://x@127.0.0.1:1/x"},
        redis={"url": "redis://127.0.0.1:1/0"},
    )
    with pytest.raises(StartError, match=r"management\.port and server\.port both use port"):
        Supervisor(s)._check_ports()


def test_control_plane_refuses_to_start_with_an_unusable_jwks_file(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    env.update(
        {k: v for k, v in OIDC_ENV.items() if not k.endswith("JWKS_URL")},
        CONNECTOR_MANAGEMENT__OIDC__JWKS_PATH=str(jwks),
        CONNECTOR_DATA_DIR=str(tmp_path / "data"),
    )
    result = subprocess.run(
        [sys.executable, "-m", "connector", "control-plane"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("connector: management.oidc.jwks_path: JWKS file")
    assert "no usable public signing key (key 0 (kid 'None'): not an asymmetric key)" in lines[0]
    assert not Path(tmp_path / "data").exists()
