"""Prometheus metrics of the gRPC servers, and the /metrics port each service opens."""

import time
from typing import Any

import grpc
import prometheus_client

HANDLED = prometheus_client.Counter(
    "amoroute_grpc_server_handled_total",
    "gRPC calls handled, by service, method and status code.",
    ["service", "method", "code"],
)
HANDLING = prometheus_client.Histogram(
    "amoroute_grpc_server_handling_seconds",
    "Time to handle a gRPC call.",
    ["service", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts every unary call by its final status code and times it."""

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        service, _, method = handler_call_details.method.lstrip("/").rpartition("/")
        inner = handler.unary_unary

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return inner(request, context)
            except Exception:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                HANDLING.labels(service, method).observe(time.perf_counter() - started)
                HANDLED.labels(service, method, code.name).inc()

        return grpc.unary_unary_rpc_method_handler(
            unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def serve_metrics(port: int, host: str) -> None:
    """Expose /metrics on `host`:`port` (port 0 or negative: off)."""
    if port > 0:
        prometheus_client.start_http_server(port, addr=host)
