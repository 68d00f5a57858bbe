"""OpenTelemetry traces for every process, set up once at start-up.

Configured by the standard OTEL_* environment variables alone, and off unless an
OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): with tracing off nothing is instrumented,
no exporter runs and every helper here returns at once. With it on, each process
names itself (service.name edge, edge-worker, router, ...) unless
OTEL_SERVICE_NAME says otherwise, exports over OTLP (OTEL_EXPORTER_OTLP_PROTOCOL
grpc or http/protobuf), samples as OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG
say (the SDK reads them, and the other OTEL_* variables, itself), and traces:

- gRPC calls, both ways (the W3C traceparent travels in the call's metadata);
- the edge's HTTP requests (Falcon), but not its probes and /metrics, without the
  webhook secret of their path or any query string;
- SQLAlchemy statements and httpx requests (AmoCRM, Telegram) made inside a trace.

A database statement or an HTTP request made outside any trace (a poll of the
retry worker, of the notifier's outbox) starts no trace of its own: such a root
span is dropped, so a sampled trace is always about a webhook, a call or a job.
"""

import logging
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

from amoroute.settings import CommonSettings

log = logging.getLogger(__name__)

# The edge's probes and metrics scrapes are no one's webhook (the Falcon
# instrumentation's own variable, when set, wins).
_EXCLUDED_URLS = "healthz,readyz,metrics"
# HTTP spans (Falcon, httpx) in the stable semantic conventions (http.request.method,
# url.path, http.response.status_code) rather than the old ones, unless
# OTEL_SEMCONV_STABILITY_OPT_IN says otherwise. PERF: the instrumentation collects fewer
# attributes on every request, sampled or not; measured by python -m bench.http_tracing
_HTTP_SEMCONV = "http"
# The Telegram Bot API takes its token in the path: /bot<token>/sendMessage.
_BOT_TOKEN = re.compile(r"/bot[^/]+/")
_URL_ATTRIBUTES = ("url.full", "http.url")
# The edge's webhook path carries WEBHOOK_SECRET: /webhook/amocrm/<secret>.
_WEBHOOK_SECRET = re.compile(r"(/webhook/amocrm/)[^/?#]+")
_REQUEST_ATTRIBUTES = ("http.target", "url.path", "http.url", "url.full", "url.query")

_provider: TracerProvider | None = None


def enabled() -> bool:
    """Whether this process traces (setup_tracing found an endpoint)."""
    return _provider is not None


class NoOrphanClientSpans(Sampler):
    """The configured sampler, except that a CLIENT span with no parent (a
    database statement or an HTTP request made outside any trace) is dropped."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if kind == SpanKind.CLIENT and not links:
            parent = trace.get_current_span(parent_context).get_span_context()
            if not parent.is_valid:
                return SamplingResult(Decision.DROP)
        return self.sampler.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NoOrphanClientSpans{{{self.sampler.get_description()}}}"


def _exporter(settings: CommonSettings) -> SpanExporter:
    protocol = settings.otel_exporter_otlp_traces_protocol or settings.otel_exporter_otlp_protocol
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter()


def _redact_url(span: trace.Span, request: Any, *_: Any) -> None:
    """httpx request hook: the Bot API token in a Telegram URL is kept out of traces
    (the AmoCRM client's token travels in a header, which is not recorded)."""
    attributes = getattr(span, "attributes", None) or {}
    for key in _URL_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, str) and _BOT_TOKEN.search(value):
            span.set_attribute(key, _BOT_TOKEN.sub("/bot***/", value))


def _redact_request(span: trace.Span, req: Any, *_: Any) -> None:
    """Falcon response hook: the webhook secret in the path, and every query string (the
    OAuth callback's carries an authorisation code), are kept out of traces."""
    attributes = getattr(span, "attributes", None) or {}
    for key in _REQUEST_ATTRIBUTES:
        value = attributes.get(key)
        if not isinstance(value, str):
            continue
        clean = "" if key == "url.query" else _WEBHOOK_SECRET.sub(r"\1***", value.split("?")[0])
        if clean != value:
            span.set_attribute(key, clean)


def setup_tracing(service: str, settings: CommonSettings, http_server: bool = False) -> bool:
    """Trace this process when an OTLP endpoint is set; returns whether it does.

    `service` is this process's service.name unless OTEL_SERVICE_NAME is set;
    `http_server` instruments Falcon too (the edge). Call it once, before the
    process builds its engines, channels, servers and app (in a gunicorn
    worker: after the fork)."""
    global _provider
    if _provider is not None or not settings.tracing_configured():
        return _provider is not None
    # Read once, by the first instrumentation: before any is imported.
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", _HTTP_SEMCONV)
    from opentelemetry.instrumentation.grpc import (
        GrpcInstrumentorClient,
        GrpcInstrumentorServer,
        filters,
    )
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    resource = Resource.create({SERVICE_NAME: settings.otel_service_name or service})
    provider = TracerProvider(resource=resource)
    provider.sampler = NoOrphanClientSpans(provider.sampler)
    provider.add_span_processor(BatchSpanProcessor(_exporter(settings)))
    trace.set_tracer_provider(provider)
    _provider = provider

    not_health = filters.negate(
        filters.any_of(filters.health_check(), filters.service_prefix("grpc.reflection"))
    )
    GrpcInstrumentorServer(filter_=not_health).instrument()
    GrpcInstrumentorClient(filter_=not_health).instrument()
    # Its declared range ends before SQLAlchemy 2.1, whose engine events it uses are
    # unchanged (tests/unit/test_tracing_setup.py shows a statement traced).
    SQLAlchemyInstrumentor().instrument(skip_dep_check=True)
    HTTPXClientInstrumentor().instrument(request_hook=_redact_url)
    if http_server:
        from opentelemetry.instrumentation.falcon import FalconInstrumentor

        os.environ.setdefault("OTEL_PYTHON_FALCON_EXCLUDED_URLS", _EXCLUDED_URLS)
        FalconInstrumentor().instrument(response_hook=_redact_request)
    # Imported here: logging_setup -> requestid -> tracing.
    from amoroute import logging_setup

    logging_setup.set_trace_fields(_trace_fields)
    log.info(
        "tracing on",
        extra={
            "service_name": resource.attributes.get(SERVICE_NAME),
            "sampler": provider.sampler.get_description(),
        },
    )
    return True


def shutdown() -> None:
    """Export the spans still buffered (at a process's exit); once."""
    global _provider
    provider, _provider = _provider, None
    if provider is not None:
        provider.shutdown()


def _trace_fields() -> tuple[str, str] | None:
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return (
        trace.format_trace_id(span_context.trace_id),
        trace.format_span_id(span_context.span_id),
    )


def tag_request_id(request_id: str) -> None:
    """Put the request id on the current span, so the old way of following a
    webhook (its x-request-id) also finds its trace."""
    if _provider is not None and request_id:
        trace.get_current_span().set_attribute("request_id", request_id)


def current_context() -> Context | None:
    """The current trace context, to be carried to another thread (None when off)."""
    return otel_context.get_current() if _provider is not None else None


def traceparent() -> str:
    """The W3C traceparent of the current span, to be stored with work done later
    ("" when off or outside a trace)."""
    if _provider is None:
        return ""
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent", "")


def _span_context(carried: Context | str | None) -> tuple[Context, Link] | None:
    """The context and a link to the span of a carried context or traceparent."""
    if carried is None or carried == "":
        return None
    ctx = extract({"traceparent": carried}) if isinstance(carried, str) else carried
    span_context = trace.get_current_span(ctx).get_span_context()
    return (ctx, Link(span_context)) if span_context.is_valid else None


@contextmanager
def span_for(
    name: str,
    parents: Sequence[Context | str | None] = (),
    links: Sequence[Context | str | None] = (),
    **attributes: str | int | Sequence[str],
) -> Iterator[None]:
    """A span around work done for earlier requests, on another thread or later.

    `parents`: the contexts (current_context()) or traceparents of requests this
    work is part of, as the routing of a webhook or the send of its notification
    is: the span continues the first one's trace and links the others. `links`:
    those of requests it only follows from, as a retry does. With no parent it
    starts under the current context (a new trace on a thread of its own)."""
    if _provider is None:
        yield
        return
    parent: Context | None = None
    linked: list[Link] = []
    for item in parents:
        found = _span_context(item)
        if found is None:
            continue
        if parent is None:
            parent = found[0]
        else:
            linked.append(found[1])
    linked += [found[1] for item in links if (found := _span_context(item)) is not None]
    tracer = trace.get_tracer(__name__)
    with tracer.start_as_current_span(
        name, context=parent, links=linked, attributes=attributes or None
    ):
        yield
