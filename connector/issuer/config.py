"""The development issuer's identity and settings, kept in `<data dir>/issuer.json`
(decision 0024). Written once by `connector issuer init`; the private key lives beside it in
`<data dir>/keys/` (PEM, 0600 in 0700, like the connector's own identity key)."""

from __future__ import annotations

import json
import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connector.identity.did import InvalidDidError, did_web

__all__ = [
    "CONFIG_FILE",
    "KEYS_DIR",
    "IssuerConfig",
    "IssuerConfigError",
    "did_for_url",
    "load_config",
    "new_config",
    "save_config",
]

CONFIG_FILE: Final = "issuer.json"
KEYS_DIR: Final = "keys"


class IssuerConfigError(ValueError):
    """A data dir without an issuer, or a public URL that makes no did:web DID."""


class IssuerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    did: str
    public_url: str = Field(description="Base URL of the issuer service, without trailing slash.")
    data_space: str = Field(description="Name written into MembershipCredentials (memberOf).")
    status_list_id: str
    status_ttl_seconds: int = Field(
        default=300, gt=0, description="Validity of each signed status list (verifiers re-fetch)."
    )
    created_at: datetime

    @property
    def base_path(self) -> str:
        """The URL path the routes live under ('' at the root)."""
        return urlsplit(self.public_url).path.rstrip("/")

    @property
    def status_list_url(self) -> str:
        return f"{self.public_url}/status/{self.status_list_id}"

    @property
    def insecure_http(self) -> bool:
        """Plain http (loopback development): peers' DIDs resolve over http too."""
        return urlsplit(self.public_url).scheme == "http"


def did_for_url(public_url: str) -> tuple[str, str]:
    """`(did:web DID, normalised base URL)` for the issuer's public URL.

    Raises:
        IssuerConfigError: not an http(s) URL, or one with a query, fragment or user info.
    """
    parts = urlsplit(public_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise IssuerConfigError("--public-url must be an http(s) URL with a host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise IssuerConfigError("--public-url must not carry a query, fragment or user info")
    segments = [s for s in parts.path.split("/") if s]
    try:
        did = did_web(parts.hostname, parts.port, segments)
    except InvalidDidError as exc:
        raise IssuerConfigError(f"--public-url makes no did:web DID: {exc.reasons[0]}") from None
    host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    path = "/" + "/".join(segments) if segments else ""
    return did, f"{parts.scheme}://{host}{path}"


def new_config(
    public_url: str, data_space: str, now: datetime, *, status_ttl_seconds: int = 300
) -> IssuerConfig:
    did, base = did_for_url(public_url)
    return IssuerConfig(
        did=did,
        public_url=base,
        data_space=data_space,
        status_list_id=secrets.token_hex(6),
        status_ttl_seconds=status_ttl_seconds,
        created_at=now,
    )


def save_config(data_dir: Path, config: IssuerConfig) -> None:
    """Write `issuer.json` atomically (temp file + rename)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = data_dir / CONFIG_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(config.model_dump(mode="json"), indent=2) + "\n", "utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_config(data_dir: Path) -> IssuerConfig:
    """Raises IssuerConfigError when the data dir holds no (valid) issuer."""
    path = data_dir / CONFIG_FILE
    try:
        raw = json.loads(path.read_text("utf-8"))
        return IssuerConfig.model_validate(raw)
    except FileNotFoundError:
        raise IssuerConfigError(
            f"{data_dir} holds no issuer (run `connector issuer init` first)"
        ) from None
    except (ValueError, ValidationError) as exc:
        raise IssuerConfigError(f"{path} is not a valid issuer configuration: {exc}") from None
