"""RouterService servicer: decide, then run the legs the decision needs."""

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import grpc

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
RECORDED, DUPLICATE, FAILED = (
    router_pb2.LEG_OUTCOME_RECORDED,
    router_pb2.LEG_OUTCOME_DUPLICATE,
    router_pb2.LEG_OUTCOME_FAILED,
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


def _leg(name: str, call: Callable[[], bool]) -> router_pb2.LegResult:
    """Run one downstream call; `call` returns True when it was a duplicate."""
    try:
        duplicate = call()
    except grpc.RpcError as exc:
        code = exc.code().name if exc.code() else "UNKNOWN"
        return router_pb2.LegResult(leg=name, outcome=FAILED, error=f"{code}: {exc.details()}")
    return router_pb2.LegResult(leg=name, outcome=DUPLICATE if duplicate else RECORDED)


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

    def RouteDeal(
        self, request: router_pb2.RouteDealRequest, context: grpc.ServicerContext
    ) -> router_pb2.RouteDealResponse:
        """Decide, then run the referral and traffic legs in parallel."""
        deal = request.deal
        _validate(deal)
        skip = set(request.skip_legs)
        if not skip <= LEGS:
            raise InvalidArgument("skip_legs", f"unknown legs {sorted(skip - LEGS)}")
        route = decide(deal, self.rules.get())
        remaining = context.time_remaining()
        timeout = (
            min(self.leg_timeout_s, remaining) if remaining is not None else self.leg_timeout_s
        )
        futures: list[Future[list[router_pb2.LegResult]]] = []
        if route.decision in REFERRAL_DECISIONS and "referral" not in skip:
            futures.append(self.pool.submit(lambda: [self._referral(deal, route, timeout)]))
        if route.decision in TRAFFIC_DECISIONS and not {"traffic", "notifier"} <= skip:
            futures.append(self.pool.submit(self._traffic_then_notify, deal, route, timeout, skip))
        legs = [leg for f in futures for leg in f.result()]
        response = router_pb2.RouteDealResponse(route=route, status=overall_status(legs), legs=legs)
        log.info(
            "deal routed",
            extra={
                "lead_id": deal.lead_id,
                "decision": router_pb2.RoutingDecision.Name(route.decision),
                "status": router_pb2.ProcessingStatus.Name(response.status),
                "legs": {leg.leg: router_pb2.LegOutcome.Name(leg.outcome) for leg in legs},
            },
        )
        return response

    def _referral(
        self, deal: deal_pb2.Deal, route: router_pb2.Route, timeout: float
    ) -> router_pb2.LegResult:
        conversion = referral_pb2.Conversion(
            lead_id=deal.lead_id,
            account_id=deal.account_id,
            referral_code=route.referral_code,
            amount=deal.price,
            deal_name=deal.name,
            won_at=deal.updated_at,
            utm=route.utm,
        )
        return _leg(
            "referral",
            lambda: (
                self.downstream.referral.RecordConversion(
                    referral_pb2.RecordConversionRequest(conversion=conversion), timeout=timeout
                ).duplicate
            ),
        )

    def _traffic_then_notify(
        self, deal: deal_pb2.Deal, route: router_pb2.Route, timeout: float, skip: set[str]
    ) -> list[router_pb2.LegResult]:
        legs: list[router_pb2.LegResult] = []
        sale = traffic_pb2.Sale(
            lead_id=deal.lead_id,
            account_id=deal.account_id,
            targetologist=route.targetologist,
            utm=route.utm,
            amount=deal.price,
            deal_name=deal.name,
            won_at=deal.updated_at,
        )
        if "traffic" not in skip:
            legs.append(
                _leg(
                    "traffic",
                    lambda: (
                        self.downstream.traffic.RecordSale(
                            traffic_pb2.RecordSaleRequest(sale=sale), timeout=timeout
                        ).duplicate
                    ),
                )
            )
            if legs[-1].outcome == FAILED:
                return legs
        if "notifier" in skip:
            return legs
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
        legs.append(
            _leg(
                "notifier",
                lambda: self.downstream.notifier.Notify(notify, timeout=timeout).duplicate,
            )
        )
        return legs
