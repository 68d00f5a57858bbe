"""The crediting rule, case by case: what a win or a reversal does to what is known of a lead."""

import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from amoroute import ledger
from amoroute.ledger import (
    AlreadyRemembered,
    AlreadyReversed,
    Duplicate,
    Insert,
    NothingToWithdraw,
    Reattribute,
    Recorded,
    Reinstate,
    Remember,
    Reverse,
    Reversed,
    Stale,
    Supersede,
    Tombstone,
)

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EARLIER, LATER = T - timedelta(minutes=5), T + timedelta(minutes=5)
REASON = "status 142 -> 143"


@dataclass(frozen=True)
class Credit:
    """A stored credit as the rule sees it."""

    won_at: datetime | None
    reversed_at: datetime | None = None
    reversal_reason: str | None = None


CREDITED = Credit(won_at=T)
REVERSED = Credit(won_at=EARLIER, reversed_at=T, reversal_reason=REASON)
# Re-attributed to nobody (the rules credited nobody) at NOW.
NOW = T + timedelta(days=30)
WITHDRAWN = Credit(won_at=T, reversed_at=NOW, reversal_reason="re-attributed: no pattern matched")
TOMBSTONE = Tombstone(reversed_at=T, reason="earlier reason")


@pytest.mark.parametrize(
    ("lead", "won_at", "decision", "outcome"),
    [
        pytest.param(None, T, Insert(), Recorded.NEW, id="first credit"),
        pytest.param(None, None, Insert(), Recorded.NEW, id="first credit, win time unknown"),
        pytest.param(CREDITED, T, Duplicate(), Recorded.DUPLICATE, id="same win again"),
        pytest.param(CREDITED, EARLIER, Duplicate(), Recorded.DUPLICATE, id="older win"),
        # A newer win (an edited amount, another beneficiary) changes nothing: the
        # first credit stands.
        pytest.param(CREDITED, LATER, Duplicate(), Recorded.DUPLICATE, id="newer win"),
        pytest.param(CREDITED, None, Duplicate(), Recorded.DUPLICATE, id="win time unknown"),
        pytest.param(
            TOMBSTONE, EARLIER, Supersede(TOMBSTONE), Recorded.SUPERSEDED,
            id="win older than a reversal that came first: stored reversed",
        ),
        pytest.param(
            TOMBSTONE, T, Supersede(TOMBSTONE), Recorded.SUPERSEDED,
            id="win as old as a reversal that came first: the reversal wins the tie",
        ),
        pytest.param(
            TOMBSTONE, None, Supersede(TOMBSTONE), Recorded.SUPERSEDED,
            id="win of unknown time after a reversal came first",
        ),
        pytest.param(
            TOMBSTONE, LATER, Insert(), Recorded.NEW,
            id="win newer than a reversal that came first: credited",
        ),
        pytest.param(
            REVERSED, LATER, Reinstate(LATER), Recorded.REINSTATED,
            id="won again after the reversal: reinstated",
        ),
        pytest.param(
            REVERSED, T, Duplicate(), Recorded.DUPLICATE, id="win as old as the reversal"
        ),
        pytest.param(
            REVERSED, EARLIER, Duplicate(), Recorded.DUPLICATE, id="old win replayed after reversal"
        ),
        pytest.param(
            REVERSED, None, Duplicate(), Recorded.DUPLICATE, id="win of unknown time after reversal"
        ),
    ],
)  # fmt: skip
def test_what_a_win_does(
    lead: ledger.Lead, won_at: datetime | None, decision: ledger.CreditDecision, outcome: Recorded
) -> None:
    assert ledger.credit(lead, won_at) == decision
    assert decision.outcome is outcome


@pytest.mark.parametrize(
    ("lead", "reversed_at", "decision", "outcome"),
    [
        pytest.param(
            None, T, Remember(Tombstone(T, REASON)), Reversed.NOT_CREDITED,
            id="reversal before any credit: remembered",
        ),
        pytest.param(
            TOMBSTONE, LATER, Remember(Tombstone(LATER, REASON)), Reversed.NOT_CREDITED,
            id="newer reversal before any credit: replaces the known one",
        ),
        pytest.param(
            TOMBSTONE, T, AlreadyRemembered(), Reversed.NOT_CREDITED,
            id="reversal as old as the known one",
        ),
        pytest.param(
            TOMBSTONE, EARLIER, AlreadyRemembered(), Reversed.NOT_CREDITED,
            id="older reversal than the known one",
        ),
        pytest.param(
            CREDITED, LATER, Reverse(LATER, REASON), Reversed.REVERSED,
            id="reversal after the credit",
        ),
        pytest.param(
            CREDITED, T, Reverse(T, REASON), Reversed.REVERSED,
            id="reversal as old as the win: the reversal wins the tie",
        ),
        pytest.param(
            Credit(won_at=None), EARLIER, Reverse(EARLIER, REASON), Reversed.REVERSED,
            id="reversal of a credit whose win time is unknown",
        ),
        pytest.param(
            CREDITED, EARLIER, Stale(), Reversed.STALE, id="reversal older than the win: ignored"
        ),
        pytest.param(
            REVERSED, LATER, AlreadyReversed(), Reversed.ALREADY_REVERSED,
            id="newer reversal of a reversed credit: the first reversal stands",
        ),
        pytest.param(
            REVERSED, EARLIER, AlreadyReversed(), Reversed.ALREADY_REVERSED,
            id="older reversal of a reversed credit",
        ),
        pytest.param(
            WITHDRAWN, LATER, Reverse(LATER, REASON), Reversed.REVERSED,
            id="the deal of a withdrawn credit leaves won: its reversal replaces the withdrawal",
        ),
        pytest.param(
            WITHDRAWN, EARLIER, Stale(), Reversed.STALE,
            id="reversal of a withdrawn credit older than its win: ignored",
        ),
    ],
)  # fmt: skip
def test_what_a_reversal_does(
    lead: ledger.Lead,
    reversed_at: datetime,
    decision: ledger.ReversalDecision,
    outcome: Reversed,
) -> None:
    assert ledger.reverse(lead, reversed_at, REASON) == decision
    assert decision.outcome is outcome


@pytest.mark.parametrize(
    ("lead", "won_at", "other", "decision", "outcome"),
    [
        pytest.param(
            CREDITED, T, True, Reattribute(NOW, None), Recorded.REATTRIBUTED,
            id="credited to another: moved, the new credit counts",
        ),
        pytest.param(
            Credit(won_at=None), None, True, Reattribute(NOW, None), Recorded.REATTRIBUTED,
            id="credited to another, win time unknown: moved",
        ),
        pytest.param(
            REVERSED, EARLIER, True, Reattribute(NOW, Tombstone(T, REASON)), Recorded.REATTRIBUTED,
            id="credited to another, the deal left won: moved, the new credit reversed as the old",
        ),
        pytest.param(
            REVERSED, None, True, Reattribute(NOW, Tombstone(T, REASON)), Recorded.REATTRIBUTED,
            id="credited to another and reversed, win time unknown: the reversal carried over",
        ),
        pytest.param(
            REVERSED, LATER, True, Reattribute(NOW, None), Recorded.REATTRIBUTED,
            id="credited to another and reversed, won again since: the new credit counts",
        ),
        pytest.param(
            WITHDRAWN, T, True, Reattribute(NOW, None), Recorded.REATTRIBUTED,
            id="withdrawn from another by an earlier re-attribution: moved, counts",
        ),
        pytest.param(
            CREDITED, T, False, Duplicate(), Recorded.DUPLICATE,
            id="credited to the same beneficiary: a second apply finds nothing to do",
        ),
        pytest.param(
            REVERSED, EARLIER, False, Duplicate(), Recorded.DUPLICATE,
            id="same beneficiary, the deal left won: stays reversed",
        ),
        pytest.param(
            WITHDRAWN, T, False, Reinstate(T), Recorded.REINSTATED,
            id="withdrawn from the same beneficiary: the rules changed back, credited again",
        ),
        pytest.param(
            WITHDRAWN, None, False, Reinstate(T), Recorded.REINSTATED,
            id="withdrawn, win time unknown: credited again with its own win time",
        ),
        pytest.param(None, T, False, Insert(), Recorded.NEW, id="credited to nobody: credited"),
        pytest.param(
            TOMBSTONE, EARLIER, False, Supersede(TOMBSTONE), Recorded.SUPERSEDED,
            id="nobody, a reversal known: stored reversed as a normal win would be",
        ),
    ],
)  # fmt: skip
def test_what_a_reattributed_win_does(
    lead: ledger.Lead,
    won_at: datetime | None,
    other: bool,
    decision: ledger.CreditDecision,
    outcome: Recorded,
) -> None:
    assert ledger.reattribute(lead, won_at, NOW, other_beneficiary=other) == decision
    assert decision.outcome is outcome


@pytest.mark.parametrize(
    ("lead", "why", "decision", "outcome"),
    [
        pytest.param(
            CREDITED, "no pattern matched", Reverse(NOW, "re-attributed: no pattern matched"),
            Reversed.REVERSED, id="a credit: reversed, re-attributed, whatever its win time",
        ),
        pytest.param(
            CREDITED, "re-attributed: no pattern", Reverse(NOW, "re-attributed: no pattern"),
            Reversed.REVERSED, id="a reason that says re-attributed already is kept",
        ),
        pytest.param(
            CREDITED, "", Reverse(NOW, "re-attributed"), Reversed.REVERSED, id="no reason given",
        ),
        pytest.param(
            REVERSED, "x", AlreadyReversed(), Reversed.ALREADY_REVERSED,
            id="reversed by its deal: the deal's reason stands",
        ),
        pytest.param(
            WITHDRAWN, "x", AlreadyReversed(), Reversed.ALREADY_REVERSED,
            id="withdrawn already: a second apply finds nothing to do",
        ),
        pytest.param(
            None, "x", NothingToWithdraw(), Reversed.NOT_CREDITED,
            id="no credit: nothing, and no tombstone to supersede a later win",
        ),
        pytest.param(
            TOMBSTONE, "x", NothingToWithdraw(), Reversed.NOT_CREDITED,
            id="only a known reversal: left as it is",
        ),
    ],
)  # fmt: skip
def test_what_a_withdrawal_does(
    lead: ledger.Lead, why: str, decision: ledger.WithdrawalDecision, outcome: Reversed
) -> None:
    assert ledger.withdraw(lead, NOW, why) == decision
    assert decision.outcome is outcome


def test_a_lead_reattributed_away_and_back() -> None:
    """Kenesary's credit goes to nobody, then rules change back: Kenesary again;
    then to Aidana: Kenesary's kept, reversed, and Aidana's counts."""
    decision = ledger.withdraw(CREDITED, NOW, "unknown")
    assert isinstance(decision, Reverse)
    withdrawn = Credit(won_at=T, reversed_at=NOW, reversal_reason=decision.reason)
    assert ledger.reattribute(withdrawn, T, NOW, other_beneficiary=False) == Reinstate(T)
    assert ledger.reattribute(CREDITED, T, NOW, other_beneficiary=True) == Reattribute(NOW, None)
    # A normal win replayed later is a duplicate of whatever credit is live.
    assert ledger.credit(withdrawn, T) == Duplicate()
    # The deal leaves won while withdrawn: rules changing back credit nothing.
    lost = Credit(won_at=T, reversed_at=LATER, reversal_reason=REASON)
    assert ledger.reverse(withdrawn, LATER, REASON) == Reverse(LATER, REASON)
    assert ledger.reattribute(lost, T, NOW, other_beneficiary=False) == Duplicate()


def test_naive_deal_times_compare_as_utc() -> None:
    naive_later = LATER.replace(tzinfo=None)
    assert ledger.credit(REVERSED, naive_later) == Reinstate(LATER)
    assert ledger.reverse(Credit(won_at=naive_later), T, REASON) == Stale()


def test_a_lead_lifecycle_reversal_first_then_wins() -> None:
    """Out of order: the reversal, then the older win, then a win after the reversal."""
    decision = ledger.reverse(None, T, REASON)
    assert isinstance(decision, Remember)
    assert ledger.credit(decision.tombstone, EARLIER) == Supersede(Tombstone(T, REASON))
    stored = Credit(won_at=EARLIER, reversed_at=T)
    assert ledger.credit(stored, LATER) == Reinstate(LATER)
    assert ledger.credit(Credit(won_at=LATER), LATER) == Duplicate()


def test_the_rule_is_pure_code_without_database_or_grpc() -> None:
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys, amoroute.ledger; print(json.dumps(list(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert not {"sqlalchemy", "grpc", "psycopg", "falcon"} & set(json.loads(imported))
