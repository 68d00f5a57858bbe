"""Request ids, access logs and Prometheus metrics of the edge.

gunicorn runs several worker processes, so metrics use prometheus_client's
multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set up by edge/gunicorn_conf.py):
each scrape of /metrics sums every worker's figures.
"""

import logging
import os
import time
from typing import Any

import falcon
import prometheus_client
from prometheus_client import multiprocess

from amoroute import requestid, tracing
from edge.access import public_resource
from edge.hook_health import InvalidAnswerRecorder, invalid_cause

log = logging.getLogger("edge.http")

WEBHOOKS = prometheus_client.Counter(
    "amoroute_webhooks_total",
    "Lead events received by webhook, by routing decision and processing status at answer time.",
    ["routing", "status"],
)
ACK_SECONDS = prometheus_client.Histogram(
    "amoroute_webhook_ack_seconds",
    "Time from receiving a webhook to answering AmoCRM.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 5),
)


class RequestContext:
    """Falcon middleware: every request gets an id (the caller's X-Request-Id when
    requestid.accept takes it, or a new one) that goes into each log line, the
    answer's X-Request-Id and every gRPC call it makes. With `invalid_answers`, every
    webhook answer AmoCRM would count invalid (outside 2xx, or slower than 2 s) is counted."""

    def __init__(self, invalid_answers: InvalidAnswerRecorder | None = None) -> None:
        self.invalid_answers = invalid_answers

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        request_id = requestid.accept(req.get_header("X-Request-Id"))
        req.context.request_id = request_id
        req.context.started = time.perf_counter()
        req.context.token = requestid.set_current(request_id)
        tracing.tag_request_id(request_id)
        resp.set_header("X-Request-Id", request_id)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        started = getattr(req.context, "started", None)
        if started is None:
            return
        elapsed = time.perf_counter() - started
        if req.path.startswith("/webhook/amocrm") and req.method == "POST":
            ACK_SECONDS.observe(elapsed)
            # PERF: no I/O on the answer's path: the check costs ~1 µs, counting an invalid
            # answer ~11 µs (a lock, a dict), a thread writes it; measured by python -m timeit
            # -s 'from edge.hook_health import invalid_cause' 'invalid_cause("200 OK", 0.01)'
            if self.invalid_answers is not None and (cause := invalid_cause(resp.status, elapsed)):
                self.invalid_answers.record(cause)
            # The path may carry the webhook secret: never log it. One line per
            # webhook, with the log ids and leads the resource logged, if any.
            log.info(
                "webhook answered",
                extra={
                    "status": resp.status,
                    "duration_ms": round(elapsed * 1000, 1),
                    **getattr(req.context, "logged", {}),
                },
            )
        requestid.set_current("")


def unhandled_error(
    req: falcon.Request, resp: falcon.Response, error: Exception, params: dict[str, Any]
) -> None:
    """Falcon error handler for an exception no resource handled: a 500 and one log line
    with the traceback. Falcon's own handler writes the request's path to wsgi.errors,
    a stream gunicorn writes straight to stderr, past logging and its secret redaction,
    and a webhook's path carries WEBHOOK_SECRET: this line names the route template."""
    log.error(
        "unhandled error",
        exc_info=error,
        extra={"method": req.method, "route": req.uri_template or "(no route)"},
    )
    raise falcon.HTTPInternalServerError()


@public_resource
class MetricsResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = prometheus_client.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = prometheus_client.REGISTRY
        resp.content_type = prometheus_client.CONTENT_TYPE_LATEST
        resp.data = prometheus_client.generate_latest(registry)
