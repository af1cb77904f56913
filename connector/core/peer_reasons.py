"""What a counterparty is told when we terminate or suspend a process: a code and a short fixed
text from this vocabulary, never our detail (issue 16, finding 5; docs/security.md §2).

The workflows put the detail into the action (`SendTermination.reason`: a refused destination's
address, a missing file's name, the policy's reasons, a peer's error); it stays in our timeline
(`machine.apply_outbound` records it) and our logs. The wire builders
(`connector.core.negotiation.wire`, `connector.core.transfer.wire`) send `for_peer(code)`
instead, so nothing a workflow writes into a reason can reach the peer.
"""

from __future__ import annotations

from typing import Final

__all__ = ["PEER_REASONS", "UNSPECIFIED", "for_peer"]

# code -> the one text a counterparty gets with it. Codes are the ones our workflows and
# `decide` modules use; a code not listed goes out as UNSPECIFIED.
PEER_REASONS: Final[dict[str, str]] = {
    # contract negotiation
    "policy_denied": "the request does not satisfy the contract policy",
    "agreement_mismatch": "the agreement does not match the offer",
    "invalid_offer": "the offer is not valid",
    "deadline_exceeded": "the process did not conclude before its deadline",
    "peer_rejected": "the counterparty rejected a message",
    "terminated_by_operator": "terminated by the participant",
    "hold_expired": "the participant did not decide before the deadline",
    # transfer process
    "flow_failed": "the data flow could not be provided",
    "undeliverable": "a message could not be delivered",
    "negotiation_failed": "no valid agreement",
    "suspended_by_operator": "suspended by the participant",
}
UNSPECIFIED: Final = "unspecified"
_UNSPECIFIED_TEXT: Final = "no reason given"


def for_peer(code: str | None) -> tuple[str, list[str]]:
    """(code, reason) to send for our `code`: its vocabulary text, or UNSPECIFIED."""
    if code is not None and code in PEER_REASONS:
        return code, [PEER_REASONS[code]]
    return UNSPECIFIED, [_UNSPECIFIED_TEXT]
