"""Data flows: what the signaling API starts, suspends, resumes, terminates and completes.

A pull flow is a token-guarded public endpoint over a source; a push flow is a task streaming
the source into the consumer's sink. Flow rows live in Postgres; running pushes and open pulls
live in this process. Stopping a flow revokes its tokens first, then ends what runs: on suspend
or terminate an open pull stops at its next chunk and a push task is cancelled (the sink sees a
short body); on complete, pulls already under way finish (their reader was admitted while the
transfer ran), while every new request is refused.

A finite pull (files and S3 objects by default, an HTTP source with `finite: true`) completes
on the first whole read - a GET with no range, sub-path or forwarded query whose every byte was
handed to the server - unless its source says `completeOnFirstRead: false`; then it stays
STARTED (the consumer pulls as often as it likes) until either side completes or terminates it.

A push is considered interrupted (FAILED) when its row says STARTED but nothing has reported
progress for `stale_flow_seconds` and no task runs here (e.g. after a kill -9 and restart); a
new start signal then restarts it from the beginning, counting the attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import quote

import asyncpg

from connector.core.errors import BadRequestError, ConflictError, ForbiddenError, NotFoundError
from connector.core.transfer.wire import ENDPOINT_TYPE_HTTP
from connector.data_address import completes_on_first_read
from connector.http.errors import outage
from connector.http.outbound import GuardedHttp
from connector.runtime.logging import get_logger
from connector.runtime.metrics import Metrics
from connector.settings import DataPlaneSettings
from connector.stores import dataplane as store
from dataplane.io import SourceStream, open_sink, open_source, vet_source
from dataplane.proxy import ProxyOptions, PullRequest, allowed_methods
from dataplane.signaling import DataFlowResponseMessage, DataFlowStartMessage, DataFlowStatusMessage
from dataplane.tokens import IssuedTokens, TokenService

__all__ = ["FlowManager", "MethodNotAllowedError"]

log = get_logger(__name__)

_STOP_TARGET: Final = {
    "suspend": ("SUSPENDED", ("STARTED", "SUSPENDED")),
    "terminate": ("TERMINATED", ("STARTED", "SUSPENDED", "FAILED", "TERMINATED")),
    "complete": ("COMPLETED", ("STARTED", "COMPLETED")),
}
_PROGRESS_EVERY: Final = 1.0
# A delivered pull whose COMPLETED record met a database outage is written again, pausing this
# long at first and doubling up to the maximum.
_COMPLETION_RETRY_SECONDS: Final = 0.25
_COMPLETION_RETRY_MAX_SECONDS: Final = 10.0


def _now() -> datetime:
    return datetime.now(UTC)


class MethodNotAllowedError(Exception):
    """The consumer's method is not one this flow's source accepts (405 with `Allow`)."""

    def __init__(self, method: str, allow: tuple[str, ...]) -> None:
        super().__init__(f"method {method} is not allowed for this transfer")
        self.allow = allow


class FlowManager:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: DataPlaneSettings,
        http: GuardedHttp,
        tokens: TokenService,
        metrics: Metrics | None = None,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._http = http
        self._tokens = tokens
        self._metrics = metrics
        self._pushes: dict[str, asyncio.Task[None]] = {}
        # Bumped whenever a flow stops: open pulls compare it at every chunk.
        self._generation: dict[str, int] = {}
        self._background: set[asyncio.Task[None]] = set()

    # --- signaling ----------------------------------------------------------------------

    def _address(self, flow_id: str, issued: IssuedTokens) -> dict[str, Any]:
        base = self._settings.base_url()
        props = [
            ("authorization", issued.access_token),
            ("authType", "bearer"),
            ("refreshToken", issued.refresh_token),
            ("refreshEndpoint", f"{base}/public/token"),
            ("expiresIn", str(issued.expires_in(_now()))),
        ]
        return {
            "@type": "DataAddress",
            "endpointType": ENDPOINT_TYPE_HTTP,
            "endpoint": f"{base}/public/{quote(flow_id, safe=':')}",
            "endpointProperties": [
                {"@type": "EndpointProperty", "name": name, "value": value} for name, value in props
            ],
        }

    async def start(self, msg: DataFlowStartMessage) -> DataFlowResponseMessage:
        push = msg.flow_type == "PUSH"
        if push and msg.destination_data_address is None:
            raise BadRequestError("a push flow needs a destination")
        vet_source(msg.source_data_address, self._settings, self._http.config)
        if push:
            open_sink(msg.destination_data_address or {}, self._settings, self._http)  # vet it
        flow, created = await store.create_flow(
            self._pool,
            flow_id=msg.process_id,
            agreement_id=msg.agreement_id,
            consumer_id=msg.participant_id,
            transfer_type=msg.transfer_type,
            push=push,
            finite=msg.finite,
            source=msg.source_data_address,
            destination=msg.destination_data_address,
        )
        if flow.state in ("COMPLETED", "TERMINATED"):
            return DataFlowResponseMessage(
                process_id=flow.flow_id, state=flow.state, attempt=flow.attempt
            )
        if push:
            if not created and (flow.state == "FAILED" or self._interrupted(flow)):
                restarted = await store.restart(self._pool, flow.flow_id)
                flow = restarted or flow
            if flow.state == "STARTED" and flow.flow_id not in self._pushes:
                self._spawn_push(flow)
            return DataFlowResponseMessage(
                process_id=flow.flow_id, state="STARTED", attempt=flow.attempt
            )
        if flow.state != "STARTED":
            raise ConflictError(f"flow {flow.flow_id} is {flow.state}")
        issued = await self._tokens.issue(flow.flow_id)
        return DataFlowResponseMessage(
            process_id=flow.flow_id,
            state="STARTED",
            data_address=self._address(flow.flow_id, issued),
            attempt=flow.attempt,
        )

    async def resume(self, flow_id: str) -> DataFlowResponseMessage:
        flow = await self._get(flow_id)
        if flow.state not in ("SUSPENDED", "STARTED"):
            raise ConflictError(f"flow {flow_id} is {flow.state}")
        if flow.push:
            await self._stop_push(flow_id)
            restarted = await store.restart(self._pool, flow_id)
            if restarted is not None:
                self._spawn_push(restarted)
            return DataFlowResponseMessage(process_id=flow_id, state="STARTED")
        await store.set_state(self._pool, flow_id, "STARTED", only_from=("SUSPENDED", "STARTED"))
        # Never resurrect: the old tokens are gone; a resumed flow gets new ones.
        issued = await self._tokens.issue(flow_id)
        return DataFlowResponseMessage(
            process_id=flow_id, state="STARTED", data_address=self._address(flow_id, issued)
        )

    async def stop(self, flow_id: str, how: str, reason: str | None) -> None:
        if how not in _STOP_TARGET:
            raise NotFoundError(f"unknown operation {how!r}")
        target, only_from = _STOP_TARGET[how]
        flow = await self._get(flow_id)
        if how != "complete":
            # Open pulls stop at their next chunk; a completed flow lets them finish.
            self._generation[flow_id] = self._generation.get(flow_id, 0) + 1
        # Tokens die first: nothing issued for this flow is accepted from here on.
        await self._tokens.revoke(flow_id)
        await self._stop_push(flow_id)
        if flow.state != target and not await store.set_state(
            self._pool, flow_id, target, error=reason, only_from=only_from
        ):
            current = await self._get(flow_id)
            if current.state != target and current.state not in ("COMPLETED", "TERMINATED"):
                raise ConflictError(f"flow {flow_id} is {current.state}; cannot {how}")

    async def status(self, flow_id: str) -> DataFlowStatusMessage:
        flow = await self._get(flow_id)
        state, error = flow.state, flow.error
        if self._interrupted(flow):
            state, error = "FAILED", "push interrupted (no progress; data plane restarted?)"
        return DataFlowStatusMessage(
            process_id=flow_id,
            state=state,
            bytes_moved=flow.bytes_moved,
            attempt=flow.attempt,
            error=error,
        )

    async def close(self) -> None:
        tasks = list(self._pushes.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- pull -----------------------------------------------------------------------------

    async def open_pull(
        self,
        flow_id: str,
        authorization: str | None,
        range_header: str | None,
        request: PullRequest | None = None,
    ) -> tuple[SourceStream, AsyncIterator[bytes]]:
        """Admit a pull (token bound to this flow, flow STARTED, a method its source accepts)
        and open its source. A HEAD opens and closes it: the body yields nothing.

        Raises:
            UnauthorizedError, ForbiddenError: token missing / refused.
            MethodNotAllowedError: not GET or HEAD, and the source has no `proxyMethod`.
            NotFoundError, BadRequestError, UnavailableError: see `open_source`.
        """
        request = request or PullRequest()
        bound = await self._tokens.resolve(authorization)
        if bound != flow_id:
            raise ForbiddenError("the token is not valid for this transfer")
        flow = await self._get(flow_id)
        if flow.state != "STARTED" or flow.push:
            raise ForbiddenError(f"transfer {flow_id} is not open for pulling")
        allow = allowed_methods(ProxyOptions.of(flow.source))
        if request.method not in allow:
            raise MethodNotAllowedError(request.method, allow)
        source = await open_source(
            flow.source, self._settings, self._http, range_header=range_header, request=request
        )
        if request.method == "HEAD":
            await source.aclose()
            return source, _nothing()
        generation = self._generation.get(flow_id, 0)
        completes = (
            request.plain
            and source.byte_range is None
            and flow.finite
            and completes_on_first_read(flow.source)
        )
        return source, self._pull_body(flow_id, source, generation, completes)

    async def _pull_body(
        self, flow_id: str, source: SourceStream, generation: int, completes: bool
    ) -> AsyncIterator[bytes]:
        sent = 0
        try:
            async for chunk in source.chunks:
                if self._generation.get(flow_id, 0) != generation:
                    # Suspended or terminated mid-pull: cut the response short.
                    raise ForbiddenError("transfer stopped")
                yield chunk
                sent += len(chunk)
        finally:
            if self._metrics is not None and sent:
                self._metrics.transfer_bytes.labels("pull").inc(sent)
            delivered = source.size is not None and sent == source.size
            if completes and delivered and self._generation.get(flow_id, 0) == generation:
                # Every byte was handed to the server: the flow is COMPLETED. In a task, since
                # the response may be cancelled right now (the client hung up after the last
                # byte).
                task = asyncio.create_task(self._pull_completed(flow_id, sent))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            await source.aclose()

    async def _pull_completed(self, flow_id: str, sent: int) -> None:
        """Record the delivered pull; written again while the database is unreachable, since the
        bytes are gone and only this record tells the transfer it is complete."""
        pause = _COMPLETION_RETRY_SECONDS
        while True:
            try:
                await store.progress(self._pool, flow_id, sent)
                await store.set_state(self._pool, flow_id, "COMPLETED", only_from=("STARTED",))
                return
            except Exception as exc:
                if outage(exc) is None:
                    raise
                log.warning("pull delivered, completion not recorded yet", flow_id=flow_id)
                await asyncio.sleep(pause)
                pause = min(pause * 2, _COMPLETION_RETRY_MAX_SECONDS)

    # --- push -----------------------------------------------------------------------------

    def _interrupted(self, flow: store.Flow) -> bool:
        if not flow.push or flow.state != "STARTED" or flow.flow_id in self._pushes:
            return False
        stale = timedelta(seconds=self._settings.stale_flow_seconds)
        return flow.heartbeat_at is None or _now() - flow.heartbeat_at > stale

    def _spawn_push(self, flow: store.Flow) -> None:
        task = asyncio.create_task(self._push(flow), name=f"push {flow.flow_id}")
        self._pushes[flow.flow_id] = task
        flow_id = flow.flow_id
        task.add_done_callback(lambda t: self._forget(flow_id, t))

    def _forget(self, flow_id: str, task: asyncio.Task[None]) -> None:
        if self._pushes.get(flow_id) is task:
            del self._pushes[flow_id]

    async def _stop_push(self, flow_id: str) -> None:
        task = self._pushes.pop(flow_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def _push(self, flow: store.Flow) -> None:
        sent = 0
        last = time.monotonic()

        async def counted(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
            nonlocal sent, last
            async for chunk in chunks:
                yield chunk
                sent += len(chunk)
                if self._metrics is not None:
                    self._metrics.transfer_bytes.labels("push").inc(len(chunk))
                if time.monotonic() - last >= _PROGRESS_EVERY:
                    last = time.monotonic()
                    await store.progress(self._pool, flow.flow_id, sent)

        try:
            source = await open_source(flow.source, self._settings, self._http)
            try:
                sink = open_sink(flow.destination or {}, self._settings, self._http)
                await sink.write(counted(source.chunks), source.size)
            finally:
                await source.aclose()
            await store.progress(self._pool, flow.flow_id, sent)
            await store.set_state(self._pool, flow.flow_id, "COMPLETED", only_from=("STARTED",))
            log.info("push completed", flow_id=flow.flow_id, bytes=sent, attempt=flow.attempt)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reasons = getattr(exc, "reasons", None)
            error = "; ".join(reasons) if reasons else f"{type(exc).__name__}: {exc}"
            log.warning("push failed", flow_id=flow.flow_id, error=error, attempt=flow.attempt)
            with contextlib.suppress(Exception):
                await store.set_state(
                    self._pool, flow.flow_id, "FAILED", error=error, only_from=("STARTED",)
                )

    async def _get(self, flow_id: str) -> store.Flow:
        flow = await store.get_flow(self._pool, flow_id)
        if flow is None:
            raise NotFoundError(f"flow {flow_id} is unknown")
        return flow


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator
