"""The development issuer itself: its DID document, issuing and revoking credentials, and the
signed status list (decision 0024). Used by the CLI commands and by the HTTP service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from joserfc import jwt

from connector.core.clock import Clock
from connector.core.errors import BadRequestError, NotFoundError
from connector.core.issuer.credentials import (
    SUPPORTED_TYPES,
    CredentialClaims,
    credential_claims,
    status_list_claims,
    subject_fields,
)
from connector.core.issuer.statuslist import encode_list, revoked_list
from connector.identity.did import build_did_document
from connector.identity.keys import KeyRing, load_or_create_keyring, rotate_keyring
from connector.issuer.config import KEYS_DIR, IssuerConfig, IssuerConfigError, load_config
from connector.issuer.store import DB_FILE, CredentialRecord, IssuerStore
from connector.runtime.clock import utc_now

__all__ = ["ISSUER_SERVICE_FRAGMENT", "KEY_GRACE", "DevIssuer", "open_issuer", "rotate_issuer_key"]


ISSUER_SERVICE_FRAGMENT: Final = "#issuer-service"
MAX_VALIDITY_DAYS: Final = 3650
#: A retired issuer key stays in the DID document as long as a credential it signed can live:
#: verifiers check every credential against the key that signed it (decision 0024).
KEY_GRACE: Final = timedelta(days=MAX_VALIDITY_DAYS)


@dataclass(frozen=True, slots=True)
class DevIssuer:
    config: IssuerConfig
    keyring: KeyRing
    store: IssuerStore
    clock: Clock = utc_now

    @property
    def did(self) -> str:
        return self.config.did

    def did_document(self) -> dict[str, Any]:
        """Our DID document: the key(s) under assertionMethod (credentials), authentication and
        capabilityInvocation (our SI tokens), plus the IssuerService endpoint."""
        service = {
            "id": f"{self.did}{ISSUER_SERVICE_FRAGMENT}",
            "type": "IssuerService",
            "serviceEndpoint": self.config.public_url,
        }
        return build_did_document(self.did, self.keyring.published(self.clock()), [service])

    def _sign(self, claims: dict[str, Any]) -> str:
        entry = self.keyring.current
        header = {"alg": "ES256", "kid": f"{self.did}#{entry.key_id}", "typ": "JWT"}
        return jwt.encode(header, claims, entry.key, algorithms=["ES256"])

    def issue(
        self,
        holder_did: str,
        credential_type: str,
        *,
        days: int = 365,
        request_id: str | None = None,
    ) -> CredentialRecord:
        """Sign and record a credential for `holder_did`.

        Raises:
            BadRequestError: an unsupported type or validity.
            StatusListFullError: no free status index left.
        """
        if credential_type not in SUPPORTED_TYPES:
            supported = ", ".join(sorted(SUPPORTED_TYPES))
            raise BadRequestError(
                f"unsupported credential type {credential_type!r} (supported: {supported})"
            )
        if not 0 < days <= MAX_VALIDITY_DAYS:
            raise BadRequestError(f"validity must be 1 to {MAX_VALIDITY_DAYS} days")
        issued_at = self.clock().replace(microsecond=0)
        expires_at = issued_at + timedelta(days=days)
        credential_id = f"urn:uuid:{uuid.uuid4()}"
        # A member since it was registered (a holder removed and added again starts anew).
        since = self.store.participant_since(holder_did) or issued_at
        subject = subject_fields(
            credential_type, data_space=self.config.data_space, member_since=since
        )

        def sign(index: int) -> str:
            return self._sign(
                credential_claims(
                    CredentialClaims(
                        issuer_did=self.did,
                        holder_did=holder_did,
                        credential_id=credential_id,
                        credential_type=credential_type,
                        issued_at=issued_at,
                        expires_at=expires_at,
                        subject=subject,
                        status_list_url=self.config.status_list_url,
                        status_index=index,
                    )
                )
            )

        return self.store.add_credential(
            credential_id=credential_id,
            holder_did=holder_did,
            credential_type=credential_type,
            status_list_id=self.config.status_list_id,
            issued_at=issued_at,
            expires_at=expires_at,
            request_id=request_id,
            sign=sign,
        )

    def revoke(self, credential_id: str) -> CredentialRecord:
        """Set the credential's status bit; the next status list fetch shows it."""
        return self.store.revoke(credential_id, self.clock())

    def status_list(self, status_list_id: str) -> str:
        """The revocation list as a freshly signed VC JWT, valid for the list's TTL.

        Raises:
            NotFoundError: not our list.
        """
        if status_list_id != self.config.status_list_id:
            raise NotFoundError(f"no status list {status_list_id}")
        bits = revoked_list(self.store.revoked_indexes(status_list_id))
        issued_at = self.clock().replace(microsecond=0)
        expires_at = issued_at + timedelta(seconds=self.config.status_ttl_seconds)
        return self._sign(
            status_list_claims(
                self.did, self.config.status_list_url, encode_list(bits), issued_at, expires_at
            )
        )


def open_issuer(data_dir: Path, *, clock: Clock = utc_now) -> DevIssuer:
    """The issuer kept in `data_dir`.

    Raises:
        IssuerConfigError: `data_dir` holds no issuer.
        InsecureKeyFileError: the key directory or a key is readable by others.
    """
    config = load_config(data_dir)
    keys = data_dir / KEYS_DIR
    if not keys.is_dir():
        raise IssuerConfigError(f"{data_dir} has no key directory {KEYS_DIR}/")
    return DevIssuer(
        config=config,
        keyring=load_or_create_keyring(keys, grace=KEY_GRACE),
        store=IssuerStore(data_dir / DB_FILE),
        clock=clock,
    )


def rotate_issuer_key(data_dir: Path, *, now: datetime) -> KeyRing:
    """A new current signing key; the old one stays published for `KEY_GRACE` so credentials
    it signed keep verifying. A running `serve` signs with the new key after a restart."""
    load_config(data_dir)  # an issuer lives here
    return rotate_keyring(data_dir / KEYS_DIR, now=now, grace=KEY_GRACE)
