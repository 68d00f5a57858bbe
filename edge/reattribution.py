"""What-if re-attribution: every won deal in a range decided under the rules in force and
under candidate rules, what changes, and the totals per credited party before and after.
Writes nothing.

Pure of HTTP: the admin resource (edge/admin_reattribution.py) gives the filters, and a
function that asks the router (BatchExplainRoutes) for a chunk of deals' decisions."""

import contextvars
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from amoroute.v1 import deal_pb2, router_pb2
from edge.events import UnroutableEvent, deal_from_log
from edge.log_store import LogQuery, WebhookLogStore, WonEvent

# Leads read, and deals decided by one router call, at a time.
CHUNK = 1000
# Changes listed in full; the rest are counted.
MAX_CHANGES = 1000
UNKNOWN = "unknown"

D = router_pb2.RoutingDecision
# Plain ints: the enum wrapper's attribute lookup is slow for a test made per deal.
_UNKNOWN = int(D.ROUTING_DECISION_UNKNOWN)
_REFERRAL = (int(D.ROUTING_DECISION_REFERRAL), int(D.ROUTING_DECISION_BOTH))
_TRAFFIC = (int(D.ROUTING_DECISION_TRAFFIC), int(D.ROUTING_DECISION_BOTH))
_DECISIONS = {value: name.removeprefix("ROUTING_DECISION_").lower() for name, value in D.items()}

# A chunk's events and deals (those the router took), its answer, how many it refused.
Decided = tuple[list[WonEvent], list[deal_pb2.Deal], router_pb2.BatchExplainRoutesResponse, int]

# Decides a chunk of deals: one ExplainedRoute per deal, in order, and the rules version.
Explain = Callable[[list[deal_pb2.Deal]], router_pb2.BatchExplainRoutesResponse]


class UndecidableDeal(Exception):
    """The router refused deal number `index` of a chunk (its stored data is not a deal
    it accepts); the preview leaves it out and counts it as skipped."""

    def __init__(self, index: int, why: str) -> None:
        super().__init__(why)
        self.index = index


def parties(route: router_pb2.Route) -> tuple[str, ...]:
    """Who a decision credits: "referral:<code>", "traffic:<name>" (both for a deal
    credited twice), "unknown"; nobody for a deal that is not a won deal under it."""
    decision = route.decision
    if decision == _UNKNOWN:
        return (UNKNOWN,)
    credited = []
    if decision in _REFERRAL:
        credited.append(f"referral:{route.referral_code}")
    if decision in _TRAFFIC:
        credited.append(f"traffic:{route.targetologist}")
    return tuple(credited)


def _outcome(route: router_pb2.Route) -> dict[str, Any]:
    return {
        "decision": _DECISIONS.get(route.decision, "unspecified"),
        "parties": list(parties(route)),
        "reason": route.reason,
    }


@dataclass
class Figures:
    count: int = 0
    revenue: int = 0

    def add(self, amount: int) -> None:
        self.count += 1
        self.revenue += amount

    def as_json(self) -> dict[str, int]:
        return {"count": self.count, "revenue": self.revenue}


@dataclass
class Preview:
    """What the candidate rules would change among the won deals scanned."""

    rules_version: int = 0
    events: int = 0
    changed: int = 0
    # Events whose stored data the router does not take as a deal: left out.
    skipped: int = 0
    before: dict[str, Figures] = field(default_factory=dict)
    after: dict[str, Figures] = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)

    def totals(self) -> list[dict[str, Any]]:
        """Per party: count and revenue before, after and the difference; the largest
        change in revenue first."""
        rows = []
        for party in self.before.keys() | self.after.keys():
            before = self.before.get(party, Figures())
            after = self.after.get(party, Figures())
            diff = Figures(after.count - before.count, after.revenue - before.revenue)
            rows.append((party, before, after, diff))
        rows.sort(key=lambda r: (-abs(r[3].revenue), -abs(r[3].count), r[0]))
        return [
            {
                "party": party,
                "before": before.as_json(),
                "after": after.as_json(),
                "diff": diff.as_json(),
            }
            for party, before, after, diff in rows
        ]

    def add(self, event: WonEvent, deal: deal_pb2.Deal, result: router_pb2.ExplainedRoute) -> None:
        self.events += 1
        current, candidate = result.current, result.candidate
        for party in parties(current):
            self.before.setdefault(party, Figures()).add(deal.price)
        for party in parties(candidate):
            self.after.setdefault(party, Figures()).add(deal.price)
        if (current.decision, current.targetologist, current.referral_code) == (
            candidate.decision,
            candidate.targetologist,
            candidate.referral_code,
        ):
            return
        self.changed += 1
        if len(self.changes) < MAX_CHANGES:
            self.changes.append(
                {
                    "log_id": event.id,
                    "lead_id": event.lead_id,
                    "amount": deal.price,
                    "before": _outcome(current),
                    "after": _outcome(candidate),
                }
            )


def preview(
    logs: WebhookLogStore,
    explain: Explain,
    query: LogQuery,
    subdomain: str = "",
    chunk: int = CHUNK,
) -> Preview:
    """Each lead's newest won event received in `query`'s range, when `query`'s other
    filters match it, decided by `explain` under the rules in force and the candidate;
    what changes and the totals."""
    # Asked first with no deals: a bad candidate is refused, and the rules version is
    # known, even when nothing is in range.
    result = Preview(rules_version=explain([]).rules_version)
    # PERF: the router decides one chunk while the next is read and turned into deals,
    # and the database reads the chunk after meanwhile, the three processes in parallel;
    # measured by python -m bench.reattribution_preview
    with ThreadPoolExecutor(max_workers=1) as pool, ThreadPoolExecutor(max_workers=1) as reader:
        pending: Future[Decided] | None = None
        for events, deals in _chunks(_read_ahead(logs, query, chunk, reader), subdomain, result):
            # In the caller's context, so the request id goes along to the router.
            decided = pool.submit(contextvars.copy_context().run, _decide, explain, events, deals)
            if pending:
                _take(result, pending.result())
            pending = decided
        if pending:
            _take(result, pending.result())
    return result


def _take(result: Preview, decided: Decided) -> None:
    events, deals, reply, skipped = decided
    result.skipped += skipped
    result.rules_version = reply.rules_version
    for event, deal, explained in zip(events, deals, reply.results, strict=True):
        result.add(event, deal, explained)


def _decide(explain: Explain, events: list[WonEvent], deals: list[deal_pb2.Deal]) -> Decided:
    """One router call for the chunk; a deal it refuses is left out and the rest asked
    again."""
    skipped = 0
    while True:
        try:
            return events, deals, explain(deals), skipped
        except UndecidableDeal as exc:
            if not 0 <= exc.index < len(deals):
                raise
            del events[exc.index], deals[exc.index]
            skipped += 1


def _read_ahead(
    logs: WebhookLogStore, query: LogQuery, chunk: int, reader: ThreadPoolExecutor
) -> Iterator[list[WonEvent]]:
    """The won events `query` selects, chunk by chunk in lead id order, each chunk read
    by `reader` while the caller works on the one before."""
    pending: Future[tuple[list[WonEvent], int | None]] | None = reader.submit(
        logs.newest_won_per_lead, query, 0, chunk
    )
    while pending is not None:
        rows, after = pending.result()
        pending = None
        if after is not None:
            pending = reader.submit(logs.newest_won_per_lead, query, after, chunk)
        yield rows


def _chunks(
    chunks: Iterator[list[WonEvent]], subdomain: str, result: Preview
) -> Iterator[tuple[list[WonEvent], list[deal_pb2.Deal]]]:
    """Each chunk's events with their deals; an event whose data is no deal is counted
    as skipped."""
    for rows in chunks:
        events, deals = [], []
        for row in rows:
            try:
                deals.append(deal_from_log(orjson.loads(row.deal_json), subdomain, shared=True))
            except (UnroutableEvent, orjson.JSONDecodeError):
                result.skipped += 1
                continue
            events.append(row)
        if deals:
            yield events, deals


def timed_preview(
    logs: WebhookLogStore, explain: Explain, query: LogQuery, subdomain: str = ""
) -> tuple[Preview, int]:
    """preview() and how long it took, in milliseconds."""
    started = time.monotonic()
    result = preview(logs, explain, query, subdomain)
    return result, round((time.monotonic() - started) * 1000)
