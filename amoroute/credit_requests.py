"""What the crediting services' reversal and withdrawal calls do alike.

ReverseSale / ReverseConversion and WithdrawSale / WithdrawConversion each check the
request's lead and reason, apply it to the service's ledger store, and answer the outcome
in the contract's terms; each service then wraps the stored row in its own message.
"""

from typing import Any, Protocol, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from amoroute import validation
from amoroute.ledger import Reversed
from amoroute.ledger_store import LedgerStore
from amoroute.timeutil import to_datetime
from amoroute.v1 import deal_pb2

MAX_REASON = 500
DEFAULT_REVERSAL_REASON = "deal left the won status"

OUTCOMES = {
    Reversed.REVERSED: deal_pb2.REVERSAL_OUTCOME_REVERSED,
    Reversed.ALREADY_REVERSED: deal_pb2.REVERSAL_OUTCOME_ALREADY_REVERSED,
    Reversed.STALE: deal_pb2.REVERSAL_OUTCOME_STALE,
    Reversed.NOT_CREDITED: deal_pb2.REVERSAL_OUTCOME_NOT_CREDITED,
}

RowT = TypeVar("RowT")


class LeadChange(Protocol):
    """The fields a withdrawal request carries (WithdrawSaleRequest, ...)."""

    @property
    def lead_id(self) -> int: ...

    @property
    def account_id(self) -> int: ...

    @property
    def reason(self) -> str: ...


class Reversal(LeadChange, Protocol):
    """The fields a reversal request carries (ReverseSaleRequest, ...)."""

    @property
    def reversed_at(self) -> Timestamp: ...


def _check(request: LeadChange) -> None:
    validation.positive("lead_id", request.lead_id)
    validation.not_negative("account_id", request.account_id)
    validation.text("reason", request.reason, max_len=MAX_REASON)


def reverse(
    store: LedgerStore[Any, Any], request: Reversal
) -> tuple[Any | None, "deal_pb2.ReversalOutcome"]:
    """The lead's credit reversed (or the reversal remembered for a late win): the stored
    row, if any, and the outcome. InvalidArgument names a bad field."""
    _check(request)
    row, outcome = store.reverse(
        account_id=request.account_id,
        lead_id=request.lead_id,
        reversed_at=to_datetime("reversed_at", request.reversed_at),
        reason=request.reason or DEFAULT_REVERSAL_REASON,
    )
    return row, OUTCOMES[outcome]


def withdraw(
    store: LedgerStore[Any, Any], request: LeadChange
) -> tuple[Any | None, "deal_pb2.ReversalOutcome"]:
    """The lead re-attributed to nobody: its live credit reversed "re-attributed" (nothing
    remembered when it has none). The stored row, if any, and the outcome."""
    _check(request)
    row, outcome = store.withdraw(
        account_id=request.account_id, lead_id=request.lead_id, reason=request.reason
    )
    return row, OUTCOMES[outcome]
