import json
import subprocess
import sys
from pathlib import Path

import pytest

from connector.settings import ConfigError, load_settings, to_env


def test_defaults_match_the_documented_ports() -> None:
    s = load_settings(env={})
    assert (s.server.port, s.dataplane.port, s.metrics.port) == (3000, 3001, 9090)
    assert s.temporal.ui_port == 8233
    assert s.temporal.task_queues.all() == ["connector.control", "connector.ops"]
    assert s.data_dir == Path("var")


def test_env_vars_nest_with_double_underscores() -> None:
    s = load_settings(env={"CONNECTOR_DATABASE__POOL__MAX": "25", "CONNECTOR_SERVER__PORT": "4000"})
    assert s.database.pool.max == 25
    assert s.server.port == 4000


def test_yaml_file_in_the_seed_shape_is_read_and_env_wins(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        """
server: {host: 0.0.0.0, port: 3100}
database:
  url: postgresql://connector:password@localhost:5432/connector
  pool: {min: 2, max: 10}
redis: {url: "redis://localhost:6379"}
logging: {level: info, format: json}
identity:
  did: did:web:localhost%3A3000
  keyPath: /etc/connector/keys/private.pem
policies: {defaultPolicy: /etc/connector/policies/default.json}
adapters:
  - type: http
    config: {timeout: 30000}
  - type: file
    config: {basePath: /var/lib/connector/data}
"""
    )
    s = load_settings(config, env={"CONNECTOR_SERVER__PORT": "3200"})
    assert s.server.port == 3200
    assert s.server.host == "0.0.0.0"
    assert s.database.pool.min == 2
    assert s.identity.key_path == Path("/etc/connector/keys/private.pem")
    assert [a.type for a in s.adapters] == ["http", "file"]


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        (
            {"CONNECTOR_DATABASE__POOL__MAX": "abc"},
            "database.pool.max [CONNECTOR_DATABASE__POOL__MAX]",
        ),
        ({"CONNECTOR_SERVER__PORT": "70000"}, "server.port [CONNECTOR_SERVER__PORT]"),
        ({"CONNECTOR_LOGGING__LEVEL": "loud"}, "logging.level"),
        ({"CONNECTOR_DATABASE__URL": "mysql://x"}, "database.url"),
        ({"CONNECTOR_DATABASE__POOL__MIN": "9", "CONNECTOR_DATABASE__POOL__MAX": "3"}, "pool.min"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_key(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_the_embedded_temporal_server_gets_one_go_thread_unless_configured() -> None:
    assert load_settings(env={}).temporal.embedded_go_env == {"GOMAXPROCS": "1"}
    s = load_settings(env={"CONNECTOR_TEMPORAL__EMBEDDED_GO_ENV": '{"GOGC": "200"}'})
    assert s.temporal.embedded_go_env == {"GOGC": "200"}
    assert load_settings(env=to_env(s)) == s
    assert load_settings(env={}, temporal={"embedded_go_env": {}}).temporal.embedded_go_env == {}


def test_the_embedded_temporal_server_env_takes_go_runtime_variables_only() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={"CONNECTOR_TEMPORAL__EMBEDDED_GO_ENV": '{"LD_PRELOAD": "x.so"}'})
    assert "temporal.embedded_go_env" in str(info.value)
    assert "LD_PRELOAD" in str(info.value)


def test_secret_values_never_appear_in_the_error_message() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={"CONNECTOR_DATABASE__URL": "mysql://user:hunter2@db/x"})
    assert "hunter2" not in str(info.value)


def test_redacted_view_hides_every_secret() -> None:
    s = load_settings(
        env={
            "CONNECTOR_DATABASE__URL": "postgresql://u:hunter2@db/x",
            "CONNECTOR_REDIS__URL": "redis://:hunter3@cache:6379/0",
            "CONNECTOR_MANAGEMENT__API_KEYS": '["k-hunter4"]',
            "CONNECTOR_TEMPORAL__API_KEY": "hunter5",
        }
    )
    text = json.dumps(s.redacted())
    for secret in ("hunter2", "hunter3", "hunter4", "hunter5"):
        assert secret not in text
    assert s.redacted()["database"]["pool"]["max"] == 10


def test_settings_survive_the_trip_through_child_environment_variables() -> None:
    s = load_settings(
        env={
            "CONNECTOR_DATABASE__URL": "postgresql://u@db/x",
            "CONNECTOR_MANAGEMENT__API_KEYS": '["a", "b"]',
            "CONNECTOR_WORKERS__PROCESSES": "3",
        }
    )
    again = load_settings(env=to_env(s))
    assert again == s


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        capture_output=True,
        text=True,
        env=base,
        timeout=60,
        check=False,
    )


def test_cli_exits_2_with_one_line_on_invalid_config() -> None:
    result = _cli("up", env={"CONNECTOR_DATABASE__POOL__MAX": "abc"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "database.pool.max" in lines[0]


def test_cli_config_show_prints_redacted_effective_config() -> None:
    result = _cli("config", "show", env={"CONNECTOR_DATABASE__URL": "postgresql://u:hunter2@db/x"})
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["database"]["url"] == "**********"
    assert "hunter2" not in result.stdout
