"""The one settings tree. Built once per entrypoint (`load_settings`) and passed down.

Sources, strongest first: explicit keyword arguments, environment variables
`CONNECTOR_<SECTION>__<FIELD>` (e.g. `CONNECTOR_DATABASE__POOL__MAX`), the optional YAML file given
with `--config` (shaped like the seed's `config.yaml`), then defaults. No module-level instance:
two connectors live in one test process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from connector.core.identity.dcp import DEFAULT_SCOPES, scope_type
from connector.http.outbound import OutboundConfig
from connector.identity.trust import TrustConfig

ENV_PREFIX = "CONNECTOR_"
ENV_NESTED_DELIMITER = "__"

TASK_QUEUE_CONTROL = "connector.control"
TASK_QUEUE_OPS = "connector.ops"

#: The Go runtime variables `temporal.embedded_go_env` may set for the embedded dev server.
GO_RUNTIME_VARIABLES = frozenset({"GOMAXPROCS", "GOGC", "GOMEMLIMIT", "GODEBUG"})


class _Section(BaseModel):
    # YAML from the seed uses camelCase (keyPath); env vars and Python use snake_case.
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=0, le=65535)
    public_url: str | None = Field(
        default=None, description="Base URL counterparties use to reach this control plane."
    )
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_json_depth: int = Field(default=64, ge=4, le=1000)
    retry_after_seconds: int = Field(
        default=1,
        ge=1,
        le=3600,
        description="`Retry-After` of a 503 answer (a dependency is down; maintenance has its "
        "own, backup.maintenance_retry_after_seconds), on every route of every process",
    )

    keep_alive_seconds: int = Field(
        default=75,
        ge=1,
        le=3600,
        description="How long an idle HTTP/1.1 connection stays open on the control and data "
        "plane listeners: longer than a client's pause between requests (a `Retry-After`), so "
        "its next request does not race the close and meet a reset",
    )

    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "localhost" if self.host in ("0.0.0.0", "127.0.0.1", "::") else self.host
        return f"http://{host}:{self.port}"


class PoolSettings(_Section):
    min: int = Field(default=1, ge=0, le=100)
    max: int = Field(default=10, ge=1, le=500)

    @model_validator(mode="after")
    def _min_le_max(self) -> PoolSettings:
        if self.min > self.max:
            raise ValueError(f"pool.min ({self.min}) must not exceed pool.max ({self.max})")
        return self


class DatabaseSettings(_Section):
    url: SecretStr | None = Field(
        default=None,
        description="postgresql:// URL. Unset: `connector up` starts an embedded Postgres.",
    )
    pool: PoolSettings = PoolSettings()
    embedded_port: int = Field(default=0, ge=0, le=65535, description="0 = a free port")
    # A dependency outage answers 503 within about a second (issue 14): every wait on Postgres
    # is bounded, so a request never hangs on a database that is down or hung.
    connect_timeout_seconds: float = Field(
        default=1.0, gt=0, description="Opening a connection (TCP, TLS, authentication)"
    )
    acquire_timeout_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How long a query waits for a pool connection, opening one included (so "
        "not below connect_timeout_seconds)",
    )
    statement_timeout_seconds: float = Field(
        default=1.0,
        ge=0,
        description="Postgres `statement_timeout` of the pool's sessions: the server cancels a "
        "longer statement; 0 = none",
    )
    command_timeout: float = Field(
        default=1.0,
        gt=0,
        description="Seconds the client waits for a statement's answer (a hung server or "
        "network), then cancels it",
    )

    @field_validator("url")
    @classmethod
    def _postgres_scheme(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql://")
        return v


class RedisSettings(_Section):
    url: SecretStr | None = Field(
        default=None, description="redis:// URL. Unset: `connector up` starts an embedded Redis."
    )
    embedded_port: int = Field(default=0, ge=0, le=65535, description="0 = a free port")
    max_connections: int = Field(
        default=64, gt=0, description="Connections per process; more requests wait for one"
    )
    pool_timeout_seconds: float = Field(
        default=1.0, gt=0, description="How long a request waits for a free connection"
    )
    socket_timeout_seconds: float = Field(
        default=1.0, gt=0, description="How long a command waits for Redis's answer (a hung Redis)"
    )
    connect_timeout_seconds: float = Field(
        default=1.0, gt=0, description="Opening a connection to Redis"
    )
    fail_fast_seconds: float = Field(
        default=1.0,
        ge=0,
        description="After a command timed out or found Redis unreachable, commands fail at "
        "once for this long (then one tries again): a hung Redis costs one timeout per period, "
        "not one per command; 0 = off",
    )

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v


class TaskQueues(_Section):
    """`control`: negotiation and transfer workflows with their activities (DSP sends,
    projections, data-plane signaling: short HTTP calls; the bytes move in the data plane, not in
    a worker). `ops`: backup, verification and restore (decision 0028)."""

    control: str = TASK_QUEUE_CONTROL
    ops: str = TASK_QUEUE_OPS

    def all(self) -> list[str]:
        return [self.control, self.ops]


class TemporalSettings(_Section):
    address: str | None = Field(
        default=None,
        description="Temporal frontend host:port; unset: `connector up` starts a dev server.",
    )
    namespace: str = "connector"
    api_key: SecretStr | None = None
    tls: bool = False
    cloud: bool | None = Field(
        default=None,
        description="Temporal Cloud, where namespaces, retention and search attributes are "
        "managed with tcld or the Cloud UI, not through the frontend: `temporal-bootstrap` only "
        "checks them. Unset: detected from the address (*.tmprl.cloud, *.api.temporal.io)",
    )
    task_queues: TaskQueues = TaskQueues()
    retention_days: int = Field(default=30, ge=1, le=3650)
    embedded_port: int = Field(default=7233, ge=0, le=65535)
    ui_port: int = Field(default=8233, ge=0, le=65535, description="0 disables the Web UI")
    ui_host: str = Field(
        default="127.0.0.1",
        description="Address the embedded Web UI binds (0.0.0.0 in a container)",
    )
    embedded_go_env: dict[str, str] = Field(
        default_factory=lambda: {"GOMAXPROCS": "1"},
        description="Go runtime variables (GOMAXPROCS, GOGC, GOMEMLIMIT, GODEBUG) of the "
        "embedded dev server's process; {} leaves Go's defaults. GOMAXPROCS=1: one thread "
        "runs its Go code, about 15 % less of its CPU per negotiation on 2 cores (decision 0031)",
    )
    api_retry_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How long the control plane retries a Temporal call that cannot reach the "
        "server before answering 503 (workers keep the SDK's own retries)",
    )
    api_keepalive_seconds: float | None = Field(
        default=None,
        ge=10,
        le=600,
        description="If set, the control plane pings its Temporal connection four times per "
        "this period and drops it when a ping goes unanswered this long. Unset: the SDK's "
        "pings (every 30 s). The server closes connections that ping more often than its "
        "keepalive minimum (10 s by default) as 'too many pings', failing every long call on "
        "them, hence the floor; a hung server is otherwise noticed by the 8 s worker wait",
    )

    @field_validator("embedded_go_env")
    @classmethod
    def _go_runtime_only(cls, env: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(env) - GO_RUNTIME_VARIABLES)
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: not one of {', '.join(sorted(GO_RUNTIME_VARIABLES))}"
            )
        return env


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class DcpSettings(_Section):
    """The `dcp` profile's verifier (decision 0022, docs/security.md)."""

    scopes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SCOPES),
        min_length=1,
        description="Scopes asked of a caller's Credential Service, and granted in our own "
        "access tokens ('org.eclipse.dspace.dcp.vc.type:<Type>:read').",
    )
    credential_failures: Literal["refuse", "policy"] = Field(
        default="refuse",
        description="A presented credential that is expired, not yet valid, revoked or from an "
        "issuer not trusted for its type, or a requested type missing: refuse the request "
        "(refuse, DCP 1.0) or let policies see the credential's standing (policy).",
    )
    status_list_ttl_seconds: int = Field(
        default=300, ge=0, description="How long a fetched status list is reused."
    )
    presentation_cache_seconds: int = Field(
        default=60,
        ge=0,
        description="A caller's verified credentials are reused until the earliest expiry, at "
        "most this long (0: query on every request).",
    )

    @field_validator("scopes")
    @classmethod
    def _credential_scopes(cls, scopes: list[str]) -> list[str]:
        for scope in scopes:
            scope_type(scope)
        return scopes


class IdentitySettings(_Section):
    participant_id: str | None = Field(
        default=None, description="DSP participant id; defaults to the DID."
    )
    did: str | None = Field(
        default=None, description="did:web of this connector; derived from server.public_url."
    )
    key_path: Path | None = Field(
        default=None, description="PEM private key (EC P-256). Unset: generated in <data dir>/keys."
    )
    previous_key_paths: list[Path] = Field(
        default_factory=list, description="Retired PEM keys still published (rotation grace)."
    )
    rotation_grace_seconds: int = Field(default=7 * 24 * 3600, ge=0)
    cert_path: Path | None = None
    profile: Literal["secure", "dcp", "dev"] = "secure"
    allow_insecure: bool = Field(
        default=False, description="Required to start the `dev` profile (unsigned tokens)."
    )
    trust: TrustConfig = TrustConfig()
    dcp: DcpSettings = DcpSettings()
    did_cache_ttl_seconds: int = Field(default=300, ge=0)
    did_refresh_interval_seconds: int = Field(
        default=30,
        ge=1,
        description="A counterparty's DID document is fetched again before its cache TTL when "
        "its token names an unknown kid or its cached key does not verify the signature (a key "
        "rotation), at most once per this many seconds per DID",
    )
    token_leeway_seconds: int = Field(default=30, ge=0, le=300)

    @model_validator(mode="after")
    def _dcp_trusts_issuers(self) -> IdentitySettings:
        # With no trusted issuer every presentation fails: a connector that refuses everyone.
        if self.profile == "dcp" and not self.trust.trusted_issuers:
            raise ValueError(
                "identity.profile 'dcp' needs identity.trust.trusted_issuers (issuer DID -> "
                "credential types it may issue)"
            )
        return self

    def resolved_did(self, server: ServerSettings) -> str:
        if self.did:
            return self.did
        from urllib.parse import urlsplit

        parts = urlsplit(server.base_url())
        host = parts.hostname or "localhost"
        return f"did:web:{host}%3A{parts.port}" if parts.port else f"did:web:{host}"

    def resolved_participant_id(self, server: ServerSettings) -> str:
        return self.participant_id or self.resolved_did(server)


class NegotiationSettings(_Section):
    deadline_seconds: int = Field(
        default=24 * 3600, ge=5, description="A negotiation not ended by then is TERMINATED."
    )
    back_to_back_pause_ms: int = Field(
        default=0, ge=0, le=5000, description="Pause between two of our messages in a row."
    )
    # Operator holds (decision 0012).
    provider_decision: Literal["auto", "approve", "rules"] = Field(
        default="auto",
        description="Provider: answer a contract request at once by policy (auto), hold every "
        "request for a person (approve), or hold what the policy refuses or changes (rules). "
        "An offer definition's providerDecision overrides it.",
    )
    rules_on_deny: Literal["hold", "terminate"] = Field(
        default="hold", description="Mode `rules`: hold or terminate a request the policy denies."
    )
    hold_verified: bool = Field(
        default=False, description="Provider: hold in VERIFIED for a person (finalize/terminate)."
    )
    hold_agreements: bool = Field(
        default=False, description="Consumer: hold a received agreement for a person (verify)."
    )
    hold_timeout_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=1,
        description="A hold not decided by then TERMINATES the negotiation (on both sides).",
    )


class TransferSettings(_Section):
    provider_start: Literal["auto", "approve"] = Field(
        default="auto",
        description="Provider: start a requested transfer once its data flow is ready (auto), "
        "or hold the request in REQUESTED for an operator's start or terminate (approve).",
    )
    hold_timeout_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=1,
        description="A held transfer request not decided by then is TERMINATED (both sides).",
    )


class OperatorWebhookSettings(_Section):
    url: str | None = Field(
        default=None,
        description="POSTed (JSON, HMAC-signed) when a process starts waiting for a person; "
        "unset = no webhook. Called through the outbound SSRF guard.",
    )
    secret: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 key of the X-Connector-Signature header (16+ characters).",
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="Per attempt.")

    @model_validator(mode="after")
    def _secret_with_url(self) -> OperatorWebhookSettings:
        if self.url is not None and (
            self.secret is None or len(self.secret.get_secret_value()) < 16
        ):
            raise ValueError("operator_webhook.url needs a secret of 16 or more characters")
        return self


class AdmissionSettings(_Section):
    """Admission of new processes while the engine is behind (decision 0032)."""

    max_backlog: int = Field(
        default=200,
        ge=0,
        description="A new negotiation or transfer waits at the door while the control task "
        "queue holds at least this many tasks no worker has taken (0: admit every one)",
    )
    wait_seconds: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="How long a new process waits for the backlog to fall before it is refused "
        "503 + Retry-After",
    )
    refresh_seconds: float = Field(
        default=1.0, gt=0, le=60, description="How often each control plane reads the backlog"
    )
    retry_after_seconds: int = Field(
        default=5, ge=1, le=3600, description="`Retry-After` of a refused start"
    )


class RateLimitSettings(_Section):
    requests_per_minute: int = Field(default=600, ge=0, description="Per DSP caller; 0 = off")


#: JWS algorithms an OIDC access token may use (asymmetric only: no `none`, no HMAC).
OIDC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class OidcSettings(_Section):
    """OIDC bearer tokens for the management API, beside X-Api-Key (docs/security.md §3)."""

    issuer: str = Field(
        min_length=1, description="Expected `iss` of the access token (the IdP's issuer URL)."
    )
    audience: str = Field(min_length=1, description="Required entry of the token's `aud`.")
    jwks_path: Path | None = Field(
        default=None, description="JWKS file with the IdP's public keys (read at start)."
    )
    jwks_url: str | None = Field(
        default=None,
        description="JWKS URL, fetched through the guarded outbound client (SSRF rules apply: "
        "an IdP on a private network needs outbound.allow_hosts) and cached.",
    )
    algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "ES256"],
        description=f"Accepted JWS algorithms, a subset of {sorted(OIDC_ALGORITHMS)}.",
    )
    required_scope: str | None = Field(
        default=None, description="Scope the token must carry (`scope` string or `scp`)."
    )
    required_role: str | None = Field(
        default=None, description="Role the token must carry in `roles_claim`."
    )
    roles_claim: str = Field(
        default="roles",
        min_length=1,
        description="Dotted path of the roles claim (Keycloak: realm_access.roles).",
    )
    leeway_seconds: int = Field(
        default=30, ge=0, le=300, description="Clock skew tolerated for exp, nbf and iat."
    )
    jwks_cache_seconds: int = Field(
        default=300, ge=1, le=86400, description="How long a fetched JWKS is used (jwks_url)."
    )

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one algorithm is required")
        refused = [a for a in v if a not in OIDC_ALGORITHMS]
        if refused:
            raise ValueError(f"not allowed: {refused}; choose from {sorted(OIDC_ALGORITHMS)}")
        return v

    @field_validator("jwks_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("https://", "http://")):
            raise ValueError("must be an https:// URL")
        return v

    @model_validator(mode="after")
    def _one_jwks_source(self) -> OidcSettings:
        if (self.jwks_path is None) == (self.jwks_url is None):
            raise ValueError("set exactly one of jwks_path and jwks_url")
        return self


class ManagementSettings(_Section):
    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Accepted X-Api-Key values (plain or sha256:<hex>). Empty in edge mode: "
        "a key is generated into <data dir>/management-api-key.",
    )
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Own listener for the management API. Set: this port serves only "
        "/management, /health, /ready and its own API docs, and server.port answers "
        "/management with 404. "
        "Unset: the management API is served on server.port.",
    )
    host: str | None = Field(
        default=None,
        description="Address the management listener binds (e.g. 127.0.0.1); unset: "
        "server.host. Only used with management.port.",
    )
    oidc: OidcSettings | None = Field(
        default=None,
        description="Also admit `Authorization: Bearer <JWT>` from this OIDC issuer; "
        "unset: X-Api-Key only.",
    )
    idempotency_key_ttl_seconds: int = Field(
        default=24 * 3600,
        ge=60,
        le=30 * 24 * 3600,
        description="How long an Idempotency-Key of a creating POST is remembered (its answer "
        "replayed, another body refused); expired keys are purged.",
    )

    def listener_host(self, server: ServerSettings) -> str:
        return self.host or server.host

    def base_url(self, server: ServerSettings) -> str:
        """Where operators reach the management API (the main listener without management.port)."""
        if self.port is None:
            return server.base_url()
        host = self.listener_host(server)
        host = "localhost" if host in ("0.0.0.0", "127.0.0.1", "::") else host
        return f"http://{host}:{self.port}"


class PoliciesSettings(_Section):
    default_policy: Path | None = None
    auto_accept_offers: bool = True


class AdapterSettings(_Section):
    type: Literal["http", "file", "s3"]
    config: dict[str, Any] = Field(default_factory=dict)


class S3DataSettings(_Section):
    """Credentials and endpoint for S3 data addresses (sources and sinks of the data plane)."""

    endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, Ceph, ...); unset: AWS"
    )
    region: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    part_size_bytes: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024)


class DataPlaneSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=3001, ge=0, le=65535)
    public_url: str | None = Field(
        default=None, description="Base URL consumers pull from (<this>/public/<transfer id>)."
    )
    signaling_url: str | None = Field(
        default=None, description="Where workers reach the signaling API; unset: the base URL."
    )
    signaling_secret: SecretStr | None = Field(
        default=None,
        description="Shared secret between workers and the data plane (Bearer). Unset: "
        "generated into <data dir>/dataplane-signaling-key.",
    )
    file_base_path: Path | None = Field(
        default=None,
        description="Directory file sources and sinks are confined to; unset: file addresses "
        "are refused.",
    )
    token_ttl_seconds: int = Field(default=300, ge=5, description="Lifetime of an access token")
    token_grace_seconds: int = Field(
        default=10, ge=0, le=300, description="How long a refreshed token's predecessor lives on"
    )
    token_cache_seconds: int = Field(
        default=60, ge=0, description="Redis cache TTL of token lookups (0 = no cache)"
    )
    chunk_bytes: int = Field(default=1024 * 1024, ge=4096, le=64 * 1024 * 1024)
    push_max_attempts: int = Field(
        default=3, ge=1, le=20, description="Push attempts before a transfer is TERMINATED"
    )
    push_timeout_seconds: float = Field(
        default=120.0, gt=0, description="Read/write timeout of a push to a sink"
    )
    stale_flow_seconds: float = Field(
        default=5.0, gt=0, description="A push silent this long is reported as interrupted"
    )
    s3: S3DataSettings = S3DataSettings()

    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "localhost" if self.host in ("0.0.0.0", "127.0.0.1", "::") else self.host
        return f"http://{host}:{self.port}"

    def signaling_base(self) -> str:
        return (self.signaling_url or self.base_url()).rstrip("/")


class MetricsSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=9090, ge=0, le=65535, description="0 disables the metrics listener")
    temporal_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Loopback port of the Temporal SDK exporter; 0 = free",
    )


class WorkerSettings(_Section):
    processes: int = Field(
        default=1, ge=1, le=64, description="Worker processes `connector up` runs"
    )
    health_port: int = Field(default=3002, ge=0, le=65535)
    graceful_shutdown_seconds: float = Field(default=8.0, ge=0)
    workflow_sandbox: bool = Field(
        default=True,
        description=(
            "Run workflows in the Temporal SDK's sandbox (the default, and what every test "
            "runs). Off trades that safety net for throughput: the sandbox re-imports a "
            "workflow's module for every run, measured at 10-18 % of a connector's CPU "
            "(docs/benchmarks.md, Negotiations)"
        ),
    )


class S3BackupSettings(_Section):
    endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, Ceph, ...); unset: AWS"
    )
    bucket: str | None = None
    prefix: str = Field(default="connector-backups/", description="Key prefix for backups")
    region: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    server_side_encryption: Literal["AES256", "aws:kms"] | None = Field(
        default=None, description="SSE for every object written"
    )
    kms_key_id: str | None = Field(
        default=None, description="KMS key (id, ARN or alias) for aws:kms; unset: the bucket's"
    )
    part_size_bytes: int = Field(default=16 * 1024 * 1024, ge=5 * 1024 * 1024)

    @model_validator(mode="after")
    def _kms_key_needs_kms(self) -> S3BackupSettings:
        if self.kms_key_id and self.server_side_encryption != "aws:kms":
            raise ValueError("kms_key_id needs server_side_encryption aws:kms")
        return self


class BackupSettings(_Section):
    enabled: bool = Field(
        default=True, description="false: the schedule exists but stays paused (visible in the UI)"
    )
    target: Literal["local", "s3"] = "local"
    directory: Path | None = Field(
        default=None, description="Local target; unset: <data dir>/backups"
    )
    s3: S3BackupSettings = S3BackupSettings()
    schedule: str = Field(default="0 2 * * *", description="Cron expression of the backup")
    time_zone: str = "UTC"
    catchup_window_seconds: int = Field(
        default=6 * 3600, ge=60, description="Run a missed backup only this late"
    )
    keep_daily: int = Field(default=7, ge=1, description="Newest backup of each of N days")
    keep_weekly: int = Field(default=4, ge=0, description="Newest backup of each of M ISO weeks")
    verify: bool = Field(default=True, description="Restore each backup into a scratch DB")
    verify_database: str | None = Field(
        default=None,
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="A pre-created scratch database (owned by the connector's role) the "
        "verification restores into, emptied before and after, so the role needs no CREATEDB. "
        "Unset: create and drop connector_verify_<id> per verification (needs CREATEDB)",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="Direct postgresql:// URL for pg_dump, pg_restore and verification when "
        "database.url goes through a transaction-mode pooler (PgBouncer cannot carry "
        "pg_dump's session). Unset: database.url",
    )
    compression: str = Field(default="gzip:6", description="pg_dump --compress value")
    pg_bin_dir: Path | None = Field(
        default=None, description="pg_dump/pg_restore directory; unset: embedded, then PATH"
    )
    max_bytes_per_second: int = Field(
        default=0, ge=0, description="Throttle dump/upload I/O; 0 = unlimited"
    )
    work_dir: Path | None = Field(
        default=None, description="Scratch space for downloads; unset: <data dir>/backups-work"
    )
    maintenance_retry_after_seconds: int = Field(default=30, ge=1)
    node: bool | None = Field(
        default=None,
        description="Whole-node backup (decision 0017): also the Temporal dev server's SQLite "
        "database, the key rings, the management key and the configuration. Unset: on when "
        "the dev server runs embedded under the data dir",
    )
    recovery_key_file: Path | None = Field(
        default=None,
        description="Key that encrypts the key rings and the management key in a node backup; "
        "keep a copy outside the node. Unset: <data dir>/recovery-key.json, generated on the "
        "first node backup",
    )

    def resolved_directory(self, data_dir: Path) -> Path:
        return (self.directory or data_dir / "backups").resolve()

    def resolved_work_dir(self, data_dir: Path) -> Path:
        return (self.work_dir or data_dir / "backups-work").resolve()

    def resolved_recovery_key_file(self, data_dir: Path) -> Path:
        return (self.recovery_key_file or Path(data_dir) / "recovery-key.json").resolve()


class EncryptionSettings(_Section):
    """Secrets at rest (docs/security.md "Secrets at rest", decision 0011)."""

    key_file: Path | None = Field(
        default=None,
        description="Data key ring (JSON, mode 0600) for the Temporal payload codec, backups "
        "and sealed EDR tokens; every process of one connector must use the same file. Unset: "
        "<data dir>/keys/data-keys.json, generated on first start",
    )
    temporal_payloads: bool = Field(
        default=True,
        description="Encrypt every Temporal payload (AES-256-GCM codec on every client and "
        "worker); histories then need the codec (endpoint) to be read",
    )
    backups: bool = Field(
        default=True, description="Encrypt backup archives (decrypted on verify and restore)"
    )
    codec_origins: list[str] | None = Field(
        default=None,
        description="Browser origins (Temporal UI) allowed to call the codec endpoint "
        "/management/codec (CORS). Unset: the embedded UI, http://127.0.0.1:<temporal.ui_port> "
        "and http://localhost:<temporal.ui_port>",
    )

    @field_validator("codec_origins")
    @classmethod
    def _origins(cls, v: list[str] | None) -> list[str] | None:
        for origin in v or []:
            if not origin.startswith(("http://", "https://")) or origin.rstrip("/") != origin:
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port])")
        return v

    def resolved_key_file(self, data_dir: Path) -> Path:
        return (self.key_file or Path(data_dir) / "keys" / "data-keys.json").resolve()

    def allowed_origins(self, temporal: TemporalSettings) -> list[str]:
        if self.codec_origins is not None:
            return self.codec_origins
        if not temporal.ui_port:
            return []
        return [f"http://127.0.0.1:{temporal.ui_port}", f"http://localhost:{temporal.ui_port}"]


class CredentialSettings(_Section):
    """DCP holder: requesting and renewing our verifiable credentials (decision 0023)."""

    request_deadline_seconds: int = Field(
        default=24 * 3600,
        ge=1,
        description="A credential request not answered with a credential by then ends EXPIRED",
    )
    poll_interval_seconds: int = Field(
        default=300,
        ge=1,
        description="How often a waiting request asks the issuer for its status (a fallback: "
        "the issuer's write to our Storage API ends the wait at once)",
    )
    renewal_enabled: bool = Field(
        default=True, description="Run the daily credential renewal Schedule"
    )
    renewal_schedule: str = Field(
        default="30 3 * * *", description="Cron expression of the renewal run (UTC)"
    )
    renewal_window_seconds: int = Field(
        default=14 * 24 * 3600,
        ge=1,
        description="A held credential expiring within this window is renewed",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
    )

    data_dir: Path = Field(
        default=Path("var"), validation_alias=AliasChoices("data_dir", "dataDir")
    )
    server: ServerSettings = ServerSettings()
    management: ManagementSettings = ManagementSettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    temporal: TemporalSettings = TemporalSettings()
    logging: LoggingSettings = LoggingSettings()
    identity: IdentitySettings = IdentitySettings()
    outbound: OutboundConfig = OutboundConfig()
    rate_limit: RateLimitSettings = RateLimitSettings()
    admission: AdmissionSettings = AdmissionSettings()
    negotiation: NegotiationSettings = NegotiationSettings()
    transfer: TransferSettings = TransferSettings()
    operator_webhook: OperatorWebhookSettings = OperatorWebhookSettings()
    policies: PoliciesSettings = PoliciesSettings()
    adapters: list[AdapterSettings] = Field(default_factory=list)
    dataplane: DataPlaneSettings = DataPlaneSettings()
    metrics: MetricsSettings = MetricsSettings()
    workers: WorkerSettings = WorkerSettings()
    backup: BackupSettings = BackupSettings()
    encryption: EncryptionSettings = EncryptionSettings()
    credentials: CredentialSettings = CredentialSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # No .env file: configuration comes from the environment and the --config file only.
        return (init_settings, env_settings, file_secret_settings)

    def redacted(self) -> dict[str, Any]:
        """The effective configuration as plain data, secrets replaced by '**********'."""
        redacted: dict[str, Any] = _redact(self.model_dump(mode="json"), self)
        return redacted


class ConfigError(Exception):
    """Invalid configuration; the message is one line naming the key and the problem."""


def load_settings(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings from defaults, the YAML file, the environment and overrides.

    Raises:
        ConfigError: one line naming the first bad key (and its env var) and the problem.
    """
    file_data: dict[str, Any] = {}
    if config_file is not None:
        import yaml  # only with --config: a role started from env vars never loads PyYAML

        try:
            loaded = yaml.safe_load(config_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {config_file}: {_one_line(exc)}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {config_file}: top level must be a mapping")
        file_data = loaded
    env_data = _env_tree(os.environ if env is None else env)
    merged = _deep_merge(_deep_merge(_normalise_keys(file_data), env_data), overrides)
    try:
        # Env has already been merged by hand, so the settings class must not read it again.
        return _NoEnvSettings(**merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc


class _NoEnvSettings(Settings):
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def to_env(settings: Settings) -> dict[str, str]:
    """The settings as CONNECTOR_* env vars (how `connector up` configures its children).

    Sections nest with `__`; a free-form mapping (e.g. `identity.trust.trusted_issuers`, keyed
    by DIDs) travels as one JSON value, its keys as they are."""
    out: dict[str, str] = {}
    for key in type(settings).model_fields:
        value = getattr(settings, key)
        if value is not None:
            _flatten(value, ENV_PREFIX + key.upper(), out)
    return out


def _flatten(value: Any, name: str, out: dict[str, str]) -> None:
    if isinstance(value, BaseModel):
        for key in type(value).model_fields:
            inner = getattr(value, key)
            if inner is not None:
                _flatten(inner, f"{name}{ENV_NESTED_DELIMITER}{key.upper()}", out)
        return
    if isinstance(value, dict):
        out[name] = json.dumps(_plain(value))
        return
    out[name] = _env_value(value)


def _env_value(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return json.dumps(_plain(value))
    return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, BaseModel):
        return _plain(value.model_dump(mode="python", exclude_none=True))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _env_tree(env: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX) :].split(ENV_NESTED_DELIMITER)]
        if not all(path):
            continue
        node = tree
        for part in path[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                break
            node = nxt
        else:
            node[path[-1]] = _maybe_json(value)
    return tree


def _maybe_json(value: str) -> Any:
    # Lists and mappings arrive as JSON in env vars (CONNECTOR_MANAGEMENT__API_KEYS='["k1","k2"]').
    stripped = value.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return json.loads(stripped)
        except ValueError:
            return value
    return value


def _normalise_keys(data: Any) -> Any:
    if isinstance(data, dict):
        return {_snake(str(k)): _normalise_keys(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_normalise_keys(v) for v in data]
    return data


def _snake(name: str) -> str:
    out = []
    for ch in name:
        if ch.isupper():
            out.append("_")
            out.append(ch.lower())
        else:
            out.append(ch)
    return "".join(out).lstrip("_")


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    dotted = ".".join(_snake(p) for p in loc) or "<root>"
    env_var = ENV_PREFIX + ENV_NESTED_DELIMITER.join(_snake(p).upper() for p in loc)
    given = err.get("input")
    shown = "" if isinstance(given, dict | list) or given is None else f" (got {given!r})"
    if "secret" in dotted or "url" in dotted or "key" in dotted:
        shown = ""
    return f"invalid configuration: {dotted} [{env_var}]: {_one_line(err['msg'])}{shown}"


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _redact(data: Any, settings: Settings) -> Any:
    secrets = _secret_paths(settings)

    def walk(node: Any, path: tuple[str, ...]) -> Any:
        if path in secrets:
            return None if node is None else "**********"
        if isinstance(node, dict):
            return {k: walk(v, (*path, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, path) for v in node]
        return node

    return walk(data, ())


def _secret_paths(model: BaseModel, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for name in type(model).model_fields:
        value = getattr(model, name)
        path = (*prefix, name)
        if isinstance(value, SecretStr) or (
            isinstance(value, list) and any(isinstance(v, SecretStr) for v in value)
        ):
            found.add(path)
        elif isinstance(value, BaseModel):
            found |= _secret_paths(value, path)
    annotations = {
        ("database", "url"),
        ("redis", "url"),
        ("temporal", "api_key"),
        ("management", "api_keys"),
    }
    return found | {a for a in annotations if a[: len(prefix)] == prefix}
