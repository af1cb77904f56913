"""Negotiation use cases of the control plane: a verified DSP message becomes a workflow update
or start, an operator's request a consumer negotiation.

The service does what needs the database and the caller's identity (resolve the offer, evaluate
the contract policy, check the caller owns the process); the workflow does the rest.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from api.discovery import dsp_base
from api.negotiation.gateway import NegotiationGateway
from connector.core.dsp import (
    ContractAgreementMessage,
    ContractAgreementVerificationMessage,
    ContractNegotiationEventMessage,
    ContractNegotiationTerminationMessage,
    ContractOfferMessage,
    ContractRequestMessage,
    DspModel,
    DspVersion,
)
from connector.core.errors import (
    BadRequestError,
    ConnectorError,
    IllegalTransitionError,
    NotFoundError,
)
from connector.core.identity.claims import VerifiedCaller
from connector.core.ids import derived_pid
from connector.core.negotiation.aggregate import JsonObject, new_negotiation
from connector.core.negotiation.decide import Holds, ProviderMode, id_of, rules_differ
from connector.core.negotiation.messages import MessageKind
from connector.core.negotiation.record import NegotiationRecord
from connector.core.negotiation.states import Role
from connector.core.policy import Scope, evaluate, parse_policy
from connector.http.outbound import GuardedHttp
from connector.services.catalog import caller_facts, policy_context, resolve_offer_id
from connector.settings import Settings
from connector.stores import negotiations
from connector.stores.catalog import PgCatalogReadModel, ResolvedOffer
from workflows.contracts import InboundNegotiationMessage, NegotiationStart, OperatorDecision


def new_pid() -> str:
    """A fresh pid for a process we start with no key to derive it from."""
    return f"urn:uuid:{uuid.uuid4()}"


@dataclass(frozen=True)
class ContractDecision:
    """The service's verdict on a requested offer (policy facts for the provider workflow)."""

    offer: JsonObject  # as requested, with our target and assigner filled in
    offer_id: str
    asset_id: str
    allowed: bool
    reasons: tuple[str, ...]
    # The request asks for other rules than the offer's (a counter-request, decision 0012).
    differs: bool
    mode: ProviderMode


class NegotiationService:
    """The negotiation use cases of one connector, for the DSP and the management routes."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        gateway: NegotiationGateway,
        http: GuardedHttp,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._gateway = gateway
        self._http = http
        self._catalog = PgCatalogReadModel(pool)
        self.participant_id = settings.identity.resolved_participant_id(settings.server)

    def callback_address(self, version: DspVersion) -> str:
        return self._settings.server.base_url() + version.path_segment

    def deadline(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self._settings.negotiation.deadline_seconds)

    def holds(self, mode: ProviderMode | None = None) -> Holds:
        """What this connector leaves to a person (settings; `mode` from the offer definition)."""
        cfg = self._settings.negotiation
        return Holds(
            provider_mode=mode or ProviderMode(cfg.provider_decision),
            hold_denied=cfg.rules_on_deny == "hold",
            hold_verified=cfg.hold_verified,
            hold_agreement=cfg.hold_agreements,
            timeout=timedelta(seconds=cfg.hold_timeout_seconds),
        )

    def start_options(self, mode: ProviderMode | None = None) -> dict[str, Any]:
        return {
            "auto_accept": self._settings.policies.auto_accept_offers,
            "back_to_back_pause": timedelta(
                milliseconds=self._settings.negotiation.back_to_back_pause_ms
            ),
            "holds": self.holds(mode),
            "deadline": timedelta(seconds=self._settings.negotiation.deadline_seconds),
        }

    async def counterparty(self, address: str) -> tuple[str, DspVersion]:
        """(DSP base, version) of the counterparty at `address`, refused if the SSRF guard would
        refuse it."""
        base, version = await dsp_base(self._http, address)
        await self._http.vet(base)
        return base, version

    # --- consumer side: the operator's request ------------------------------------------

    def consumer_start(
        self,
        *,
        own_pid: str,
        counterparty_id: str,
        counterparty_address: str,
        version: DspVersion,
        offer: JsonObject,
        offer_id: str,
        now: datetime,
    ) -> NegotiationStart:
        """How a negotiation we open as consumer for `offer` starts (its assigner defaults to
        the counterparty)."""
        complete = dict(offer)
        complete.setdefault("assigner", counterparty_id)
        target = complete.get("target")
        record = NegotiationRecord(
            negotiation=new_negotiation(
                role=Role.CONSUMER,
                initiator=Role.CONSUMER,
                own_pid=own_pid,
                participant_id=self.participant_id,
                counterparty_id=counterparty_id,
                counterparty_address=counterparty_address,
                offer=complete,
                at=now,
            ),
            dsp_version=version.value,
            offer_id=offer_id,
            asset_id=target if isinstance(target, str) else None,
            deadline_at=self.deadline(now),
        )
        return NegotiationStart(
            record=record, callback_address=self.callback_address(version), **self.start_options()
        )

    async def reusable(self, counterparty_id: str, offer_id: str) -> NegotiationRecord | None:
        """A valid agreement or a running negotiation with `counterparty_id` for `offer_id`."""
        return await negotiations.find_reusable(self._pool, counterparty_id, offer_id)

    async def request_offer(
        self,
        *,
        counterparty_address: str,
        counterparty_id: str,
        offer: JsonObject,
        offer_id: str,
        reuse: bool,
        seed: str | None,
    ) -> NegotiationRecord:
        """Negotiate `offer` with the provider at `counterparty_address`; raises
        `StartedUnprojected` when started but not yet readable.

        The negotiation's pid is derived when a retry must meet the same workflow: per
        counterparty, offer and round with `reuse` (concurrent callers join one), per
        `Idempotency-Key` reservation with `seed` (decision 0009)."""
        base, version = await self.counterparty(counterparty_address)
        if reuse:
            round_ = await negotiations.count_terminated(self._pool, counterparty_id, offer_id)
            consumer_pid = derived_pid("reuse", counterparty_id, offer_id, str(round_))
        elif seed is not None:
            consumer_pid = derived_pid("idempotency", seed, "negotiation")
        else:
            consumer_pid = new_pid()
        start = self.consumer_start(
            own_pid=consumer_pid,
            counterparty_id=counterparty_id,
            counterparty_address=base,
            version=version,
            offer=offer,
            offer_id=offer_id,
            now=datetime.now(UTC),
        )
        return await self._gateway.start(start)

    async def decide(self, own_pid: str, decision: OperatorDecision) -> NegotiationRecord:
        """An operator's decision on our negotiation `own_pid` (decision 0012)."""
        record = await negotiations.get(self._pool, own_pid)
        if record is None:
            raise NotFoundError(f"negotiation {own_pid} is unknown")
        return await self._gateway.decide(record.negotiation.role, own_pid, decision)

    async def pending(self, role: Role, own_pid: str) -> dict[str, Any]:
        """What the workflow of our negotiation `own_pid` is doing right now (retries)."""
        return await self._gateway.pending(role, own_pid)

    # --- lookups ------------------------------------------------------------------------

    async def owned(self, pid: str, caller: VerifiedCaller) -> NegotiationRecord:
        """Our negotiation `pid`, if the caller is its counterparty (else 404, as DSP wants)."""
        record = await negotiations.get(self._pool, pid)
        if record is None or record.negotiation.counterparty_id != caller.participant_id:
            raise NotFoundError(f"negotiation {pid} is unknown")
        return record

    async def _resolve(self, offer_id: str, within: NegotiationRecord | None) -> ResolvedOffer:
        if within is not None and within.offer_id and within.asset_id:
            # A counter-request answers the offers exchanged in this negotiation, whose ids are
            # the parties' own: judge it against the catalog offer the negotiation is about.
            found = await self._catalog.resolve(within.offer_id, within.asset_id)
            if found is not None:
                return found
        try:
            return await resolve_offer_id(self._catalog, offer_id)
        except NotFoundError as exc:
            # An unknown offer in a request is a client error, not an unknown process.
            raise BadRequestError(*exc.reasons, pointer="/offer/@id") from None

    async def _contract_decision(
        self, offer: JsonObject, caller: VerifiedCaller, within: NegotiationRecord | None = None
    ) -> ContractDecision:
        """Resolve the requested offer and judge it by the contract policy."""
        offer_id = id_of(offer.get("@id"))
        if offer_id is None:
            raise BadRequestError("offer has no @id", pointer="/offer/@id")
        resolved = await self._resolve(offer_id, within)
        mode = ProviderMode(resolved.provider_decision) if resolved.provider_decision else None
        holds = self.holds(mode)
        complete: JsonObject = dict(offer)
        complete.setdefault("target", resolved.asset_id)
        complete["assigner"] = self.participant_id

        def verdict(allowed: bool, reasons: tuple[str, ...], differs: bool) -> ContractDecision:
            return ContractDecision(
                complete,
                resolved.offer_id,
                resolved.asset_id,
                allowed,
                reasons,
                differs,
                holds.provider_mode,
            )

        if id_of(complete.get("target")) != resolved.asset_id:
            return verdict(
                False,
                (f"offer {offer_id} is for dataset {resolved.asset_id}, not {complete['target']}",),
                False,
            )
        differs = rules_differ(offer, resolved.contract_policy)
        decision = evaluate(
            parse_policy(resolved.contract_policy),
            policy_context(caller_facts(caller), Scope.NEGOTIATION, datetime.now(UTC)),
        )
        if differs:
            changed = f"the requested {', '.join(differs)} differ from the offer's"
            if holds.provider_mode is ProviderMode.AUTO:
                return verdict(False, (f"{changed}; counter-offers are not accepted",), True)
            # Held for a person (decision 0012), who sees the policy's verdict too.
            return verdict(decision.allowed, (changed, *decision.reasons), True)
        return verdict(decision.allowed, tuple(decision.reasons), False)

    # --- provider side ------------------------------------------------------------------

    async def initial_request(
        self, msg: ContractRequestMessage, caller: VerifiedCaller, version: DspVersion
    ) -> NegotiationRecord:
        if msg.provider_pid is not None:
            raise BadRequestError(
                "an initial ContractRequestMessage carries no providerPid", pointer="/providerPid"
            )
        if not msg.callback_address:
            raise BadRequestError("callbackAddress is required", pointer="/callbackAddress")
        await self._vet(msg.callback_address)
        verdict = await self._contract_decision(msg.offer.policy, caller)
        now = datetime.now(UTC)
        provider_pid = derived_pid("provider", caller.participant_id, msg.consumer_pid)
        record = NegotiationRecord(
            negotiation=new_negotiation(
                role=Role.PROVIDER,
                initiator=Role.CONSUMER,
                own_pid=provider_pid,
                participant_id=self.participant_id,
                counterparty_id=caller.participant_id,
                at=now,
            ),
            dsp_version=version.value,
            offer_id=verdict.offer_id,
            asset_id=verdict.asset_id,
            deadline_at=self.deadline(now),
        )
        start = NegotiationStart(
            record=record,
            callback_address=self.callback_address(version),
            policy_allowed=verdict.allowed,
            policy_reasons=verdict.reasons,
            request_differs=verdict.differs,
            **self.start_options(verdict.mode),
        )
        inbound = InboundNegotiationMessage(
            kind=MessageKind.CONTRACT_REQUEST,
            sender=Role.CONSUMER,
            consumer_pid=msg.consumer_pid,
            counterparty_address=msg.callback_address,
            offer=verdict.offer,
            request_differs=verdict.differs,
        )
        result: NegotiationRecord = await self._gateway.open_with_message(start, inbound)
        return result

    async def initial_offer(
        self, msg: ContractOfferMessage, caller: VerifiedCaller, version: DspVersion
    ) -> NegotiationRecord:
        """A provider starts a negotiation with us (we are the consumer)."""
        if msg.consumer_pid is not None:
            raise BadRequestError(
                "an initial ContractOfferMessage carries no consumerPid", pointer="/consumerPid"
            )
        if not msg.callback_address:
            raise BadRequestError("callbackAddress is required", pointer="/callbackAddress")
        await self._vet(msg.callback_address)
        now = datetime.now(UTC)
        consumer_pid = derived_pid("consumer", caller.participant_id, msg.provider_pid)
        offer = msg.offer.policy
        record = NegotiationRecord(
            negotiation=new_negotiation(
                role=Role.CONSUMER,
                initiator=Role.PROVIDER,
                own_pid=consumer_pid,
                participant_id=self.participant_id,
                counterparty_id=caller.participant_id,
                at=now,
            ),
            dsp_version=version.value,
            offer_id=id_of(offer.get("@id")),
            asset_id=id_of(offer.get("target")),
            deadline_at=self.deadline(now),
        )
        start = NegotiationStart(
            record=record, callback_address=self.callback_address(version), **self.start_options()
        )
        inbound = InboundNegotiationMessage(
            kind=MessageKind.CONTRACT_OFFER,
            sender=Role.PROVIDER,
            provider_pid=msg.provider_pid,
            counterparty_address=msg.callback_address,
            offer=offer,
        )
        result: NegotiationRecord = await self._gateway.open_with_message(start, inbound)
        return result

    async def message(
        self, pid: str, msg: DspModel, caller: VerifiedCaller, expected_role: Role | None
    ) -> NegotiationRecord:
        """Any later message for our process `pid` (the path's pid is always the receiver's)."""
        record = await self.owned(pid, caller)
        n = record.negotiation
        if expected_role is not None and n.role is not expected_role:
            # The caller owns this negotiation, so it is not unknown: the message is one its
            # role may not send (e.g. a provider posting a verification) -> DSP 400 (dsp.md §8).
            raise IllegalTransitionError(
                f"{type(msg).__name__} is sent to the {expected_role.value}; "
                f"we are the {n.role.value} of negotiation {pid}"
            )
        own_field = "provider_pid" if n.role is Role.PROVIDER else "consumer_pid"
        if getattr(msg, own_field, None) != pid:
            raise BadRequestError(
                f"{'providerPid' if n.role is Role.PROVIDER else 'consumerPid'} in the body "
                f"does not match the path ({pid})"
            )
        inbound = await self._inbound(msg, n.role.counterparty, caller, record)
        result: NegotiationRecord = await self._gateway.deliver(
            n.role, pid, inbound, seen_version=n.version
        )
        return result

    async def _inbound(
        self, msg: DspModel, sender: Role, caller: VerifiedCaller, record: NegotiationRecord
    ) -> InboundNegotiationMessage:
        common = {
            "sender": sender,
            "consumer_pid": getattr(msg, "consumer_pid", None),
            "provider_pid": getattr(msg, "provider_pid", None),
        }
        match msg:
            case ContractRequestMessage():
                verdict = await self._contract_decision(msg.offer.policy, caller, record)
                return InboundNegotiationMessage(
                    kind=MessageKind.CONTRACT_REQUEST,
                    offer=verdict.offer,
                    policy_allowed=verdict.allowed,
                    policy_reasons=verdict.reasons,
                    request_differs=verdict.differs,
                    **common,
                )
            case ContractOfferMessage():
                return InboundNegotiationMessage(
                    kind=MessageKind.CONTRACT_OFFER, offer=msg.offer.policy, **common
                )
            case ContractAgreementMessage():
                return InboundNegotiationMessage(
                    kind=MessageKind.AGREEMENT,
                    agreement=msg.agreement.policy,
                    **common,
                )
            case ContractAgreementVerificationMessage():
                return InboundNegotiationMessage(kind=MessageKind.VERIFICATION, **common)
            case ContractNegotiationEventMessage():
                kind = (
                    MessageKind.ACCEPTED_EVENT
                    if msg.event_type == "ACCEPTED"
                    else MessageKind.FINALIZED_EVENT
                )
                return InboundNegotiationMessage(kind=kind, **common)
            case ContractNegotiationTerminationMessage():
                reasons = tuple(
                    r if isinstance(r, str) else json.dumps(r) for r in (msg.reason or [])
                )
                return InboundNegotiationMessage(
                    kind=MessageKind.TERMINATION, code=msg.code, reason=reasons, **common
                )
        raise BadRequestError(f"unexpected message {type(msg).__name__}")  # pragma: no cover

    async def _vet(self, url: str) -> None:
        """Refuse a callback address the SSRF guard would refuse, before anything is stored."""
        try:
            await self._http.vet(url)
        except ConnectorError as exc:
            raise BadRequestError(
                f"callbackAddress refused: {'; '.join(exc.reasons)}", pointer="/callbackAddress"
            ) from None
