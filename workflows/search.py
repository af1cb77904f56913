"""Search attribute keys of our processes (how an operator finds one in the Temporal UI), and a
negotiation's attributes, shared by its workflow (upserts on every projected state) and the edge
(set at start, so a negotiation is findable before its first projection by the workflow)."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair

from connector.core import search_attributes
from connector.core.negotiation.record import NegotiationRecord

STATE = SearchAttributeKey.for_keyword(search_attributes.NEGOTIATION_STATE)
COUNTERPARTY = SearchAttributeKey.for_keyword(search_attributes.COUNTERPARTY)
ASSET = SearchAttributeKey.for_keyword(search_attributes.ASSET)
ROLE = SearchAttributeKey.for_keyword(search_attributes.ROLE)
AGREEMENT = SearchAttributeKey.for_keyword(search_attributes.AGREEMENT)
AWAITING = SearchAttributeKey.for_keyword(search_attributes.AWAITING_OPERATOR)


def negotiation_attributes(record: NegotiationRecord) -> list[SearchAttributePair[str]]:
    n = record.negotiation
    pairs = [
        SearchAttributePair(STATE, n.state.value),
        SearchAttributePair(COUNTERPARTY, n.counterparty_id),
        SearchAttributePair(ROLE, n.role.value),
        # What a person must decide ("" when nothing): the operator queue in the Temporal UI.
        SearchAttributePair(AWAITING, record.awaiting.kind.value if record.awaiting else ""),
    ]
    if record.asset_id:
        pairs.append(SearchAttributePair(ASSET, record.asset_id))
    if n.agreement and isinstance(n.agreement.get("@id"), str):
        pairs.append(SearchAttributePair(AGREEMENT, str(n.agreement["@id"])))
    return pairs
