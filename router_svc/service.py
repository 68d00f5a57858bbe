"""RouterService servicer: decide, then run the legs the decision needs."""

import contextvars
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from amoroute import validation
from amoroute.errors import InvalidArgument
from amoroute.v1 import (
    deal_pb2,
    notifier_pb2,
    notifier_pb2_grpc,
    referral_pb2,
    referral_pb2_grpc,
    router_pb2,
    traffic_pb2,
    traffic_pb2_grpc,
)
from router_svc.rules import RulesFile, decide

log = logging.getLogger(__name__)

D = router_pb2.RoutingDecision
REFERRAL_DECISIONS = (D.ROUTING_DECISION_REFERRAL, D.ROUTING_DECISION_BOTH)
TRAFFIC_DECISIONS = (D.ROUTING_DECISION_TRAFFIC, D.ROUTING_DECISION_BOTH)
LEGS = {"referral", "traffic", "notifier"}
RECORDED, DUPLICATE, FAILED, SUPERSEDED, REVERSED = (
    router_pb2.LEG_OUTCOME_RECORDED,
    router_pb2.LEG_OUTCOME_DUPLICATE,
    router_pb2.LEG_OUTCOME_FAILED,
    router_pb2.LEG_OUTCOME_SUPERSEDED,
    router_pb2.LEG_OUTCOME_REVERSED,
)


class Downstream:
    """Stubs of the services the router calls."""

    def __init__(self, referral: grpc.Channel, traffic: grpc.Channel, notifier: grpc.Channel):
        self.referral = referral_pb2_grpc.ReferralServiceStub(referral)
        self.traffic = traffic_pb2_grpc.TrafficServiceStub(traffic)
        self.notifier = notifier_pb2_grpc.NotifierServiceStub(notifier)


def _validate(deal: deal_pb2.Deal) -> None:
    validation.positive("deal.lead_id", deal.lead_id)
    validation.not_negative("deal.account_id", deal.account_id)
    validation.not_negative("deal.price", deal.price)
    validation.text("deal.name", deal.name)
    validation.text("deal.account_subdomain", deal.account_subdomain, max_len=100)
    if len(deal.custom_fields) > 500:
        raise InvalidArgument("deal.custom_fields", "more than 500 fields")


def _record_outcome(reply: referral_pb2.RecordConversionResponse | traffic_pb2.RecordSaleResponse):
    if reply.superseded:
        return SUPERSEDED
    return DUPLICATE if reply.duplicate else RECORDED


def _reversal_outcome(outcome: int) -> int:
    return REVERSED if outcome == deal_pb2.REVERSAL_OUTCOME_REVERSED else DUPLICATE


def _leg(name: str, call: Callable[[], int]) -> router_pb2.LegResult:
    """Run one downstream call; `call` returns the leg's outcome."""
    try:
        outcome = call()
    except grpc.RpcError as exc:
        code = exc.code().name if exc.code() else "UNKNOWN"
        return router_pb2.LegResult(leg=name, outcome=FAILED, error=f"{code}: {exc.details()}")
    return router_pb2.LegResult(leg=name, outcome=outcome)


def overall_status(legs: list[router_pb2.LegResult]) -> int:
    failed = sum(leg.outcome == FAILED for leg in legs)
    if not failed:
        return router_pb2.PROCESSING_STATUS_SUCCESS
    if failed == len(legs):
        return router_pb2.PROCESSING_STATUS_ERROR
    return router_pb2.PROCESSING_STATUS_PARTIAL


class RouterService:
    """Implements amoroute.v1.RouterService (registered via the generated adder)."""

    def __init__(
        self,
        rules: RulesFile,
        downstream: Downstream,
        pool: ThreadPoolExecutor,
        leg_timeout_s: float,
    ) -> None:
        self.rules = rules
        self.downstream = downstream
        self.pool = pool
        self.leg_timeout_s = leg_timeout_s

    def ExplainRoute(
        self, request: router_pb2.ExplainRouteRequest, context: grpc.ServicerContext
    ) -> router_pb2.ExplainRouteResponse:
        """The decision for the deal, with no side effects."""
        _validate(request.deal)
        return router_pb2.ExplainRouteResponse(route=decide(request.deal, self.rules.get()))

    def DescribeRules(
        self, request: router_pb2.DescribeRulesRequest, context: grpc.ServicerContext
    ) -> router_pb2.DescribeRulesResponse:
        """The rules in force and where they came from."""
        rules = self.rules.get()
        loaded = Timestamp()
        loaded.FromNanoseconds(int(self.rules.loaded_at * 1e9))
        return router_pb2.DescribeRulesResponse(
            pipeline_ids=sorted(rules.pipelines),
            won_status_ids=sorted(rules.won_status_ids),
            referral_prefix=rules.referral_prefix,
            targetologists=[t.name for t in rules.targetologists],
            path=str(self.rules.path),
            loaded_at=loaded,
        )

    def RouteDeal(
        self, request: router_pb2.RouteDealRequest, context: grpc.ServicerContext
    ) -> router_pb2.RouteDealResponse:
        """Decide, then run the legs the decision needs, in parallel."""
        deal = request.deal
        _validate(deal)
        skip = set(request.skip_legs)
        if not skip <= LEGS:
            raise InvalidArgument("skip_legs", f"unknown legs {sorted(skip - LEGS)}")
        route = decide(deal, self.rules.get())
        remaining = context.time_remaining()
        timeout = self.leg_timeout_s if remaining is None else min(self.leg_timeout_s, remaining)
        legs = Legs(self.downstream, deal, route, timeout)
        jobs: list[Callable[[], list[router_pb2.LegResult]]] = []
        if route.reversal:
            if "referral" not in skip:
                jobs.append(lambda: [legs.reverse_referral()])
            if "traffic" not in skip:
                jobs.append(lambda: [legs.reverse_traffic()])
        if route.decision in REFERRAL_DECISIONS and "referral" not in skip:
            jobs.append(lambda: [legs.referral()])
        if route.decision in TRAFFIC_DECISIONS and not {"traffic", "notifier"} <= skip:
            jobs.append(lambda: legs.traffic_then_notify(skip))
        # Each leg runs in the caller's context, so the request id goes along.
        futures: list[Future[list[router_pb2.LegResult]]] = [
            self.pool.submit(contextvars.copy_context().run, job) for job in jobs
        ]
        results = [leg for f in futures for leg in f.result()]
        response = router_pb2.RouteDealResponse(
            route=route, status=overall_status(results), legs=results
        )
        log.info(
            "deal routed",
            extra={
                "lead_id": deal.lead_id,
                "decision": router_pb2.RoutingDecision.Name(route.decision),
                "reversal": route.reversal,
                "status": router_pb2.ProcessingStatus.Name(response.status),
                "legs": {leg.leg: router_pb2.LegOutcome.Name(leg.outcome) for leg in results},
            },
        )
        return response


class Legs:
    """The downstream calls for one deal and its route."""

    def __init__(
        self, downstream: Downstream, deal: deal_pb2.Deal, route: router_pb2.Route, timeout: float
    ) -> None:
        self.down = downstream
        self.deal = deal
        self.route = route
        self.timeout = timeout

    def referral(self) -> router_pb2.LegResult:
        deal, route = self.deal, self.route
        conversion = referral_pb2.Conversion(
            lead_id=deal.lead_id,
            account_id=deal.account_id,
            referral_code=route.referral_code,
            amount=deal.price,
            deal_name=deal.name,
            won_at=deal.updated_at,
            utm=route.utm,
        )
        request = referral_pb2.RecordConversionRequest(conversion=conversion)
        return _leg(
            "referral",
            lambda: _record_outcome(
                self.down.referral.RecordConversion(request, timeout=self.timeout)
            ),
        )

    def traffic_then_notify(self, skip: set[str]) -> list[router_pb2.LegResult]:
        deal, route = self.deal, self.route
        results: list[router_pb2.LegResult] = []
        if "traffic" not in skip:
            sale = traffic_pb2.Sale(
                lead_id=deal.lead_id,
                account_id=deal.account_id,
                targetologist=route.targetologist,
                utm=route.utm,
                amount=deal.price,
                deal_name=deal.name,
                won_at=deal.updated_at,
            )
            request = traffic_pb2.RecordSaleRequest(sale=sale)
            results.append(
                _leg(
                    "traffic",
                    lambda: _record_outcome(
                        self.down.traffic.RecordSale(request, timeout=self.timeout)
                    ),
                )
            )
            # Nothing to announce for a failed or superseded sale.
            if results[-1].outcome in (FAILED, SUPERSEDED):
                return results
        if "notifier" in skip:
            return results
        # Notify is idempotent too, so a repeat after a failed announcement completes it.
        notify = notifier_pb2.NotifyRequest(
            lead_id=deal.lead_id,
            account_id=deal.account_id,
            account_subdomain=deal.account_subdomain,
            deal_name=deal.name,
            amount=deal.price,
            targetologist=route.targetologist,
            utm=route.utm,
            chat_id=route.telegram_chat_id,
        )
        results.append(
            _leg(
                "notifier",
                lambda: (
                    DUPLICATE
                    if self.down.notifier.Notify(notify, timeout=self.timeout).duplicate
                    else RECORDED
                ),
            )
        )
        return results

    def reverse_referral(self) -> router_pb2.LegResult:
        request = referral_pb2.ReverseConversionRequest(
            lead_id=self.deal.lead_id,
            account_id=self.deal.account_id,
            reversed_at=self.deal.updated_at,
            reason=self._reversal_reason(),
        )
        return _leg(
            "referral",
            lambda: _reversal_outcome(
                self.down.referral.ReverseConversion(request, timeout=self.timeout).outcome
            ),
        )

    def reverse_traffic(self) -> router_pb2.LegResult:
        request = traffic_pb2.ReverseSaleRequest(
            lead_id=self.deal.lead_id,
            account_id=self.deal.account_id,
            reversed_at=self.deal.updated_at,
            reason=self._reversal_reason(),
        )
        return _leg(
            "traffic",
            lambda: _reversal_outcome(
                self.down.traffic.ReverseSale(request, timeout=self.timeout).outcome
            ),
        )

    def _reversal_reason(self) -> str:
        return f"status {self.deal.old_status_id} -> {self.deal.status_id}"
