"""RouterService servicer: decide, then run the legs the decision needs."""

import contextvars
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import grpc
import yaml
from google.protobuf.timestamp_pb2 import Timestamp

from amoroute import paging, validation
from amoroute.callers import OPERATOR, CallerTokens
from amoroute.errors import Aborted, FailedPrecondition, InvalidArgument
from amoroute.grpc_auth import caller_of_call
from amoroute.timeutil import to_datetime, to_timestamp
from amoroute.v1 import (
    deal_pb2,
    notifier_pb2,
    notifier_pb2_grpc,
    referral_pb2,
    referral_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
    traffic_pb2,
    traffic_pb2_grpc,
)
from router_svc.group_suggestions import proposed_yaml, suggest_for_group
from router_svc.rules import (
    Rules,
    RulesError,
    RulesFile,
    decide,
    decide_twice,
    parse_rules,
    parse_rules_yaml,
)
from router_svc.rules_versions import SEED_AUTHOR, DatabaseRules, diff_to_previous
from router_svc.store import StaleVersion, StoredVersion

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
REATTRIBUTED, WITHDRAWN = router_pb2.LEG_OUTCOME_REATTRIBUTED, router_pb2.LEG_OUTCOME_WITHDRAWN
# The reason a credit withdrawn by a re-attribution is reversed for (then ": why").
WITHDRAWAL_REASON = "re-attributed"


class Downstream:
    """Stubs of the services the router calls."""

    def __init__(self, referral: grpc.Channel, traffic: grpc.Channel, notifier: grpc.Channel):
        self.referral = referral_pb2_grpc.ReferralServiceStub(referral)
        self.traffic = traffic_pb2_grpc.TrafficServiceStub(traffic)
        self.notifier = notifier_pb2_grpc.NotifierServiceStub(notifier)


def _validate(deal: deal_pb2.Deal) -> None:
    validation.positive("deal.lead_id", deal.lead_id)
    validation.not_negative("deal.account_id", deal.account_id)
    validation.amount("deal.price", deal.price)
    validation.text("deal.name", deal.name)
    validation.text("deal.account_subdomain", deal.account_subdomain, max_len=100)
    # updated_at becomes the sale's won_at (or a reversal's time) downstream: a
    # time the legs would refuse is refused here, before any leg runs.
    to_datetime("deal.updated_at", deal.updated_at)
    to_datetime("deal.created_at", deal.created_at)
    if len(deal.custom_fields) > 500:
        raise InvalidArgument("deal.custom_fields", "more than 500 fields")


# SuggestOwners' bounds: each mark is compared with every known code and pattern.
MAX_SUGGESTION_GROUPS = 500
MAX_MARKS_PER_GROUP = 20
MAX_KNOWN_CODES = 2000
_SUGGESTION_KINDS = {
    "targetologist": router_pb2.SUGGESTION_KIND_TARGETOLOGIST,
    "referral": router_pb2.SUGGESTION_KIND_REFERRAL,
}


def _suggestion_input(
    request: router_pb2.SuggestOwnersRequest,
) -> tuple[list[list[dict[str, str]]], list[str]]:
    """The groups as suggest() reads marks ({"utm_source": ...}) and the known codes."""
    if len(request.groups) > MAX_SUGGESTION_GROUPS:
        raise InvalidArgument("groups", f"more than {MAX_SUGGESTION_GROUPS} groups")
    if len(request.known_referral_codes) > MAX_KNOWN_CODES:
        raise InvalidArgument("known_referral_codes", f"more than {MAX_KNOWN_CODES} codes")
    groups = []
    for i, group in enumerate(request.groups):
        if len(group.marks) > MAX_MARKS_PER_GROUP:
            raise InvalidArgument(f"groups[{i}].marks", f"more than {MAX_MARKS_PER_GROUP} marks")
        groups.append(
            [
                {
                    f"utm_{key}": value
                    for key, value in validation.utm_marks(f"groups[{i}].marks[{j}]", marks).items()
                }
                for j, marks in enumerate(group.marks)
            ]
        )
    codes = [
        validation.text(f"known_referral_codes[{i}]", code, max_len=64)
        for i, code in enumerate(request.known_referral_codes)
    ]
    validation.text("base_rules_yaml", request.base_rules_yaml, max_len=MAX_RULES_CHARS)
    return groups, codes


def _base_rules(text: str) -> tuple[dict[str, Any], Rules]:
    """The base rules document as parsed from YAML and as validated rules."""
    try:
        document = yaml.safe_load(text)
        rules = parse_rules(document)
    except yaml.YAMLError as exc:
        raise InvalidArgument("base_rules_yaml", f"not valid YAML: {exc}") from None
    except RulesError as exc:
        raise InvalidArgument("base_rules_yaml", str(exc)) from None
    return document, rules

# A rules document is a few kilobytes; this bounds what one request makes the router parse.
MAX_RULES_CHARS = 256 * 1024
MAX_AUTHOR_CHARS = 200
MAX_COMMENT_CHARS = 2000
# Deals one BatchExplainRoutes call decides: a preview's chunk.
MAX_EXPLAIN_DEALS = 1000
# Whole documents with their diffs: pages smaller than a list of sales.
VERSIONS_PAGE_SIZE, MAX_VERSIONS_PAGE_SIZE = 20, 100


# PERF: YAML parsing and validation cost milliseconds, and a preview sends the same
# candidate with every deal it decides; measured by python -m timeit -s "from
# router_svc.rules import DEFAULT_RULES_PATH, parse_rules_yaml; t =
# DEFAULT_RULES_PATH.read_text()" "parse_rules_yaml(t)", against the cached call.
@functools.lru_cache(maxsize=8)
def _candidate_rules(text: str) -> Rules:
    """Candidate rules of ExplainRoute, parsed once for the what-if calls that repeat
    them (a preview decides many deals under the same candidate)."""
    try:
        return parse_rules_yaml(text)
    except RulesError as exc:
        raise InvalidArgument("candidate_rules_yaml", str(exc)) from None


def _version_message(stored: StoredVersion, diff: str = "") -> router_pb2.RulesVersion:
    return router_pb2.RulesVersion(
        version=stored.version,
        yaml=stored.yaml,
        json=stored.json,
        created_at=to_timestamp(stored.created_at),
        author=stored.author,
        comment=stored.comment,
        diff_to_previous=diff,
    )


def _record_outcome(
    reply: referral_pb2.RecordConversionResponse | traffic_pb2.RecordSaleResponse,
) -> router_pb2.LegOutcome:
    if reply.superseded:
        return SUPERSEDED
    if reply.reattributed:
        return REATTRIBUTED
    return DUPLICATE if reply.duplicate else RECORDED


def _reversal_outcome(outcome: int) -> router_pb2.LegOutcome:
    return REVERSED if outcome == deal_pb2.REVERSAL_OUTCOME_REVERSED else DUPLICATE


def _withdrawal_outcome(outcome: int) -> router_pb2.LegOutcome:
    # Nothing withdrawn (no credit, or reversed already): already so.
    return WITHDRAWN if outcome == deal_pb2.REVERSAL_OUTCOME_REVERSED else DUPLICATE


def _leg(name: str, call: Callable[[], router_pb2.LegOutcome]) -> router_pb2.LegResult:
    """Run one downstream call; `call` returns the leg's outcome."""
    try:
        outcome = call()
    except grpc.RpcError as exc:
        return _failed_leg(name, exc)
    return router_pb2.LegResult(leg=name, outcome=outcome)


def _failed_leg(name: str, exc: grpc.RpcError) -> router_pb2.LegResult:
    code = exc.code().name if exc.code() else "UNKNOWN"
    return router_pb2.LegResult(leg=name, outcome=FAILED, error=f"{code}: {exc.details()}")


def overall_status(legs: list[router_pb2.LegResult]) -> router_pb2.ProcessingStatus:
    failed = sum(leg.outcome == FAILED for leg in legs)
    if not failed:
        return router_pb2.PROCESSING_STATUS_SUCCESS
    if failed == len(legs):
        return router_pb2.PROCESSING_STATUS_ERROR
    return router_pb2.PROCESSING_STATUS_PARTIAL


class RouterService(router_pb2_grpc.RouterServiceServicer):
    """Implements amoroute.v1.RouterService (registered via the generated adder)."""

    def __init__(
        self,
        rules: DatabaseRules | RulesFile,
        downstream: Downstream,
        pool: ThreadPoolExecutor,
        leg_timeout_s: float,
        tokens: CallerTokens | None = None,
    ) -> None:
        self.rules = rules
        self.downstream = downstream
        self.pool = pool
        self.leg_timeout_s = leg_timeout_s
        self.tokens = tokens or CallerTokens()

    def ExplainRoute(
        self, request: router_pb2.ExplainRouteRequest, context: grpc.ServicerContext
    ) -> router_pb2.ExplainRouteResponse:
        """The decision for the deal, with no side effects; under the candidate rules
        when the request carries some."""
        _validate(request.deal)
        candidate = validation.text(
            "candidate_rules_yaml", request.candidate_rules_yaml, max_len=MAX_RULES_CHARS
        )
        rules = _candidate_rules(candidate) if candidate.strip() else self.rules.get()
        return router_pb2.ExplainRouteResponse(route=decide(request.deal, rules))

    def BatchExplainRoutes(
        self, request: router_pb2.BatchExplainRoutesRequest, context: grpc.ServicerContext
    ) -> router_pb2.BatchExplainRoutesResponse:
        """Each deal's decision under the rules in force and, when the request carries
        candidate rules, under those too; no side effects."""
        if len(request.deals) > MAX_EXPLAIN_DEALS:
            raise InvalidArgument(
                "deals", f"at most {MAX_EXPLAIN_DEALS} per call, got {len(request.deals)}"
            )
        candidate_text = validation.text(
            "candidate_rules_yaml", request.candidate_rules_yaml, max_len=MAX_RULES_CHARS
        )
        candidate = _candidate_rules(candidate_text) if candidate_text.strip() else None
        for i, deal in enumerate(request.deals):
            try:
                _validate(deal)
            except InvalidArgument as exc:
                raise InvalidArgument(
                    f"deals[{i}].{exc.field.removeprefix('deal.')}", exc.problem
                ) from None
        current = self.rules.get()
        version = self.rules.version
        if candidate is None:
            results = [
                router_pb2.ExplainedRoute(current=decide(deal, current)) for deal in request.deals
            ]
        else:
            results = [
                router_pb2.ExplainedRoute(current=now, candidate=then)
                for now, then in decide_twice(request.deals, current, candidate)
            ]
        return router_pb2.BatchExplainRoutesResponse(results=results, rules_version=version)

    def DescribeRules(
        self, request: router_pb2.DescribeRulesRequest, context: grpc.ServicerContext
    ) -> router_pb2.DescribeRulesResponse:
        """The rules in force on this replica and where they came from."""
        rules = self.rules.get()
        loaded = Timestamp()
        loaded.FromNanoseconds(int(self.rules.loaded_at * 1e9))
        return router_pb2.DescribeRulesResponse(
            pipeline_ids=sorted(rules.pipelines),
            won_status_ids=sorted(rules.won_status_ids),
            referral_prefix=rules.referral_prefix,
            targetologists=[t.name for t in rules.targetologists],
            path=str(self.rules.path) if isinstance(self.rules, RulesFile) else "",
            loaded_at=loaded,
            version=self.rules.version,
        )

    def SuggestOwners(
        self, request: router_pb2.SuggestOwnersRequest, context: grpc.ServicerContext
    ) -> router_pb2.SuggestOwnersResponse:
        """Likely owners of groups of unknown sales' marks, with the rule changes that
        credit them (and, given a base document, that document with them applied)."""
        groups, codes = _suggestion_input(request)
        document: dict[str, Any] | None = None
        rules = self.rules.get()
        if request.base_rules_yaml:
            document, rules = _base_rules(request.base_rules_yaml)
        results = []
        for group in groups:
            suggestions = []
            for found in suggest_for_group(group, rules, codes):
                best = found.best
                suggestions.append(
                    router_pb2.OwnerSuggestion(
                        kind=_SUGGESTION_KINDS[best.kind],
                        target=best.target,
                        why=best.why,
                        typos=best.typos,
                        changes=[router_pb2.RuleChange(**change) for change in found.changes],
                        marks_covered=found.marks_covered,
                        proposed_rules_yaml=(
                            "" if document is None else proposed_yaml(document, found.changes)
                        ),
                    )
                )
            results.append(router_pb2.SuggestOwnersResult(suggestions=suggestions))
        return router_pb2.SuggestOwnersResponse(results=results)

    def GetRules(
        self, request: router_pb2.GetRulesRequest, context: grpc.ServicerContext
    ) -> router_pb2.GetRulesResponse:
        """The newest rules document with its version, and where the rules come from."""
        if isinstance(self.rules, DatabaseRules):
            return router_pb2.GetRulesResponse(
                current=_version_message(self.rules.latest()),
                source=router_pb2.RULES_SOURCE_DATABASE,
            )
        text, validated = self.rules.text()
        loaded = Timestamp()
        loaded.FromNanoseconds(int(self.rules.loaded_at * 1e9))
        return router_pb2.GetRulesResponse(
            current=router_pb2.RulesVersion(
                version=0,
                yaml=text,
                json=validated,
                created_at=loaded,
                author=SEED_AUTHOR,
                comment=f"the rules file {self.rules.path} (ROUTING_RULES_SOURCE=file)",
            ),
            source=router_pb2.RULES_SOURCE_FILE,
            path=str(self.rules.path),
        )

    def ListRulesVersions(
        self, request: router_pb2.ListRulesVersionsRequest, context: grpc.ServicerContext
    ) -> router_pb2.ListRulesVersionsResponse:
        """Stored versions newest first, each with its diff to the one before; none
        when the rules come from a file (its history is the file's, in git)."""
        if not isinstance(self.rules, DatabaseRules):
            paging.page_size(request.page_size)
            paging.decode_token(request.page_token)
            return router_pb2.ListRulesVersionsResponse()
        page, token = paging.fetch_page(
            request, self.rules.page, VERSIONS_PAGE_SIZE, MAX_VERSIONS_PAGE_SIZE
        )
        by_version = {stored.version: stored for stored in page}
        if page and page[-1].version > 1:
            before_page = self.rules.get_version(page[-1].version - 1)
            if before_page:
                by_version[before_page.version] = before_page
        return router_pb2.ListRulesVersionsResponse(
            versions=[
                _version_message(
                    stored, diff_to_previous(by_version.get(stored.version - 1), stored)
                )
                for stored in page
            ],
            next_page_token=token,
        )

    def UpdateRules(
        self, request: router_pb2.UpdateRulesRequest, context: grpc.ServicerContext
    ) -> router_pb2.UpdateRulesResponse:
        """Store a new version of the rules if it validates and the editor started from
        the newest version."""
        if not isinstance(self.rules, DatabaseRules):
            raise FailedPrecondition(
                f"the routing rules are managed in the file {self.rules.path} "
                "(ROUTING_RULES_SOURCE=file): edit that file (in git) and deploy it; every "
                "router reloads it within a second. To edit them here instead, set "
                "ROUTING_RULES_SOURCE=database (the file then seeds an empty database).",
            )
        validation.text("yaml", request.yaml, required=True, max_len=MAX_RULES_CHARS)
        validation.not_negative("expected_version", request.expected_version)
        validation.text("author", request.author, max_len=MAX_AUTHOR_CHARS)
        validation.text("comment", request.comment, max_len=MAX_COMMENT_CHARS)
        author = request.author.strip() or caller_of_call(context, self.tokens) or OPERATOR
        try:
            stored = self.rules.update(
                request.yaml, request.expected_version, author, request.comment.strip()
            )
        except RulesError as exc:
            raise InvalidArgument("yaml", str(exc)) from None
        except StaleVersion as exc:
            raise Aborted(str(exc)) from None
        return router_pb2.UpdateRulesResponse(version=_version_message(stored))

    def RouteDeal(
        self, request: router_pb2.RouteDealRequest, context: grpc.ServicerContext
    ) -> router_pb2.RouteDealResponse:
        """Decide, then run the legs the decision needs, in parallel."""
        [result] = self._route([request], self._leg_timeout(context))
        if isinstance(result, InvalidArgument):
            raise result
        return result

    def BatchRouteDeals(
        self, request: router_pb2.BatchRouteDealsRequest, context: grpc.ServicerContext
    ) -> router_pb2.BatchRouteDealsResponse:
        """Route several deals with one downstream call per service; a rejected
        deal gets its own error and the others are routed."""
        validation.batch_size(request.requests)
        results = self._route(list(request.requests), self._leg_timeout(context))
        return router_pb2.BatchRouteDealsResponse(
            results=[
                router_pb2.RouteDealResult(invalid_argument=str(r.within(f"requests[{i}]")))
                if isinstance(r, InvalidArgument)
                else router_pb2.RouteDealResult(response=r)
                for i, r in enumerate(results)
            ]
        )

    def _leg_timeout(self, context: grpc.ServicerContext) -> float:
        # Never wait on a leg longer than the caller waits on us.
        remaining = context.time_remaining()
        return self.leg_timeout_s if remaining is None else min(self.leg_timeout_s, remaining)

    def _route(
        self, requests: list[router_pb2.RouteDealRequest], timeout: float
    ) -> list[router_pb2.RouteDealResponse | InvalidArgument]:
        rules = self.rules.get()
        results: dict[int, router_pb2.RouteDealResponse | InvalidArgument] = {}
        for round_ in _rounds(requests):
            legs = BatchLegs(self.downstream, timeout)
            planned: dict[int, router_pb2.Route] = {}
            for i in round_:
                request = requests[i]
                try:
                    _validate(request.deal)
                    skip = set(request.skip_legs)
                    if not skip <= LEGS:
                        raise InvalidArgument("skip_legs", f"unknown legs {sorted(skip - LEGS)}")
                except InvalidArgument as exc:
                    results[i] = exc
                    continue
                planned[i] = route = decide(request.deal, rules)
                if request.reattribution:
                    legs.plan_reattribution(i, request.deal, route, skip, request.announce)
                else:
                    legs.plan(i, request.deal, route, skip)
            by_deal = legs.run(self.pool)
            for i, route in planned.items():
                ran = by_deal.get(i, [])
                results[i] = router_pb2.RouteDealResponse(
                    route=route, status=overall_status(ran), legs=ran
                )
        ordered = [results[i] for i in range(len(requests))]
        _log_routed(requests, ordered)
        return ordered


def _rounds(requests: list[router_pb2.RouteDealRequest]) -> list[list[int]]:
    """The requests' indexes in rounds where each lead appears at most once, so
    that several events of one lead in a batch are routed one after the other,
    in the order they came (a "lost" before its older "won" must be known when
    the "won" is recorded, or the sale would be announced)."""
    seen: dict[tuple[int, int], int] = {}
    rounds: list[list[int]] = []
    for i, request in enumerate(requests):
        key = (request.deal.account_id, request.deal.lead_id)
        n = seen[key] = seen.get(key, -1) + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(i)
    return rounds


def _log_routed(
    requests: list[router_pb2.RouteDealRequest],
    results: list[router_pb2.RouteDealResponse | InvalidArgument],
) -> None:
    """One log line per call: each deal's lead, decision and legs, with the
    request id of the webhook that brought it, so a grep for either finds it."""
    deals = []
    for request, result in zip(requests, results, strict=True):
        deal: dict[str, object] = {"lead_id": request.deal.lead_id}
        if request.request_id:
            deal["request_id"] = request.request_id
        if isinstance(result, InvalidArgument):
            deal["rejected"] = str(result)
        else:
            deal["decision"] = _DECISIONS[result.route.decision]
            deal["legs"] = {leg.leg: _LEG_OUTCOMES[leg.outcome] for leg in result.legs}
            if result.route.reversal:
                deal["reversal"] = True
        deals.append(deal)
    log.info("deals routed", extra={"deals": deals})


_DECISIONS = {
    value: name.removeprefix("ROUTING_DECISION_").lower()
    for name, value in router_pb2.RoutingDecision.items()
}
_LEG_OUTCOMES = {
    value: name.removeprefix("LEG_OUTCOME_").lower()
    for name, value in router_pb2.LegOutcome.items()
}


# The legs' batch writes answer with outcomes only: the router reads nothing else.
_OUTCOME = deal_pb2.WRITE_VIEW_OUTCOME

# Where each leg's result goes in a deal's list: reversals, then referral, traffic, notifier.
_REVERSE_REFERRAL, _REVERSE_TRAFFIC, _REFERRAL, _TRAFFIC, _NOTIFIER = range(5)
# (deal's index in the batch, position in the deal's list, result)
Placed = tuple[int, int, router_pb2.LegResult]


class BatchLegs:
    """The downstream calls for a batch of routed deals: one call per service for
    every credit and announcement of the batch, and one per reversal (rare)."""

    def __init__(self, downstream: Downstream, timeout: float) -> None:
        self.down = downstream
        self.timeout = timeout
        self.conversions: dict[int, referral_pb2.RecordConversionRequest] = {}
        self.sales: dict[int, traffic_pb2.RecordSaleRequest] = {}
        # Announced once their sale is recorded (or was, on an earlier attempt).
        self.notices: dict[int, notifier_pb2.NotifyRequest] = {}
        self.reversals: list[Callable[[], Placed]] = []
        # Deals whose notice goes only with a sale newly credited (re-attribution).
        self.announce_new: set[int] = set()

    def plan(self, i: int, deal: deal_pb2.Deal, route: router_pb2.Route, skip: set[str]) -> None:
        """Add the legs deal number `i` needs, except those in `skip`."""
        if route.reversal:
            reversal = {
                "lead_id": deal.lead_id,
                "account_id": deal.account_id,
                "reversed_at": deal.updated_at,
                "reason": f"status {deal.old_status_id} -> {deal.status_id}",
            }
            if "referral" not in skip:
                self.reversals.append(
                    self._reversal(
                        i,
                        _REVERSE_REFERRAL,
                        "referral",
                        self.down.referral.ReverseConversion,
                        referral_pb2.ReverseConversionRequest(**reversal),
                    )
                )
            if "traffic" not in skip:
                self.reversals.append(
                    self._reversal(
                        i,
                        _REVERSE_TRAFFIC,
                        "traffic",
                        self.down.traffic.ReverseSale,
                        traffic_pb2.ReverseSaleRequest(**reversal),
                    )
                )
        if route.decision in REFERRAL_DECISIONS and "referral" not in skip:
            self.conversions[i] = _conversion(deal, route)
        if route.decision not in TRAFFIC_DECISIONS:
            return
        if "traffic" not in skip:
            self.sales[i] = _sale(deal, route)
        if "notifier" not in skip:
            self.notices[i] = _notice(deal, route)

    def plan_reattribution(
        self,
        i: int,
        deal: deal_pb2.Deal,
        route: router_pb2.Route,
        skip: set[str],
        announce: bool,
    ) -> None:
        """Add the legs that re-attribute deal number `i` by `route`, except those
        in `skip`: each service the decision includes credits its beneficiary in
        place of another; each other one withdraws the lead's credit."""
        if route.needs_lead_data:
            return  # nothing known to decide on: every credit stays as it is
        lead, account = deal.lead_id, deal.account_id
        why = f"{WITHDRAWAL_REASON}: {route.reason}"[:500]
        if "referral" in skip:
            pass
        elif route.decision in REFERRAL_DECISIONS:
            self.conversions[i] = _conversion(deal, route, reattribute=True)
        else:
            self.reversals.append(
                self._reversal(
                    i,
                    _REFERRAL,
                    "referral",
                    self.down.referral.WithdrawConversion,
                    referral_pb2.WithdrawConversionRequest(
                        lead_id=lead, account_id=account, reason=why
                    ),
                    _withdrawal_outcome,
                )
            )
        if "traffic" in skip:
            pass
        elif route.decision in TRAFFIC_DECISIONS:
            self.sales[i] = _sale(deal, route, reattribute=True)
        else:
            self.reversals.append(
                self._reversal(
                    i,
                    _TRAFFIC,
                    "traffic",
                    self.down.traffic.WithdrawSale,
                    traffic_pb2.WithdrawSaleRequest(lead_id=lead, account_id=account, reason=why),
                    _withdrawal_outcome,
                )
            )
        if announce and route.decision in TRAFFIC_DECISIONS and "notifier" not in skip:
            self.notices[i] = _notice(deal, route)
            self.announce_new.add(i)

    def run(self, pool: ThreadPoolExecutor) -> dict[int, list[router_pb2.LegResult]]:
        """Run every planned call, the services in parallel; each deal's leg results."""
        # Credits first, reversals after: a batch can hold a lead's "won" and its
        # later "lost", and a reversal finds the sale it undoes already stored.
        placed = _in_parallel(pool, [self._referral, self._traffic_then_notify])
        placed += _in_parallel(pool, [_as_list(reversal) for reversal in self.reversals])
        placed.sort(key=lambda p: (p[0], p[1]))
        by_deal: dict[int, list[router_pb2.LegResult]] = {}
        for i, _, leg in placed:
            by_deal.setdefault(i, []).append(leg)
        return by_deal

    def _referral(self) -> list[Placed]:
        return _batch(
            "referral",
            _REFERRAL,
            self.conversions,
            lambda requests: (
                self.down.referral.BatchRecordConversions(
                    referral_pb2.BatchRecordConversionsRequest(requests=requests, view=_OUTCOME),
                    timeout=self.timeout,
                ).responses
            ),
            _record_outcome,
        )

    def _traffic_then_notify(self) -> list[Placed]:
        placed = _batch(
            "traffic",
            _TRAFFIC,
            self.sales,
            lambda requests: (
                self.down.traffic.BatchRecordSales(
                    traffic_pb2.BatchRecordSalesRequest(requests=requests, view=_OUTCOME),
                    timeout=self.timeout,
                ).responses
            ),
            _record_outcome,
        )
        # Nothing to announce for a failed or superseded sale.
        unsold = {i for i, _, leg in placed if leg.outcome in (FAILED, SUPERSEDED)}
        if self.announce_new:
            # A re-attribution announces only a sale it credited.
            unsold |= {
                i
                for i, _, leg in placed
                if i in self.announce_new and leg.outcome not in (RECORDED, REATTRIBUTED)
            }
        notices = {i: n for i, n in self.notices.items() if i not in unsold}
        # Notify is idempotent too, so a repeat after a failed announcement completes it.
        return placed + _batch(
            "notifier",
            _NOTIFIER,
            notices,
            lambda requests: (
                self.down.notifier.BatchNotify(
                    notifier_pb2.BatchNotifyRequest(requests=requests, view=_OUTCOME),
                    timeout=self.timeout,
                ).responses
            ),
            lambda reply: DUPLICATE if reply.duplicate else RECORDED,
        )

    def _reversal(
        self,
        i: int,
        position: int,
        name: str,
        rpc: Callable[..., Any],
        request: Any,
        outcome_of: Callable[[int], router_pb2.LegOutcome] = _reversal_outcome,
    ) -> Callable[[], Placed]:
        """The call that reverses (or withdraws) deal number `i`'s credit in one
        service (leg `name`, at `position` in the deal's list)."""

        def reverse() -> Placed:
            leg = _leg(name, lambda: outcome_of(rpc(request, timeout=self.timeout).outcome))
            return i, position, leg

        return reverse


def _conversion(
    deal: deal_pb2.Deal, route: router_pb2.Route, reattribute: bool = False
) -> referral_pb2.RecordConversionRequest:
    return referral_pb2.RecordConversionRequest(
        conversion=referral_pb2.Conversion(
            lead_id=deal.lead_id,
            account_id=deal.account_id,
            referral_code=route.referral_code,
            amount=deal.price,
            deal_name=deal.name,
            won_at=deal.updated_at,
            utm=route.utm,
        ),
        reattribute=reattribute,
    )


def _sale(
    deal: deal_pb2.Deal, route: router_pb2.Route, reattribute: bool = False
) -> traffic_pb2.RecordSaleRequest:
    return traffic_pb2.RecordSaleRequest(
        sale=traffic_pb2.Sale(
            lead_id=deal.lead_id,
            account_id=deal.account_id,
            targetologist=route.targetologist,
            utm=route.utm,
            amount=deal.price,
            deal_name=deal.name,
            won_at=deal.updated_at,
        ),
        reattribute=reattribute,
    )


def _notice(deal: deal_pb2.Deal, route: router_pb2.Route) -> notifier_pb2.NotifyRequest:
    return notifier_pb2.NotifyRequest(
        lead_id=deal.lead_id,
        account_id=deal.account_id,
        account_subdomain=deal.account_subdomain,
        deal_name=deal.name,
        amount=deal.price,
        targetologist=route.targetologist,
        utm=route.utm,
        chat_id=route.telegram_chat_id,
    )


def _as_list(job: Callable[[], Placed]) -> Callable[[], list[Placed]]:
    return lambda: [job()]


def _in_parallel(pool: ThreadPoolExecutor, jobs: list[Callable[[], list[Placed]]]) -> list[Placed]:
    # Each job runs in the caller's context, so the request id goes along.
    futures: list[Future[list[Placed]]] = [
        pool.submit(contextvars.copy_context().run, job) for job in jobs
    ]
    return [p for f in futures for p in f.result()]


def _batch(
    name: str,
    position: int,
    requests: dict[int, Any],
    call: Callable[[list[Any]], Sequence[Any]],
    outcome_of: Callable[[Any], router_pb2.LegOutcome],
) -> list[Placed]:
    """One batch call for the legs named `name` of several deals; a failed call
    fails the leg of each of them."""
    if not requests:
        return []
    try:
        replies = call(list(requests.values()))
    except grpc.RpcError as exc:
        failed = _failed_leg(name, exc)
        return [(i, position, failed) for i in requests]
    return [
        (i, position, router_pb2.LegResult(leg=name, outcome=outcome_of(reply)))
        for i, reply in zip(requests, replies, strict=True)
    ]
