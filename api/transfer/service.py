"""Transfer process use cases of the control plane: a verified DSP message becomes a workflow
update or start (dsp.md §9), an operator's request or command a consumer transfer or an update.

The service does what needs the database and the caller's identity: the agreement must exist, be
ours as provider with the caller as consumer, and still allow use now under its policy (scope
TRANSFER); the format must be one of the dataset's distributions; the asset's data address
becomes the flow's source. The workflow does the rest.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import asyncpg

from api.negotiation.service import NegotiationService, new_pid
from api.transfer.gateway import TransferGateway
from connector import data_address
from connector.core.dsp import (
    DspModel,
    DspVersion,
    TransferCompletionMessage,
    TransferRequestMessage,
    TransferStartMessage,
    TransferSuspensionMessage,
    TransferTerminationMessage,
)
from connector.core.errors import (
    BadRequestError,
    ConflictError,
    ConnectorError,
    ForbiddenError,
    NotFoundError,
    UnavailableError,
    UnprocessableError,
)
from connector.core.identity.claims import VerifiedCaller
from connector.core.ids import derived_pid
from connector.core.negotiation.record import NegotiationRecord
from connector.core.policy import Scope, evaluate, parse_policy
from connector.core.transfer.aggregate import JsonObject, new_transfer
from connector.core.transfer.hold import StartMode
from connector.core.transfer.messages import MessageKind
from connector.core.transfer.record import PENDING_AGREEMENT, TransferRecord
from connector.core.transfer.states import Role, TransferState
from connector.data_address import (
    FROM_COUNTERPARTY,
    TO_PROVIDER,
    check_destination,
    destination_kind,
)
from connector.encryption.keyring import DataKeys
from connector.encryption.values import open_address
from connector.http.outbound import GuardedHttp, OutboundRefusedError
from connector.services.catalog import caller_facts, policy_context
from connector.settings import Settings
from connector.stores import negotiations, transfers
from connector.stores.catalog import PgAssetStore
from workflows.contracts import (
    InboundTransferMessage,
    NegotiationStart,
    TransferCommand,
    TransferStart,
)

PUSH_SUFFIX = "-PUSH"
# How long an operator command waits for the state it asks for before answering 202.
COMMAND_WAIT_SECONDS: Final = 10.0
COMMAND_POLL_SECONDS: Final = 0.05
# The states an operator command is done in (the one asked for, or an end it met).
_TARGET: Final[dict[str, set[TransferState]]] = {
    "start": {TransferState.STARTED, TransferState.TERMINATED},
    "suspend": {TransferState.SUSPENDED, TransferState.TERMINATED},
    "resume": {TransferState.STARTED, TransferState.TERMINATED},
    "terminate": {TransferState.TERMINATED, TransferState.COMPLETED},
    "complete": {TransferState.COMPLETED, TransferState.TERMINATED},
}


def is_finite(source: dict[str, Any]) -> bool:
    """Files and objects end; an HTTP source is an API (non-finite) unless it says otherwise
    (`finite`, or `completeOnFirstRead: true`; `connector.data_address.is_finite`)."""
    return data_address.is_finite(source)


def endpoint_property(address: dict[str, Any], name: str) -> str | None:
    """The value of endpoint property `name` of a DataAddress (plain or EDC-namespaced)."""
    for prop in address.get("endpointProperties") or []:
        if isinstance(prop, dict) and prop.get("name") in (
            name,
            f"https://w3id.org/edc/v0.0.1/ns/{name}",
        ):
            value = prop.get("value")
            return str(value) if value is not None else None
    return None


class TransferService:
    """The transfer use cases of one connector, for the DSP and the management routes."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        gateway: TransferGateway,
        http: GuardedHttp,
        negotiation_service: NegotiationService,
        keys: DataKeys,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._gateway = gateway
        self._http = http
        # Get-or-negotiate starts a consumer negotiation inside the transfer workflow.
        self._negotiations = negotiation_service
        self._keys = keys  # EDRs are stored sealed under them
        self._refresh_locks: dict[str, asyncio.Lock] = {}
        self._assets = PgAssetStore(pool)
        self.participant_id = settings.identity.resolved_participant_id(settings.server)

    def callback_address(self, version: DspVersion) -> str:
        return self._settings.server.base_url() + version.path_segment

    def start_options(self) -> dict[str, Any]:
        return {
            "back_to_back_pause": timedelta(
                milliseconds=self._settings.negotiation.back_to_back_pause_ms
            ),
            "push_max_attempts": self._settings.dataplane.push_max_attempts,
            "start_mode": StartMode(self._settings.transfer.provider_start),
            "hold_timeout": timedelta(seconds=self._settings.transfer.hold_timeout_seconds),
        }

    # --- consumer side: the operator's request ------------------------------------------

    async def request_transfer(
        self,
        *,
        counterparty_address: str,
        counterparty_id: str,
        agreement_id: str | None,
        offer: JsonObject | None,
        format: str,
        data_destination: JsonObject | None,
        seed: str | None,
    ) -> TransferRecord:
        """Start a transfer under `agreement_id`, or under an agreement for `offer`: a valid one
        is reused, else it is negotiated first inside the same workflow (get-or-negotiate,
        decision 0005). Raises `StartedUnprojected` when started but not yet readable.

        With `seed` (an `Idempotency-Key` reservation, decision 0009) the ids are derived from
        it: a retry, also after a crash, starts, and so joins, the same workflow, and recognises
        the negotiation it started."""
        if seed is not None:
            transfer_pid = derived_pid("idempotency", seed, "transfer")
            negotiation_pid = derived_pid("idempotency", seed, "negotiation")
        else:
            transfer_pid, negotiation_pid = new_pid(), new_pid()
        if data_destination is not None:
            await self._check_destination(data_destination)
        agreed, running = await self._agreement_for(
            counterparty_id, agreement_id=agreement_id, offer=offer
        )
        base, version = await self._negotiations.counterparty(counterparty_address)
        now = datetime.now(UTC)
        negotiation: NegotiationStart | None = None
        if agreed is None:
            if running is not None and running.own_pid != negotiation_pid:
                raise ConflictError(
                    f"negotiation {running.own_pid} for this offer is still running; "
                    "start the transfer once it is FINALIZED, or terminate it"
                )
            requested = dict(offer or {})
            negotiation = self._negotiations.consumer_start(
                own_pid=negotiation_pid,
                counterparty_id=counterparty_id,
                counterparty_address=base,
                version=version,
                offer=requested,
                offer_id=str(requested["@id"]),
                now=now,
            )
        asset = (offer or {}).get("target")
        record = TransferRecord(
            transfer=new_transfer(
                role=Role.CONSUMER,
                own_pid=transfer_pid,
                agreement_id=agreed or PENDING_AGREEMENT,
                format=format,
                counterparty_id=counterparty_id,
                counterparty_address=base,
                data_address=data_destination,
                at=now,
            ),
            dsp_version=version.value,
            asset_id=asset if isinstance(asset, str) else None,
            push=data_destination is not None,
            negotiation_id=negotiation.record.own_pid if negotiation else None,
        )
        start = TransferStart(
            record=record,
            callback_address=self.callback_address(version),
            negotiation=negotiation,
            **self.start_options(),
        )
        return await self._gateway.start(start)

    async def _check_destination(self, destination: JsonObject) -> None:
        """422 with the pointer below /dataDestination for a push destination the provider's data
        plane would refuse (the rules of `connector.data_address`: HTTP, or S3 for a provider
        that writes into the consumer's bucket), then the resolving SSRF check of an HTTP
        endpoint."""
        check_destination(
            destination,
            self._settings.dataplane,
            self._settings.outbound,
            kinds=TO_PROVIDER,
            at="/dataDestination",
        )
        endpoint = destination.get("endpoint")
        if destination_kind(destination) == "http" and isinstance(endpoint, str):
            try:
                await self._http.vet(endpoint)
            except OutboundRefusedError as exc:
                raise UnprocessableError(
                    f"/dataDestination/endpoint: {'; '.join(exc.reasons)}",
                    pointer="/dataDestination/endpoint",
                ) from None

    async def _agreement_for(
        self, counterparty_id: str, *, agreement_id: str | None, offer: JsonObject | None
    ) -> tuple[str | None, NegotiationRecord | None]:
        """(agreement id, None) if usable; else (None, the running negotiation for it, if any)."""
        if agreement_id is not None:
            agreement = await negotiations.get_agreement(self._pool, agreement_id)
            if (
                agreement is None
                or agreement["role"] != Role.CONSUMER.value
                or agreement["providerId"] != counterparty_id
            ):
                raise BadRequestError(
                    f"no agreement {agreement_id} with {counterparty_id}", pointer="/agreementId"
                )
            return agreement_id, None
        if offer is None:
            raise BadRequestError("give an agreementId or an offer", pointer="/agreementId")
        offer_id = offer.get("@id")
        if not isinstance(offer_id, str):
            raise BadRequestError("offer needs an @id", pointer="/offer/@id")
        existing = await negotiations.find_reusable(self._pool, counterparty_id, offer_id)
        if existing is not None and existing.negotiation.agreement:
            found = existing.negotiation.agreement.get("@id")
            if isinstance(found, str):
                return found, None
        return None, existing

    async def command(self, own_pid: str, cmd: TransferCommand) -> tuple[TransferRecord, bool]:
        """An operator's command for our transfer `own_pid` (decision 0013): the record, and
        whether the counterparty acknowledged (the state changed to what the command asks for)
        within `COMMAND_WAIT_SECONDS`; else the message is still on its way."""
        record = await self.get(own_pid)
        before = record.transfer.version
        await self._gateway.command(record.transfer.role, own_pid, cmd)
        deadline = time.monotonic() + COMMAND_WAIT_SECONDS
        while time.monotonic() < deadline:
            current = await self.get(own_pid)
            if current.transfer.version > before and current.transfer.state in _TARGET[cmd.command]:
                return current, True
            await asyncio.sleep(COMMAND_POLL_SECONDS)
        return await self.get(own_pid), False

    async def get(self, own_pid: str) -> TransferRecord:
        """Our transfer `own_pid` (404 if unknown)."""
        record = await transfers.get(self._pool, own_pid)
        if record is None:
            raise NotFoundError(f"transfer {own_pid} is unknown")
        return record

    async def edr(self, own_pid: str, *, refresh: bool) -> tuple[dict[str, Any], datetime | None]:
        """The data address (endpoint and token) of our consumer pull `own_pid` and when its
        token expires; refreshed at the provider when asked or when it expires within 30 s."""
        record = await self.get(own_pid)
        t = record.transfer
        if t.role is not Role.CONSUMER or record.push:
            raise BadRequestError("an EDR exists only for the consumer side of a pull")
        if t.state is not TransferState.STARTED or t.data_address is None:
            raise ConflictError(f"transfer {own_pid} is {t.state.value}; no usable EDR")
        # Stored sealed (connector.stores.transfers); opened only here, for the operator.
        address: dict[str, Any] = open_address(self._keys, t.data_address, own_pid)
        expires_at: datetime | None = None
        stored = await transfers.get_edr(self._pool, own_pid, self._keys)
        if stored is not None and stored[2] >= t.updated_at:
            address, expires_at = stored[0], stored[1]
        elif (seconds := endpoint_property(address, "expiresIn")) and seconds.isdigit():
            expires_at = t.updated_at + timedelta(seconds=int(seconds))
        soon = expires_at is not None and expires_at - datetime.now(UTC) < timedelta(seconds=30)
        if refresh or soon:
            address, expires_at = await self._refresh_edr(own_pid, address)
        return address, expires_at

    async def _refresh_edr(
        self, own_pid: str, address: dict[str, Any]
    ) -> tuple[dict[str, Any], datetime | None]:
        """Rotate the token at the provider's refresh endpoint; one refresh at a time per
        transfer."""
        lock = self._refresh_locks.setdefault(own_pid, asyncio.Lock())
        async with lock:
            stored = await transfers.get_edr(self._pool, own_pid, self._keys)
            if stored is not None and stored[0] != address:
                renewed_at = stored[1]
                if renewed_at is not None and renewed_at - datetime.now(UTC) > timedelta(
                    seconds=30
                ):
                    return stored[0], renewed_at  # someone refreshed while we waited
            endpoint = endpoint_property(address, "refreshEndpoint")
            token = endpoint_property(address, "refreshToken")
            if not endpoint or not token:
                raise ConflictError("the provider offered no refresh for this transfer")
            try:
                resp = await self._http.request(
                    "POST",
                    endpoint,
                    content=f"grant_type=refresh_token&refresh_token={token}".encode(),
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
            except OSError as exc:
                raise UnavailableError(f"refresh endpoint unreachable: {exc}") from None
            if resp.status_code != 200:
                raise ConflictError(f"the provider refused the refresh ({resp.status_code})")
            data = resp.json()
            now = datetime.now(UTC)
            expires_at = now + timedelta(seconds=int(data.get("expires_in", 0)))
            renewed = {
                **address,
                "endpointProperties": [
                    p
                    for p in address.get("endpointProperties") or []
                    if not (
                        isinstance(p, dict)
                        and p.get("name") in ("authorization", "refreshToken", "expiresIn")
                    )
                ]
                + [
                    {
                        "@type": "EndpointProperty",
                        "name": "authorization",
                        "value": data["access_token"],
                    },
                    {
                        "@type": "EndpointProperty",
                        "name": "refreshToken",
                        "value": data["refresh_token"],
                    },
                    {
                        "@type": "EndpointProperty",
                        "name": "expiresIn",
                        "value": str(data["expires_in"]),
                    },
                ],
            }
            await transfers.put_edr(self._pool, own_pid, renewed, expires_at, self._keys)
            return renewed, expires_at

    # --- lookups ------------------------------------------------------------------------

    async def owned(self, pid: str, caller: VerifiedCaller) -> TransferRecord:
        """Our transfer `pid`, if the caller is its counterparty (else 404, as DSP wants)."""
        record = await transfers.get(self._pool, pid)
        if record is None or record.transfer.counterparty_id != caller.participant_id:
            raise NotFoundError(f"transfer {pid} is unknown")
        return record

    async def _agreed_asset(
        self, msg: TransferRequestMessage, caller: VerifiedCaller
    ) -> tuple[str, dict[str, Any]]:
        """(asset id, source address) for a request under a valid agreement of the caller's."""
        try:
            agreement = await negotiations.settled_agreement(
                self._pool, msg.agreement_id, counterparty_id=caller.participant_id
            )
        except negotiations.AgreementPendingError:
            # Retryable: the counterparty's retry finds it once our workflow has recorded it.
            raise UnavailableError(
                f"agreement {msg.agreement_id} is still being finalized; send it again shortly"
            ) from None
        if (
            agreement is None
            or agreement["role"] != Role.PROVIDER.value
            or agreement["consumerId"] != caller.participant_id
        ):
            # Someone else's agreement looks exactly like an unknown one.
            raise BadRequestError(
                f"agreement {msg.agreement_id} is unknown", pointer="/agreementId"
            )
        decision = evaluate(
            parse_policy(agreement["agreement"]),
            policy_context(caller_facts(caller), Scope.TRANSFER, datetime.now(UTC)),
        )
        if not decision.allowed:
            raise ForbiddenError(
                f"agreement {msg.agreement_id} does not allow a transfer now",
                *decision.reasons,
            )
        asset_id = agreement["assetId"] or agreement["target"]
        try:
            asset = await self._assets.get(asset_id)
        except NotFoundError:
            raise BadRequestError(f"the agreed dataset {asset_id} no longer exists") from None
        if msg.format not in asset.distributions:
            offered = ", ".join(asset.distributions) or "none"
            raise BadRequestError(
                f"format {msg.format!r} is not a distribution of {asset_id} (offered: {offered})",
                pointer="/format",
            )
        push = msg.format.upper().endswith(PUSH_SUFFIX)
        if push and msg.data_address is None:
            raise BadRequestError("a push transfer needs a dataAddress", pointer="/dataAddress")
        return asset_id, dict(asset.data_address)

    # --- provider side ------------------------------------------------------------------

    async def initial_request(
        self, msg: TransferRequestMessage, caller: VerifiedCaller, version: DspVersion
    ) -> TransferRecord:
        await self._vet(msg.callback_address, "/callbackAddress")
        asset_id, source = await self._agreed_asset(msg, caller)
        push = msg.data_address is not None
        if msg.data_address is not None:
            # Our data plane writes S3 and file destinations with our own credentials and into
            # our own base path: from a counterparty only an HTTP endpoint is a destination.
            if "http" not in msg.data_address.endpoint_type.lower():
                raise BadRequestError(
                    f"push destination type {msg.data_address.endpoint_type!r} is not accepted; "
                    "give an HTTP endpoint",
                    pointer="/dataAddress/endpointType",
                )
            if not msg.data_address.endpoint:
                raise BadRequestError(
                    "a push destination needs an endpoint", pointer="/dataAddress/endpoint"
                )
            # The rules our data plane applies when it pushes (connector.data_address).
            settings = self._settings
            check_destination(
                msg.data_address.to_wire(),
                settings.dataplane,
                settings.outbound,
                kinds=FROM_COUNTERPARTY,
                at="/dataAddress",
            )
            await self._vet(msg.data_address.endpoint, "/dataAddress/endpoint")
        now = datetime.now(UTC)
        provider_pid = derived_pid("transfer", caller.participant_id, msg.consumer_pid)
        record = TransferRecord(
            transfer=new_transfer(
                role=Role.PROVIDER,
                own_pid=provider_pid,
                agreement_id=msg.agreement_id,
                format=msg.format,
                counterparty_id=caller.participant_id,
                at=now,
            ),
            dsp_version=version.value,
            asset_id=asset_id,
            source=source,
            finite=is_finite(source),
            push=push,
        )
        start = TransferStart(
            record=record, callback_address=self.callback_address(version), **self.start_options()
        )
        inbound = InboundTransferMessage(
            kind=MessageKind.TRANSFER_REQUEST,
            sender=Role.CONSUMER,
            consumer_pid=msg.consumer_pid,
            counterparty_address=msg.callback_address,
            data_address=msg.data_address.to_wire() if msg.data_address else None,
        )
        result: TransferRecord = await self._gateway.start_with_message(start, inbound)
        return result

    async def message(
        self, pid: str, msg: DspModel, caller: VerifiedCaller, kind: MessageKind
    ) -> TransferRecord:
        """Any later message for our process `pid` (the path's pid is always the receiver's)."""
        record = await self.owned(pid, caller)
        t = record.transfer
        own_field = "provider_pid" if t.role is Role.PROVIDER else "consumer_pid"
        if getattr(msg, own_field, None) != pid:
            raise BadRequestError(
                f"{'providerPid' if t.role is Role.PROVIDER else 'consumerPid'} in the body "
                f"does not match the path ({pid})"
            )
        inbound = self._inbound(msg, kind, t.role.counterparty)
        result: TransferRecord = await self._gateway.deliver(
            t.role, pid, inbound, seen_version=t.version
        )
        return result

    @staticmethod
    def _inbound(msg: DspModel, kind: MessageKind, sender: Role) -> InboundTransferMessage:
        common: dict[str, Any] = {
            "kind": kind,
            "sender": sender,
            "consumer_pid": getattr(msg, "consumer_pid", None),
            "provider_pid": getattr(msg, "provider_pid", None),
        }
        match msg:
            case TransferStartMessage(data_address=address):
                return InboundTransferMessage(
                    data_address=address.to_wire() if address else None, **common
                )
            case TransferSuspensionMessage() | TransferTerminationMessage():
                reasons = tuple(
                    r if isinstance(r, str) else json.dumps(r) for r in (msg.reason or [])
                )
                return InboundTransferMessage(code=msg.code, reason=reasons, **common)
            case TransferCompletionMessage():
                return InboundTransferMessage(**common)
        raise BadRequestError(f"unexpected message {type(msg).__name__}")  # pragma: no cover

    async def _vet(self, url: str, pointer: str) -> None:
        """Refuse an address the SSRF guard would refuse, before anything is stored."""
        try:
            await self._http.vet(url)
        except ConnectorError as exc:
            raise BadRequestError(
                f"{pointer.strip('/')} refused: {'; '.join(exc.reasons)}", pointer=pointer
            ) from None
