"""A local OTLP trace receiver, over gRPC and HTTP/protobuf both, standing in for an
OpenTelemetry Collector: it keeps every span it is sent, with its service's name."""

import threading
from collections.abc import Iterable
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

SPAN_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    # The trace ids this span links to.
    linked_traces: tuple[str, ...] = ()


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _spans(request: trace_service_pb2.ExportTraceServiceRequest) -> Iterable[ReceivedSpan]:
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield ReceivedSpan(
                    service=str(resource.get("service.name", "")),
                    name=span.name,
                    kind=SPAN_KINDS.get(span.kind, "unspecified"),
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    attributes={a.key: _value(a.value) for a in span.attributes},
                    linked_traces=tuple(link.trace_id.hex() for link in span.links),
                )


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """`with OtlpReceiver() as otlp:` a gRPC endpoint (otlp.grpc_endpoint) and an
    HTTP one (otlp.http_endpoint, POST /v1/traces) on free loopback ports."""

    def __init__(self, keep: bool = True) -> None:
        """`keep=False`: a sink that only counts what it is sent (bench.tracing_cost),
        so its own CPU does not weigh on the figures."""
        self.keep = keep
        self.requests = 0
        self.received_bytes = 0
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._grpc)
        grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self.grpc_endpoint = f"http://127.0.0.1:{grpc_port}"
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server API)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                with receiver._lock:
                    receiver.requests += 1
                    receiver.received_bytes += len(body)
                if receiver.keep:
                    request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                    receiver._keep(request)
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http_endpoint = f"http://127.0.0.1:{self._http.server_address[1]}"

    def Export(  # noqa: N802 (the generated servicer's name)
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            self.requests += 1
            self.received_bytes += request.ByteSize()
        if self.keep:
            self._keep(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def _keep(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self._lock:
            self._spans.extend(_spans(request))

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def __enter__(self) -> "OtlpReceiver":
        self._grpc.start()
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._grpc.stop(0).wait()
