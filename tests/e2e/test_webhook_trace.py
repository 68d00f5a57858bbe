"""One webhook is one trace: every process of the real stack exports its spans over
OTLP to a local receiver, and the webhook's spans share one trace id from the
edge's request through the router and each leg to the Telegram send."""

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.support.fake_telegram import FakeTelegram
from tests.support.forms import encode, won_deal_body
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.stack import RunningStack, start_stack
from tests.support.waiting import eventually

BOT_TOKEN = "123456:trace-test-token"


@pytest.fixture(scope="module")
def traced(make_database, tmp_path_factory) -> Iterator[tuple[RunningStack, OtlpReceiver]]:  # type: ignore[no-untyped-def]
    with FakeTelegram() as telegram, OtlpReceiver() as otlp:
        running = start_stack(
            {n: make_database(n) for n in ("edge", "router", "referral", "traffic", "notifier")},
            tmp_path_factory.mktemp("stack"),
            TELEGRAM_API_URL=telegram.url,
            TELEGRAM_BOT_TOKEN=BOT_TOKEN,
            AMOCRM_DOMAIN="onaiagencykz",
            OTEL_EXPORTER_OTLP_ENDPOINT=otlp.grpc_endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
            OTEL_TRACES_SAMPLER="parentbased_always_on",
            # Spans leave each process a tenth of a second after they end.
            OTEL_BSP_SCHEDULE_DELAY="100",
        )
        try:
            yield running, otlp
        finally:
            running.stack.stop()


def webhook_span(otlp: OtlpReceiver, request_id: str) -> ReceivedSpan | None:
    for span in otlp.spans:
        if span.service == "edge" and span.kind == "server" and (
            span.attributes.get("request_id") == request_id
        ):
            return span
    return None


def services_in(otlp: OtlpReceiver, trace_id: str) -> set[str]:
    return {span.service for span in otlp.spans if span.trace_id == trace_id}


def test_one_webhook_is_one_trace_across_every_process(traced) -> None:  # type: ignore[no-untyped-def]
    running, otlp = traced
    body = encode(won_deal_body(7770001, "ref_TRACE1", "kenesary_trace", price=51000))
    reply = httpx.post(
        f"{running.edge_url}/webhook/amocrm",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status_code == 200, reply.text
    request_id = reply.headers["X-Request-Id"]

    edge_span = eventually(lambda: webhook_span(otlp, request_id), timeout=20)
    assert edge_span is not None, [s.name for s in otlp.spans]
    trace_id = edge_span.trace_id
    # The routing, done on the edge's routing thread after the answer, is in the trace.
    routed = {
        ("edge", "route deals"),
        ("edge", "/amoroute.v1.RouterService/BatchRouteDeals"),
        ("router", "/amoroute.v1.RouterService/BatchRouteDeals"),
    }

    def names() -> set[tuple[str, str]]:
        return {(s.service, s.name) for s in otlp.spans if s.trace_id == trace_id}

    assert eventually(lambda: routed <= names(), timeout=20), names()
    wanted = {"edge", "router", "referral", "traffic", "notifier"}
    assert eventually(lambda: wanted <= services_in(otlp, trace_id), timeout=20), names()

    def orphans() -> list[str]:
        # A parent ends, and is exported, after its children: waited for.
        spans = [s for s in otlp.spans if s.trace_id == trace_id]
        ids = {s.span_id for s in spans}
        return [s.name for s in spans if s.parent_span_id and s.parent_span_id not in ids]

    # Every span but the webhook's has its parent in the same trace.
    assert eventually(lambda: not orphans(), timeout=20), orphans()
    spans = [s for s in otlp.spans if s.trace_id == trace_id]
    assert [s for s in spans if not s.parent_span_id] == [edge_span]
    # The request id is still there to find the trace by, on the routing's span too.
    [route] = [s for s in spans if s.name == "route deals"]
    assert route.attributes["request_ids"] == [request_id]


def test_telegram_send_from_the_outbox_joins_the_webhooks_trace(traced) -> None:  # type: ignore[no-untyped-def]
    running, otlp = traced
    body = encode(won_deal_body(7770002, "kenesary_outbox", price=52000))
    reply = httpx.post(
        f"{running.edge_url}/webhook/amocrm",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status_code == 200
    edge_span = eventually(lambda: webhook_span(otlp, reply.headers["X-Request-Id"]), timeout=20)
    assert edge_span is not None

    def sends() -> list[ReceivedSpan]:
        return [
            s for s in otlp.spans
            if s.trace_id == edge_span.trace_id and s.service == "notifier"
            and s.name == "telegram send"
        ]

    [send] = eventually(sends, timeout=20)
    # Its HTTP request to the Bot API is under it, without the bot's token.
    [request] = eventually(
        lambda: [s for s in otlp.spans if s.parent_span_id == send.span_id], timeout=20
    )
    assert request.kind == "client"
    assert BOT_TOKEN not in json.dumps(request.attributes)


def test_log_lines_carry_the_trace_and_span_ids(traced) -> None:  # type: ignore[no-untyped-def]
    running, otlp = traced
    body = encode(won_deal_body(7770003, "kenesary_logs"))
    reply = httpx.post(
        f"{running.edge_url}/webhook/amocrm",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    request_id = reply.headers["X-Request-Id"]
    edge_span = eventually(lambda: webhook_span(otlp, request_id), timeout=20)
    assert edge_span is not None

    def answered() -> list[dict]:
        lines = []
        for text in running.output().splitlines():
            try:
                line = json.loads(text)
            except ValueError:
                continue
            if line.get("msg") == "webhook answered" and line.get("request_id") == request_id:
                lines.append(line)
        return lines

    [line] = eventually(answered, timeout=20)
    assert line["trace_id"] == edge_span.trace_id
    assert len(line["span_id"]) == 16


def test_the_workers_retry_links_to_the_webhooks_trace(traced) -> None:  # type: ignore[no-untyped-def]
    running, otlp = traced
    stack = running.stack
    traffic = stack.procs["traffic_svc"]
    traffic.terminate()
    traffic.wait(30)
    try:
        body = encode(won_deal_body(7770004, "kenesary_retry", price=54000))
        reply = httpx.post(
            f"{running.edge_url}/webhook/amocrm",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert reply.status_code == 200
        edge_span = eventually(lambda: webhook_span(otlp, reply.headers["X-Request-Id"]), timeout=20)
        assert edge_span is not None
        # The traffic leg failed on the edge's routing: the event waits for a retry.
        assert eventually(
            lambda: any(
                s.service == "router" and s.trace_id == edge_span.trace_id
                and s.name == "/amoroute.v1.TrafficService/BatchRecordSales"
                for s in otlp.spans
            ),
            timeout=20,
        )
    finally:
        stack.start_process("traffic_svc")

    def retries() -> list[ReceivedSpan]:
        return [
            s for s in otlp.spans
            if s.service == "edge-worker" and s.name == "route deals"
            and edge_span.trace_id in s.linked_traces
        ]

    def credited_by_a_retry() -> list[ReceivedSpan]:
        return [s for s in retries() if "traffic" in services_in(otlp, s.trace_id)]

    # Each retry is a trace of its own, linked to the webhook's; one reaches the
    # restarted service.
    [retry, *_] = eventually(credited_by_a_retry, timeout=90)
    assert retry.trace_id != edge_span.trace_id
