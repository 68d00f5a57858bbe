"""Applying a re-attribution: after the candidate rules became the rules in force (a new
version), re-route every won deal whose decision differs between the previous version and
the new one. No HTTP; the job itself runs in edge/jobs.py like every admin job.

The job keeps the previous version's YAML. A chunk of leads (each lead's newest won event
in the range, as the preview reads them) is decided by the router's BatchExplainRoutes
under the rules in force and, as the candidate, the previous rules; only the deals whose
credited parties differ are re-routed, with RouteDeal's `reattribution` (and `announce`
when the request asked for it). So a second apply of the same rules finds nothing, and a
chunk done before a worker's restart is not done again: its leads lie behind the job's
cursor, and the router credits nothing twice anyway."""

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import grpc
import orjson

from amoroute.v1 import deal_pb2, router_pb2, router_pb2_grpc
from edge.dispatch import Job
from edge.events import UnroutableEvent, deal_from_log, log_for_deal
from edge.log_store import NewLog, WonEvent
from edge.reattribution import UNKNOWN, UndecidableDeal, parties
from edge.replay import REATTRIBUTION

# Deadline of one BatchExplainRoutes call made by a job's chunk.
EXPLAIN_TIMEOUT_S = 30.0
# A job's cursor once every lead in range has been read (lead ids stay below it).
PAST_LAST_LEAD = 2**62
_REFUSED_DEAL = re.compile(r"deals\[(\d+)\]")

Explain = Callable[[list[deal_pb2.Deal]], router_pb2.BatchExplainRoutesResponse]


class RulesNotApplied(Exception):
    """The router answering still applies an older version than the job's (a replica
    picks a new version up within seconds): the chunk is tried again later."""


def explain_against(stub: router_pb2_grpc.RouterServiceStub, previous_yaml: str) -> Explain:
    """BatchExplainRoutes for a chunk of deals: `current` under the rules in force,
    `candidate` under the previous rules. A deal the router refuses raises
    UndecidableDeal naming its index."""

    def explain(deals: list[deal_pb2.Deal]) -> router_pb2.BatchExplainRoutesResponse:
        request = router_pb2.BatchExplainRoutesRequest(
            deals=deals, candidate_rules_yaml=previous_yaml
        )
        try:
            reply: router_pb2.BatchExplainRoutesResponse = stub.BatchExplainRoutes(
                request, timeout=EXPLAIN_TIMEOUT_S
            )
        except grpc.RpcError as exc:
            refused = _REFUSED_DEAL.match(exc.details() or "")
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT and refused:
                raise UndecidableDeal(int(refused[1]), exc.details() or "") from None
            raise
        return reply

    return explain


def _credited(route: router_pb2.Route) -> tuple[str, ...]:
    """Who a decision credits; "unknown" credits nobody."""
    return tuple(p for p in parties(route) if p != UNKNOWN)


def change_kind(before: router_pb2.Route, after: router_pb2.Route) -> str | None:
    """How a lead's credit moves from `before` to `after`: "credited" (from nobody),
    "withdrawn" (to nobody), "reattributed" (to someone else), None when it stays."""
    old, new = _credited(before), _credited(after)
    if old == new:
        return None
    if not old:
        return "credited"
    if not new:
        return "withdrawn"
    return "reattributed"


@dataclass
class Chunk:
    """What one chunk re-routes: a log and a job to route per changed deal."""

    logs: list[NewLog] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    # Events whose stored data the router does not take as a deal.
    failed: int = 0
    # "credited" / "reattributed" / "withdrawn" -> how many.
    kinds: dict[str, int] = field(default_factory=dict)


def plan_chunk(
    events: list[WonEvent],
    explain: Explain,
    to_version: int,
    why: dict[str, Any],
    announce: bool,
    subdomain: str = "",
) -> Chunk:
    """The changed deals among `events`, each with its new `reattribution` log (a new
    attempt of the lead, its deal_data keeping `why`: job, versions, admin) and its
    job; the jobs' log ids are filled once the logs are stored."""
    chunk = Chunk()
    taken: list[tuple[WonEvent, dict[str, Any], deal_pb2.Deal]] = []
    for event in events:
        try:
            data = orjson.loads(event.deal_json)
            taken.append((event, data, deal_from_log(data, subdomain)))
        except (UnroutableEvent, orjson.JSONDecodeError):
            chunk.failed += 1
    if not taken:
        return chunk
    while True:
        try:
            reply = explain([deal for _, _, deal in taken])
            break
        except UndecidableDeal as exc:
            if not 0 <= exc.index < len(taken):
                raise
            del taken[exc.index]
            chunk.failed += 1
            if not taken:
                return chunk
    if reply.rules_version < to_version:
        raise RulesNotApplied(
            f"the router still applies rules version {reply.rules_version}, not {to_version}"
        )
    for (event, data, deal), explained in zip(taken, reply.results, strict=True):
        # current: the rules in force (new); candidate: the previous version.
        kind = change_kind(explained.candidate, explained.current)
        if kind is None:
            continue
        chunk.kinds[kind] = chunk.kinds.get(kind, 0) + 1
        data[REATTRIBUTION] = {**why, "announce": announce, "change": kind}
        chunk.logs.append(
            replace(log_for_deal(REATTRIBUTION, data, deal), replay_of=event.id)
        )
        chunk.jobs.append(Job(0, deal, reattribution=True, announce=announce))
    return chunk
