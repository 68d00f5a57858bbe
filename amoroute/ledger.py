"""The crediting rule: what a won deal or its reversal does to a lead's credit.

Pure code shared by referral_svc (conversions) and traffic_svc (sales): given
what is known of a lead (its stored credit, a reversal that came before any
credit, or nothing) and an incoming event, it returns a decision; each
service's store applies it to its own tables.

A lead is credited once per (account, lead). When the deal leaves won, the
credit is kept and marked reversed; a reversal that arrives before the credit
it undoes (AmoCRM retries deliver out of order) is remembered as a tombstone,
so the older "won" is stored reversed and credits nothing. Deal times (won_at,
reversed_at) decide which event is newer, never arrival order; on a tie the
reversal wins. A repeated win changes nothing (the first credit's amount and
beneficiary stand) unless it is newer than the credit's reversal: then the
credit is reinstated.

When the routing rules change, a lead can be re-attributed: its credit moves
to another beneficiary (`reattribute`) or to nobody (`withdraw`). The old
credit is kept, marked re-attributed and reversed "re-attributed" (visible,
never revenue); at most one credit of a lead is live (not re-attributed), and
that is the one every decision here looks at. A credit withdrawn to nobody
stays live, reversed "re-attributed": re-attributing the lead again (the rules
changed back) credits it again.

Each decision is its own small class with the outcome the caller reports, so
a new kind is one more class here and one more case in each store's `match`.
"""

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Protocol

from amoroute.timeutil import utc


class Recorded(enum.Enum):
    """What recording a won deal did."""

    NEW = "new"
    DUPLICATE = "duplicate"
    # A newer reversal was already known: stored as reversed, not credited.
    SUPERSEDED = "superseded"
    # The deal was won again after its reversal: credited again.
    REINSTATED = "reinstated"
    # Credited to this beneficiary in place of another, whose credit is kept
    # as re-attributed.
    REATTRIBUTED = "reattributed"


class Reversed(enum.Enum):
    """What recording a reversal (the deal left won) did."""

    REVERSED = "reversed"
    ALREADY_REVERSED = "already_reversed"
    STALE = "stale"
    NOT_CREDITED = "not_credited"


class Entry(Protocol):
    """A lead's stored credit, as far as the rule looks at it (every service's
    row type is one)."""

    @property
    def won_at(self) -> datetime | None: ...

    @property
    def reversed_at(self) -> datetime | None: ...

    @property
    def reversal_reason(self) -> str | None: ...


# The reversal reason of a credit re-attributed or withdrawn (then maybe
# followed by ": " and why).
REATTRIBUTED = "re-attributed"


@dataclass(frozen=True)
class Tombstone:
    """A reversal known for a lead that has no credit yet."""

    reversed_at: datetime
    reason: str


# What is known of a lead: its credit, a reversal that came first, or nothing.
Lead = Entry | Tombstone | None


# Decisions on a won deal.


@dataclass(frozen=True)
class Insert:
    """Store the credit; it counts."""

    outcome: ClassVar[Recorded] = Recorded.NEW


@dataclass(frozen=True)
class Supersede:
    """Store the credit already reversed by `reversal`: it counts for nothing."""

    reversal: Tombstone
    outcome: ClassVar[Recorded] = Recorded.SUPERSEDED


@dataclass(frozen=True)
class Duplicate:
    """The lead is credited already: change nothing."""

    outcome: ClassVar[Recorded] = Recorded.DUPLICATE


@dataclass(frozen=True)
class Reinstate:
    """Clear the credit's reversal and set its won_at to `won_at`; it counts again."""

    won_at: datetime | None
    outcome: ClassVar[Recorded] = Recorded.REINSTATED


@dataclass(frozen=True)
class Reattribute:
    """Keep the live credit, marked re-attributed at `at` and, unless reversed
    already, reversed at `at` for REATTRIBUTED; then store the deal's credit for
    the new beneficiary, reversed by `reversal` when the deal had left won."""

    at: datetime
    reversal: Tombstone | None
    outcome: ClassVar[Recorded] = Recorded.REATTRIBUTED


CreditDecision = Insert | Supersede | Duplicate | Reinstate | Reattribute


# Decisions on a reversal.


@dataclass(frozen=True)
class Reverse:
    """Mark the credit reversed at `reversed_at` for `reason`."""

    reversed_at: datetime
    reason: str
    outcome: ClassVar[Reversed] = Reversed.REVERSED


@dataclass(frozen=True)
class AlreadyReversed:
    """The credit is reversed already: change nothing."""

    outcome: ClassVar[Reversed] = Reversed.ALREADY_REVERSED


@dataclass(frozen=True)
class Stale:
    """The reversal is older than the credit's win: change nothing."""

    outcome: ClassVar[Reversed] = Reversed.STALE


@dataclass(frozen=True)
class Remember:
    """No credit yet: keep `tombstone` as the lead's known reversal, in place of
    any older one, for a late win to find."""

    tombstone: Tombstone
    outcome: ClassVar[Reversed] = Reversed.NOT_CREDITED


@dataclass(frozen=True)
class AlreadyRemembered:
    """No credit yet, and a reversal at least as new is known already: change nothing."""

    outcome: ClassVar[Reversed] = Reversed.NOT_CREDITED


@dataclass(frozen=True)
class NothingToWithdraw:
    """No credit to withdraw: change nothing (and remember nothing: a tombstone
    would supersede a later genuine win)."""

    outcome: ClassVar[Reversed] = Reversed.NOT_CREDITED


ReversalDecision = Reverse | AlreadyReversed | Stale | Remember | AlreadyRemembered
WithdrawalDecision = Reverse | AlreadyReversed | NothingToWithdraw


def is_newer(when: datetime | None, than: datetime | None) -> bool:
    """Deal time `when` is known to be later than `than` (naive times are UTC)."""
    return when is not None and than is not None and utc(when) > utc(than)


def credit(lead: Lead, won_at: datetime | None) -> CreditDecision:
    """What a win of the deal at `won_at` (None: not known) does to `lead`."""
    if lead is None:
        return Insert()
    if isinstance(lead, Tombstone):
        # Won again after that reversal: credited. Otherwise the win is not newer
        # than a reversal that undoes it, and is stored reversed.
        return Insert() if is_newer(won_at, lead.reversed_at) else Supersede(lead)
    if won_at is not None and lead.reversed_at is not None and is_newer(won_at, lead.reversed_at):
        return Reinstate(utc(won_at))
    return Duplicate()


def reverse(lead: Lead, reversed_at: datetime, reason: str) -> ReversalDecision:
    """What the deal leaving won at `reversed_at`, for `reason`, does to `lead`."""
    if lead is None:
        return Remember(Tombstone(reversed_at, reason))
    if isinstance(lead, Tombstone):
        if is_newer(reversed_at, lead.reversed_at):
            return Remember(Tombstone(reversed_at, reason))
        return AlreadyRemembered()
    if lead.reversed_at is not None and not is_withdrawn(lead):
        return AlreadyReversed()
    if is_newer(lead.won_at, reversed_at):
        return Stale()
    # A withdrawn credit takes the deal's reversal in place of the withdrawal, so
    # rules that credit its beneficiary again do not reinstate a lost deal.
    return Reverse(reversed_at, reason)


def is_withdrawn(lead: Entry) -> bool:
    """`lead`'s credit was reversed by a re-attribution, not by its deal."""
    reason = lead.reversal_reason or ""
    return lead.reversed_at is not None and (
        reason == REATTRIBUTED or reason.startswith(f"{REATTRIBUTED}:")
    )


def withdrawal_reason(why: str) -> str:
    """The reversal reason of a credit withdrawn for `why` (which may say
    REATTRIBUTED itself)."""
    if not why or why == REATTRIBUTED or why.startswith(f"{REATTRIBUTED}:"):
        return why or REATTRIBUTED
    return f"{REATTRIBUTED}: {why}"


def reattribute(
    lead: Lead, won_at: datetime | None, at: datetime, *, other_beneficiary: bool
) -> CreditDecision:
    """What a win at `won_at`, re-attributed at `at` under new rules, does to
    `lead`; `other_beneficiary`: its live credit is someone else's."""
    if lead is None or isinstance(lead, Tombstone):
        return credit(lead, won_at)
    withdrawn = is_withdrawn(lead)
    if not other_beneficiary:
        if withdrawn:
            # Withdrawn by an earlier re-attribution, credited again by this one.
            return Reinstate(utc(won_at) if won_at is not None else lead.won_at)
        return credit(lead, won_at)
    reversal = None
    if lead.reversed_at is not None and not withdrawn and not is_newer(won_at, lead.reversed_at):
        # The deal left won: the new beneficiary's credit is reversed as the old one was.
        reversal = Tombstone(utc(lead.reversed_at), lead.reversal_reason or "")
    return Reattribute(at, reversal)


def withdraw(lead: Lead, at: datetime, why: str) -> WithdrawalDecision:
    """What re-attributing the lead to nobody at `at`, for `why`, does to `lead`."""
    if lead is None or isinstance(lead, Tombstone):
        return NothingToWithdraw()
    if lead.reversed_at is not None:
        return AlreadyReversed()
    return Reverse(at, withdrawal_reason(why))
