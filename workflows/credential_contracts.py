"""Inputs and outputs of the DCP credential request and renewal workflows and their activities
(decision 0023).

Pydantic models (the pydantic data converter carries them); new fields only with defaults, at the
end. Workflows import this module inside `workflow.unsafe.imports_passed_through()`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RequestStatus = Literal["REQUESTED", "ISSUED", "REJECTED", "EXPIRED"]
IssuerStatus = Literal["RECEIVED", "ISSUED", "REJECTED", "UNKNOWN"]


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CredentialRequestStart(_Contract):
    """Start input of `dcp.credential_request` (workflow id `credential-request:<holder_pid>`).

    Timers come from here (set from `credentials.*` settings by whoever starts it)."""

    holder_pid: str
    issuer_did: str
    credential_type: str
    deadline_seconds: int = Field(ge=1)
    poll_interval_seconds: int = Field(ge=1)
    renewal_of: str | None = None


class CredentialReceived(_Contract):
    """Signal `credential.received`: the Storage API stored credentials for this request, or the
    issuer wrote that it rejected it."""

    status: Literal["ISSUED", "REJECTED"]
    credential_ids: list[str] = Field(default_factory=list)
    # The issuer that wrote (None: not known, e.g. the status poll).
    issuer_did: str | None = None


class CredentialRequestView(_Contract):
    """The request as projected and queried."""

    holder_pid: str
    issuer_did: str
    credential_type: str
    status: RequestStatus
    deadline_at: datetime
    version: int
    created_at: datetime
    updated_at: datetime
    issuer_pid: str | None = None
    renewal_of: str | None = None
    credential_ids: list[str] = Field(default_factory=list)
    error: str | None = None


class SendCredentialRequest(_Contract):
    holder_pid: str
    issuer_did: str
    credential_type: str


class SentCredentialRequest(_Contract):
    issuer_pid: str | None = None


class CredentialStatusQuery(_Contract):
    holder_pid: str
    issuer_did: str


class CredentialStatusAnswer(_Contract):
    """The issuer's word on the request and what we hold for it."""

    issuer_status: IssuerStatus
    held_ids: list[str] = Field(default_factory=list)


class RenewalInput(_Contract):
    """Start input of `dcp.credential_renewal` (the Schedule's action carries it)."""

    window_seconds: int = Field(ge=1)
    deadline_seconds: int = Field(ge=1)
    poll_interval_seconds: int = Field(ge=1)


class ExpiringQuery(_Contract):
    before: datetime


class ExpiringCredential(_Contract):
    credential_id: str
    issuer_did: str
    credential_type: str


class ExpiringAnswer(_Contract):
    credentials: list[ExpiringCredential] = Field(default_factory=list)


class RenewalResult(_Contract):
    """Holder pids of the requests this run started, one per expiring credential."""

    requested: list[str] = Field(default_factory=list)
