"""The pids a DSP message names, echoed by the error of a failed request (decision 0002)."""

from __future__ import annotations

from api.body import named_pids


def test_named_pids_reads_both_versions_and_drops_what_is_not_a_pid() -> None:
    assert named_pids({"consumerPid": "urn:uuid:c", "providerPid": "urn:uuid:p"}) == {
        "consumerPid": "urn:uuid:c",
        "providerPid": "urn:uuid:p",
    }
    assert named_pids({"dspace:consumerPid": "urn:uuid:c"}) == {"consumerPid": "urn:uuid:c"}
    assert named_pids({"consumerPid": "", "providerPid": 7}) == {}
    assert named_pids(["consumerPid"]) == {}
