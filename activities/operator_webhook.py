"""The operator webhook (decision 0013): POST a signed notice that a process waits for a person.

The URL and the HMAC secret come from settings here, never from the activity's input, so the
secret is in no workflow history. The call goes through the guarded outbound client (the SSRF
rules of every outbound call). Errors are translated once: a refused address and a 4xx answer
(except 408 and 429) are final; transport failures and 5xx are retried by Temporal.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from connector.core.webhook_signature import HEADER, ID_HEADER, signature_header
from connector.http.outbound import GuardedHttp, OutboundRefusedError
from connector.settings import OperatorWebhookSettings
from workflows import names
from workflows.contracts import OperatorNotice

_RETRYABLE_4XX = frozenset({408, 429})


def notice_body(notice: OperatorNotice) -> bytes:
    """The JSON body: camelCase, compact, keys in a fixed order (what the signature covers)."""
    body: dict[str, Any] = {
        "id": notice.id,
        "process": notice.process,
        "processId": notice.process_id,
        "role": notice.role,
        "state": notice.state,
        "awaiting": notice.awaiting,
        "since": notice.since.isoformat(),
        "deadline": notice.deadline.isoformat() if notice.deadline else None,
        "counterPartyId": notice.counterparty_id,
        "commands": list(notice.commands),
    }
    return json.dumps(body, separators=(",", ":")).encode()


class OperatorWebhookActivities:
    def __init__(
        self,
        settings: OperatorWebhookSettings,
        http: GuardedHttp,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._http = http
        self._clock = clock

    @activity.defn(name=names.ACT_NOTIFY_OPERATOR)
    async def notify(self, notice: OperatorNotice) -> bool:
        """POST `notice` signed with a fresh timestamp; False when no webhook is configured.
        Idempotency key: the notice's id (header and body), on which the receiver deduplicates."""
        url, secret = self._settings.url, self._settings.secret
        if url is None or secret is None:
            return False
        body = notice_body(notice)
        headers = {
            "Content-Type": "application/json",
            HEADER: signature_header(secret.get_secret_value().encode(), int(self._clock()), body),
            ID_HEADER: notice.id,
        }
        try:
            async with asyncio.timeout(self._settings.timeout_seconds):
                resp = await self._http.request(
                    "POST",
                    url,
                    content=body,
                    headers=headers,
                    follow_redirects=False,
                    max_bytes=64 * 1024,
                )
        except OutboundRefusedError as exc:
            # Configuration, not chance: retrying cannot make the address acceptable.
            raise ApplicationError(
                f"refused to call the operator webhook: {'; '.join(exc.reasons)}",
                type=names.ERR_OUTBOUND_REFUSED,
                non_retryable=True,
            ) from None
        except (httpx.HTTPError, TimeoutError) as exc:
            raise ApplicationError(
                f"operator webhook unreachable: {type(exc).__name__}",
                type=names.ERR_PEER_UNREACHABLE,
            ) from None
        status = resp.status_code
        if status < 300:
            return True
        if status >= 500 or status in _RETRYABLE_4XX:
            raise ApplicationError(
                f"operator webhook answered {status}", type=names.ERR_PEER_UNREACHABLE
            )
        # The receiver refuses this notice (bad signature, unknown route): it will again.
        raise ApplicationError(
            f"operator webhook refused the notice ({status})",
            type=names.ERR_PEER_REJECTED,
            non_retryable=True,
        )
