"""The issuer's state: status indexes are unique, a full list refuses more credentials, and a
request it cannot serve is REJECTED instead of retried (decision 0024)."""

import sqlite3
from pathlib import Path

import pytest

from connector.core.issuer.messages import RequestStatus
from connector.core.issuer.statuslist import MIN_BITS
from connector.http.outbound import GuardedHttp
from connector.identity.did import MemoryDidSource
from connector.issuer.service import open_issuer
from connector.issuer.store import DB_FILE, StatusListFullError
from connector.issuer.writeback import StorageWriter
from tests.issuer.issuer_harness import init_issuer, utc_now

HOLDER = "did:web:127.0.0.1%3A7398"


async def test_the_last_free_index_is_used_and_then_the_list_is_full(tmp_path: Path) -> None:
    data_dir = tmp_path / "issuer"
    init_issuer(data_dir)
    issuer = open_issuer(data_dir)
    free = 4242
    list_id = issuer.config.status_list_id
    with sqlite3.connect(data_dir / DB_FILE) as conn:
        conn.executemany(
            "INSERT INTO credentials (credential_id, holder_did, credential_type,"
            " status_list_id, status_index, issued_at, expires_at, payload)"
            " VALUES (?, ?, 'MembershipCredential', ?, ?, ?, ?, 'x')",
            (
                (f"urn:uuid:filler-{i}", HOLDER, list_id, i, "2026-01-01", "2027-01-01")
                for i in range(MIN_BITS)
                if i != free
            ),
        )
    record = issuer.issue(HOLDER, "MembershipCredential")
    assert record.status_index == free
    with pytest.raises(StatusListFullError):
        issuer.issue(HOLDER, "MembershipCredential")

    request = issuer.store.add_request(
        issuer_pid="urn:uuid:request-1",
        holder_pid="h-1",
        holder_did=HOLDER,
        credential_types=("MembershipCredential",),
        status=RequestStatus.RECEIVED,
        reason=None,
        now=utc_now(),
    )
    # Nothing is contacted: the credential cannot be issued, so there is nothing to deliver.
    writer = StorageWriter(issuer, GuardedHttp(), MemoryDidSource())
    assert await writer.deliver(request) is False
    after = issuer.store.request("urn:uuid:request-1")
    assert after.status is RequestStatus.REJECTED
    assert after.reason is not None
    assert "full" in after.reason
    assert after.attempts == 0
