"""Outbound DSP messages to counterparties, through the SSRF-guarded client with our token.

Errors are translated here, once: a 4xx answer is the peer's final word (non-retryable, with its
code and reasons kept for the timeline); 5xx, timeouts and connection failures are retried by
Temporal. A 404 for a process the peer already acknowledged is retried a few times first: the
peer may not have finished storing it (conformance.md §2.7).

A message with a delivery key is marked in the delivery journal once the connection is made and
before the request is written (decision 0010); when the mark cannot be written, the attempt
fails unsent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Final, NoReturn

import asyncpg
import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from connector.core.dsp import DspVersion
from connector.core.errors import ConnectorError
from connector.core.jsonld import encode
from connector.core.negotiation.wire import build_message, is_initial, message_path
from connector.core.transfer import wire as transfer_wire
from connector.http.outbound import OutboundRefusedError
from connector.identity.runtime import Identity
from connector.stores import delivery_journal
from workflows import names
from workflows.contracts import (
    OutboundNegotiationMessage,
    OutboundTransferMessage,
    PeerRejection,
    RemoteAck,
)

_MAX_BODY_IN_ERROR = 2000
#: The longest pause a peer's `Retry-After` may impose on one retry: longer ones (a maintenance
#: window) are met by several retries, each a chance to finish sooner.
MAX_RETRY_AFTER: Final = timedelta(minutes=2)
_V08_NEEDS_CALLBACK = frozenset(
    {
        "dspace:ContractRequestMessage",
        "dspace:ContractOfferMessage",
        "dspace:ContractAgreementMessage",
    }
)


def _peer_reasons(resp: httpx.Response) -> PeerRejection:
    body: Any = None
    code: str | None = None
    reasons: tuple[str, ...] = ()
    try:
        body = resp.json()
    except ValueError:
        body = resp.text[:_MAX_BODY_IN_ERROR]
    if isinstance(body, dict):
        raw_code = body.get("code", body.get("dspace:code"))
        code = str(raw_code) if raw_code is not None else None
        raw = body.get("reason", body.get("dspace:reason"))
        items = raw if isinstance(raw, list) else [raw] if raw is not None else []
        reasons = tuple(str(r.get("@value", r)) if isinstance(r, dict) else str(r) for r in items)
    return PeerRejection(status=resp.status_code, code=code, reasons=reasons, body=None)


class _JournalUnavailableError(Exception):
    """The delivery journal could not be written: the request must not go out."""


class DspClientActivities:
    def __init__(self, identity: Identity, pool: asyncpg.Pool) -> None:
        self._identity = identity
        self._pool = pool

    def _journal(self, key: str) -> Callable[[], Awaitable[None]] | None:
        if not key:
            return None
        done = False

        async def mark() -> None:
            nonlocal done
            if done:
                return
            try:
                await delivery_journal.mark(self._pool, key)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                raise _JournalUnavailableError(str(exc) or type(exc).__name__) from exc
            done = True

        return mark

    @activity.defn(name=names.ACT_DELIVERY_SENT)
    async def delivery_sent(self, key: str) -> bool:
        """Whether any attempt of the message with journal key `key` may have been written."""
        return await delivery_journal.marked(self._pool, key)

    @activity.defn(name=names.ACT_SEND_NEGOTIATION_MESSAGE)
    async def send_negotiation_message(self, out: OutboundNegotiationMessage) -> RemoteAck:
        """POST one negotiation message; idempotent at the peer per (pid, message, content)."""
        n = out.negotiation
        if not n.counterparty_address:
            raise ApplicationError(
                "no counterparty address", type=names.ERR_BAD_REQUEST, non_retryable=True
            )
        try:
            message = build_message(n, out.action, out.callback_address)
            path = message_path(n, out.action)
        except ConnectorError as exc:
            raise ApplicationError(
                str(exc), type=names.ERR_BAD_REQUEST, non_retryable=True
            ) from None
        version = DspVersion(out.dsp_version)
        url = n.counterparty_address.rstrip("/") + path
        headers = {
            "Authorization": self._identity.authorization(n.counterparty_id),
            "Content-Type": "application/json",
        }
        body = encode(message, version)
        if version is DspVersion.V0_8 and body.get("@type") in _V08_NEEDS_CALLBACK:
            # 0.8 schemas require callbackAddress on every request, offer and agreement message
            # (dsp.md §6); 2025-1 allows it only on initiating messages.
            body.setdefault("dspace:callbackAddress", out.callback_address)
        try:
            resp = await self._identity.http.request(
                "POST",
                url,
                json=body,
                headers=headers,
                before_write=self._journal(out.delivery_key),
            )
        except _JournalUnavailableError as exc:
            raise _unsent(exc, url) from None
        except OutboundRefusedError as exc:
            raise ApplicationError(
                f"refused to call {url}: {'; '.join(exc.reasons)}",
                type=names.ERR_OUTBOUND_REFUSED,
                non_retryable=True,
            ) from None
        except (httpx.HTTPError, TimeoutError) as exc:
            raise _unreachable(exc, url) from None
        if resp.status_code < 300:
            return RemoteAck(status=resp.status_code, peer_pid=self._peer_pid(resp, out))
        self._raise_for(
            resp,
            url,
            retry_404=not is_initial(n, out.action),
            not_found_attempts=out.not_found_attempts,
        )

    @staticmethod
    def _peer_pid(resp: httpx.Response, out: OutboundNegotiationMessage) -> str | None:
        if not is_initial(out.negotiation, out.action):
            return None
        try:
            body = resp.json()
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        key = "providerPid" if out.negotiation.role.value == "consumer" else "consumerPid"
        value = body.get(key, body.get(f"dspace:{key}"))
        return value if isinstance(value, str) else None

    @activity.defn(name=names.ACT_SEND_TRANSFER_MESSAGE)
    async def send_transfer_message(self, out: OutboundTransferMessage) -> RemoteAck:
        """POST one transfer process message; the peer deduplicates by content."""
        t = out.transfer
        if not t.counterparty_address:
            raise ApplicationError(
                "no counterparty address", type=names.ERR_BAD_REQUEST, non_retryable=True
            )
        try:
            message = transfer_wire.build_message(t, out.action, out.callback_address)
            path = transfer_wire.message_path(t, out.action)
        except ConnectorError as exc:
            raise ApplicationError(
                str(exc), type=names.ERR_BAD_REQUEST, non_retryable=True
            ) from None
        initial = transfer_wire.is_initial(t, out.action)
        url = t.counterparty_address.rstrip("/") + path
        resp = await self._post(
            url,
            t.counterparty_id,
            encode(message, DspVersion(out.dsp_version)),
            self._journal(out.delivery_key),
        )
        if resp.status_code < 300:
            peer_pid = _pid_in(resp, "providerPid") if initial else None
            return RemoteAck(status=resp.status_code, peer_pid=peer_pid)
        self._raise_for(resp, url, retry_404=not initial, not_found_attempts=out.not_found_attempts)

    async def _post(
        self,
        url: str,
        audience: str,
        body: object,
        before_write: Callable[[], Awaitable[None]] | None,
    ) -> httpx.Response:
        headers = {
            "Authorization": self._identity.authorization(audience),
            "Content-Type": "application/json",
        }
        try:
            return await self._identity.http.request(
                "POST", url, json=body, headers=headers, before_write=before_write
            )
        except _JournalUnavailableError as exc:
            raise _unsent(exc, url) from None
        except OutboundRefusedError as exc:
            raise ApplicationError(
                f"refused to call {url}: {'; '.join(exc.reasons)}",
                type=names.ERR_OUTBOUND_REFUSED,
                non_retryable=True,
            ) from None
        except (httpx.HTTPError, TimeoutError) as exc:
            raise _unreachable(exc, url) from None

    @staticmethod
    def _raise_for(
        resp: httpx.Response, url: str, *, retry_404: bool, not_found_attempts: int
    ) -> NoReturn:
        """The one mapping of a peer's non-2xx answer to the activity's error (STYLE.md rule 5):
        5xx and 429 retryable, 404 retryable while the peer may not know the process yet."""
        rejection = _peer_reasons(resp)
        summary = f"{resp.status_code} from {url}" + (
            f": {'; '.join(rejection.reasons)}" if rejection.reasons else ""
        )
        if resp.status_code >= 500 or resp.status_code == 429:
            raise ApplicationError(
                summary,
                type=names.ERR_PEER_UNREACHABLE,
                next_retry_delay=retry_after(resp.headers.get("Retry-After")),
            )
        if resp.status_code == 404 and retry_404 and activity.info().attempt < not_found_attempts:
            raise ApplicationError(summary, type=names.ERR_PEER_UNREACHABLE)
        raise ApplicationError(summary, rejection, type=names.ERR_PEER_REJECTED, non_retryable=True)


def retry_after(value: str | None) -> timedelta | None:
    """The pause a peer's 503/429 asks for (`Retry-After` in seconds, RFC 9110 §10.2.3), at most
    `MAX_RETRY_AFTER`; None (the retry policy's own back-off) for none, 0, a date or nonsense."""
    if value is None or not value.strip().isdigit() or int(value) == 0:
        return None
    return min(timedelta(seconds=int(value)), MAX_RETRY_AFTER)


def _unsent(exc: BaseException, url: str) -> ApplicationError:
    return ApplicationError(
        f"not sent to {url}: the delivery journal is unavailable ({exc})",
        type=names.ERR_PEER_NOT_CONNECTED,
    )


def _unreachable(exc: BaseException, url: str) -> ApplicationError:
    """A transport failure; one where no connection was made says the peer cannot have it."""
    not_connected = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
    kind = names.ERR_PEER_NOT_CONNECTED if not_connected else names.ERR_PEER_UNREACHABLE
    return ApplicationError(f"{type(exc).__name__} calling {url}: {exc}", type=kind)


def _pid_in(resp: httpx.Response, key: str) -> str | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    value = body.get(key, body.get(f"dspace:{key}"))
    return value if isinstance(value, str) else None
