"""The API's door to Temporal for transfer processes: inbound DSP messages and operator commands
become workflow updates; answers become projections before the HTTP answer leaves
(read-your-writes, as for negotiations in `api.negotiation.gateway`). Starting and the mapping of
Temporal errors are shared with negotiations (`api.process_gateway`).
"""

from __future__ import annotations

import asyncpg
from temporalio.client import Client

from api.admission import Admission
from api.process_gateway import ProcessGateway, ProcessKind, content_id
from connector.core.ids import transfer_workflow_id
from connector.core.transfer.record import TransferRecord
from connector.core.transfer.states import Role
from connector.encryption.keyring import DataKeys
from connector.stores import transfers
from workflows import names
from workflows.contracts import InboundTransferMessage, TransferCommand, TransferStart


def update_id(own_pid: str, msg: InboundTransferMessage) -> str:
    """Stable per message content: a counterparty's retry is recognised (see `deliver`)."""
    return content_id(f"transfer|{own_pid}", msg)


def _ended_in(record: TransferRecord) -> str | None:
    return record.transfer.state.value if record.transfer.is_terminal else None


def transfer_kind(keys: DataKeys) -> ProcessKind[TransferRecord]:
    """Transfers as the gateway sees them; records are stored with the DataAddress's secrets
    sealed under `keys` (connector.stores.transfers)."""

    async def store(conn: asyncpg.Connection, record: TransferRecord) -> transfers.UpsertResult:
        return await transfers.upsert_view(conn, record, keys)

    return ProcessKind(
        name="transfer",
        workflow=names.WF_TRANSFER,
        receive_update=names.UPD_TRANSFER_RECEIVE,
        record_type=TransferRecord,
        load=transfers.get,
        store=store,
        ended_in=_ended_in,
    )


class TransferGateway(ProcessGateway[TransferRecord]):
    def __init__(
        self,
        client: Client,
        pool: asyncpg.Pool,
        task_queue: str,
        keys: DataKeys,
        admission: Admission | None = None,
    ) -> None:
        super().__init__(client, pool, task_queue, transfer_kind(keys), admission)

    async def deliver(
        self, role: Role, own_pid: str, msg: InboundTransferMessage, seen_version: int
    ) -> TransferRecord:
        """Apply a counterparty's message; a retry of the one that made the current state is
        answered with it, anything else judged (`ProcessGateway._deliver_message`)."""
        handle = self._client.get_workflow_handle(transfer_workflow_id(role, own_pid))
        return await self._deliver_message(
            handle, own_pid, msg, update=update_id(own_pid, msg), seen_version=seen_version
        )

    async def start_with_message(
        self, start: TransferStart, msg: InboundTransferMessage
    ) -> TransferRecord:
        """The consumer's TransferRequestMessage creates our (provider) side."""
        own_pid = start.record.own_pid
        return await self._start_with_message(
            start,
            msg,
            workflow_id=transfer_workflow_id(start.record.transfer.role, own_pid),
            own_pid=own_pid,
            update=update_id(own_pid, msg),
        )

    async def start(self, start: TransferStart) -> TransferRecord:
        """We initiate (consumer request): start the workflow; joins one already running."""
        own_pid = start.record.own_pid
        return await self._start(
            start,
            workflow_id=transfer_workflow_id(start.record.transfer.role, own_pid),
            own_pid=own_pid,
            initial=start.record,
        )

    async def command(self, role: Role, own_pid: str, cmd: TransferCommand) -> TransferRecord:
        handle = self._client.get_workflow_handle(transfer_workflow_id(role, own_pid))
        record: TransferRecord = await self._call(
            own_pid,
            lambda: handle.execute_update(
                names.UPD_TRANSFER_COMMAND, cmd, result_type=TransferRecord
            ),
        )
        return record
