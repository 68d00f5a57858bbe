"""Hands logged events to RouterService and records what became of them.

The one path every event takes, whether it came by webhook, from the worker,
a replay or reconciliation."""

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
from opentelemetry.context import Context

from amoroute import tracing
from amoroute.v1 import deal_pb2, router_pb2, router_pb2_grpc
from amoroute.validation import MAX_BATCH_REQUESTS
from edge.event_lifecycle import ERROR, PARTIAL, PENDING, SUCCESS, Outcome
from edge.log_store import WebhookLogStore

log = logging.getLogger(__name__)

# Deals per BatchRouteDeals call (the router's limit), and bytes, well under
# the 4 MiB gRPC message limit.
MAX_DEALS_PER_CALL = MAX_BATCH_REQUESTS
MAX_BYTES_PER_CALL = 2 * 1024 * 1024

_STATUS = {
    router_pb2.PROCESSING_STATUS_SUCCESS: SUCCESS,
    router_pb2.PROCESSING_STATUS_PARTIAL: PARTIAL,
    router_pb2.PROCESSING_STATUS_ERROR: ERROR,
}


_DECISION_NAMES = {
    value: name.removeprefix("ROUTING_DECISION_").lower()
    for name, value in router_pb2.RoutingDecision.items()
}


def decision_name(decision: int) -> str:
    """ROUTING_DECISION_BOTH -> "both"."""
    name = _DECISION_NAMES.get(decision)
    if name is None:  # not in this edge's protos: Name() raises ValueError for it
        return router_pb2.RoutingDecision.Name(decision)
    return name


_FAILED = router_pb2.LEG_OUTCOME_FAILED
_LEG_OUTCOMES = {
    router_pb2.LEG_OUTCOME_RECORDED: "recorded",
    router_pb2.LEG_OUTCOME_DUPLICATE: "duplicate",
    router_pb2.LEG_OUTCOME_FAILED: "failed",
    router_pb2.LEG_OUTCOME_SUPERSEDED: "superseded",
    router_pb2.LEG_OUTCOME_REVERSED: "reversed",
    router_pb2.LEG_OUTCOME_REATTRIBUTED: "reattributed",
    router_pb2.LEG_OUTCOME_WITHDRAWN: "withdrawn",
}


@dataclass(frozen=True)
class Job:
    log_id: int
    deal: deal_pb2.Deal
    # Legs that succeeded on an earlier attempt of this event.
    skip_legs: tuple[str, ...] = ()
    # The webhook request's id, for the router's log line about this deal.
    request_id: str = ""
    # Re-route a deal credited before under the rules in force (RouteDealRequest's
    # reattribution), announcing a newly credited traffic sale only with `announce`.
    reattribution: bool = False
    announce: bool = False
    # The webhook request's trace context (tracing.current_context()), so the routing
    # done later on another thread is part of the webhook's trace; None when off.
    trace: Context | None = None
    # The stored trace context of the webhook this event came in (a retry links to it).
    traceparent: str = ""


def outcome_of(
    log_id: int, response: router_pb2.RouteDealResponse, lead_data_available: bool = False
) -> Outcome:
    route = response.route
    if route.needs_lead_data:
        if lead_data_available:
            return Outcome(
                log_id,
                PENDING,
                decision=decision_name(route.decision),
                route=route_of(route),
                error_message="the webhook carried no UTM marks: reading the lead from the API",
                retry=True,
                awaiting_lead_data=True,
            )
        return Outcome(
            log_id,
            SUCCESS,
            decision=decision_name(route.decision),
            route=route_of(route),
            error_message="the webhook carried no UTM marks and the AmoCRM API is not configured "
            "(AMOCRM_ACCESS_TOKEN or OAuth), so the lead could not be read from it",
        )
    # PERF: one pass over the legs, each proto field read once, for every routed
    # event; measured by python -m bench.ab
    legs: dict[str, str] = {}
    errors = []
    for leg in response.legs:
        name, outcome = leg.leg, leg.outcome
        legs[name] = _LEG_OUTCOMES.get(outcome, "failed")
        if outcome == _FAILED:
            errors.append(f"{name}: {leg.error}")
    utm = route.utm
    return Outcome(
        log_id=log_id,
        status=_STATUS.get(response.status, ERROR),
        decision=decision_name(route.decision),
        utm_source=utm.source,
        utm_campaign=utm.campaign,
        error_message="; ".join(errors) or None,
        retry=bool(errors),
        legs=legs,
        route=route_of(route),
    )


def route_of(route: router_pb2.Route) -> dict[str, str]:
    """The router's explanation of `route`, as webhook_logs.route stores it."""
    why = {"reason": route.reason}
    if route.referral_code:
        why["referral_code"] = route.referral_code
    if route.targetologist:
        why["targetologist"] = route.targetologist
    return why


def outcome_of_error(log_id: int, exc: grpc.RpcError) -> Outcome:
    code = exc.code()
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        # Retrying cannot fix the deal itself.
        return Outcome(log_id, ERROR, error_message=f"router rejected the deal: {exc.details()}")
    name = code.name if code else "UNKNOWN"
    return Outcome(log_id, PENDING, error_message=f"router {name}: {exc.details()}", retry=True)


def route_batches(jobs: list[Job]) -> Iterator[list[Job]]:
    """The jobs in order, in batches within MAX_DEALS_PER_CALL deals and MAX_BYTES_PER_CALL."""
    batch: list[Job] = []
    size = 0
    for job in jobs:
        deal_size = job.deal.ByteSize()
        if batch and (len(batch) == MAX_DEALS_PER_CALL or size + deal_size > MAX_BYTES_PER_CALL):
            yield batch
            batch, size = [], 0
        batch.append(job)
        size += deal_size
    if batch:
        yield batch


class Dispatcher:
    def __init__(
        self, router: grpc.Channel, logs: WebhookLogStore, lead_data_available: bool = False
    ) -> None:
        """`lead_data_available`: the AmoCRM API is configured, so a won deal that came
        without UTM marks waits for the worker to read it instead of staying unknown."""
        self.router = router_pb2_grpc.RouterServiceStub(router)
        self.logs = logs
        self.lead_data_available = lead_data_available

    def won_statuses(self, timeout_s: float = 5.0) -> tuple[list[int], list[int]]:
        """(pipeline ids, won status ids) of the routing rules in force."""
        rules = self.router.DescribeRules(router_pb2.DescribeRulesRequest(), timeout=timeout_s)
        return list(rules.pipeline_ids), list(rules.won_status_ids)

    def dispatch(self, jobs: list[Job], timeout_s: float) -> list[Outcome]:
        """Route the jobs and record each outcome."""
        outcomes = self.route(jobs, timeout_s)
        self.record(outcomes)
        return outcomes

    def route(self, jobs: list[Job], timeout_s: float) -> list[Outcome]:
        """Route the jobs (BatchRouteDeals, MAX_DEALS_PER_CALL at a time, each within
        `timeout_s`); what the router did not answer in time is to be retried."""
        outcomes: list[Outcome] = []
        for batch in route_batches(jobs):
            outcomes += self._route(batch, timeout_s)
        return outcomes

    def record(self, outcomes: list[Outcome]) -> None:
        """Store the outcomes in webhook_logs, one transaction."""
        if outcomes:
            self.logs.record_outcomes(outcomes)

    def _route(self, jobs: list[Job], timeout_s: float) -> list[Outcome]:
        # PERF: each deal copied once, into the request in place (a RouteDealRequest
        # built on its own is copied again into the batch); measured by python -m bench.ab
        request = router_pb2.BatchRouteDealsRequest()
        for job in jobs:
            item = request.requests.add(
                skip_legs=job.skip_legs,
                request_id=job.request_id,
                reattribution=job.reattribution,
                announce=job.announce,
            )
            item.deal.CopyFrom(job.deal)
        # Part of the first webhook's trace, linked to the other webhooks of the batch;
        # a retry's span links to the webhooks it retries.
        with tracing.span_for(
            "route deals",
            [job.trace for job in jobs],
            links=[job.traceparent for job in jobs],
            deals=len(jobs),
            request_ids=[job.request_id for job in jobs if job.request_id],
        ):
            try:
                results = self.router.BatchRouteDeals(request, timeout=timeout_s).results
            except grpc.RpcError as exc:
                return [outcome_of_error(job.log_id, exc) for job in jobs]
        return [
            outcome_of(job.log_id, result.response, self.lead_data_available)
            if result.HasField("response")
            else Outcome(
                job.log_id,
                ERROR,
                error_message=f"router rejected the deal: {result.invalid_argument}",
            )
            for job, result in zip(jobs, results, strict=True)
        ]
