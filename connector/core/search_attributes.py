"""Custom Temporal search attributes (all Keyword): how an operator finds a process in the UI.

Values are stored unencrypted by Temporal: ids and states only, never tokens or personal data.
"""

from __future__ import annotations

from typing import Final

NEGOTIATION_STATE: Final = "DspNegotiationState"
TRANSFER_STATE: Final = "DspTransferState"
COUNTERPARTY: Final = "DspCounterParty"
ASSET: Final = "DspAssetId"
AGREEMENT: Final = "DspAgreementId"
ROLE: Final = "DspRole"
# What a process waits for a person to decide ("" when it waits for no one): the operator's
# queue in the Temporal UI (`DspAwaitingOperator != ""`).
AWAITING_OPERATOR: Final = "DspAwaitingOperator"

KEYWORDS: Final[tuple[str, ...]] = (
    NEGOTIATION_STATE,
    TRANSFER_STATE,
    COUNTERPARTY,
    ASSET,
    AGREEMENT,
    ROLE,
    AWAITING_OPERATOR,
)
