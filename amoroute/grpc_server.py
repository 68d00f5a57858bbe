"""The gRPC server bootstrap every service shares: thread pool, caller
authentication, error mapping, health, reflection, (mutual) TLS, and a graceful
stop on SIGTERM / SIGINT."""

import logging
import signal
import threading
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from amoroute.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ServiceError,
    Unavailable,
)
from amoroute.grpc_auth import AuthInterceptor, Permissions, method_table
from amoroute.metrics import MetricsInterceptor
from amoroute.requestid import ServerRequestId
from amoroute.settings import CommonSettings

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024

_CODES: dict[type[ServiceError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Aborted: grpc.StatusCode.ABORTED,
}


class ErrorInterceptor(grpc.ServerInterceptor):
    """Turns a ServiceError raised by a servicer into its status code and
    any other exception into INTERNAL, logged with its traceback."""

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        inner = handler.unary_unary

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                return inner(request, context)
            except ServiceError as exc:
                context.abort(_CODES.get(type(exc), grpc.StatusCode.INTERNAL), str(exc))
            except Exception:
                if context.code() is not None:  # already aborted by the servicer
                    raise
                log.exception("unhandled error", extra={"method": method})
                context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}")

        return grpc.unary_unary_rpc_method_handler(
            unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


@dataclass
class Registration:
    """One servicer, the generated function that adds it to a server, and which
    callers (amoroute.grpc_auth.CALLERS) may call each of its methods; a method
    the table leaves out is refused to everyone."""

    servicer: object
    add_to_server: Callable[[Any, grpc.Server], None]
    full_name: str  # e.g. "amoroute.v1.RouterService"
    callers: Permissions


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    service_names: list[str]

    def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ["", *self.service_names]:
            self.health.set(name, status)

    def stop(self, grace: float) -> None:
        """Flip health to NOT_SERVING, then finish in-flight calls within `grace`."""
        self.set_serving(False)
        self.server.stop(grace).wait()


def start_server(
    registrations: Iterable[Registration],
    port: int,
    settings: CommonSettings,
    max_workers: int = 32,
    interceptors: Iterable[grpc.ServerInterceptor] = (),
) -> RunningServer:
    """Start a server with health and reflection on settings.bind_host; port 0
    picks a free port. GRPC_AUTH_TOKENS turns the caller check on, GRPC_TLS_*
    mutual TLS (settings.server_tls())."""
    registrations = list(registrations)
    tokens = settings.caller_tokens()
    tls = settings.server_tls()
    table: dict[str, frozenset[str]] = {}
    for reg in registrations:
        table.update(method_table(reg.full_name, reg.callers))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        # Outermost first: the request id and metrics see the final status code,
        # a refused caller included.
        interceptors=[
            ServerRequestId(),
            MetricsInterceptor(),
            AuthInterceptor(table, tokens),
            *interceptors,
            ErrorInterceptor(),
        ],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
            # Clients reconnect (and look the headless Service up again) every few
            # minutes, so pods added by the autoscaler get their share of calls.
            ("grpc.max_connection_age_ms", 300_000),
            ("grpc.max_connection_age_grace_ms", 30_000),
        ],
    )
    for reg in registrations:
        reg.add_to_server(reg.servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [reg.full_name for reg in registrations]
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    host = settings.bind_host
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if tls:
        chain, key, client_ca = tls
        credentials = grpc.ssl_server_credentials(
            [(key, chain)], root_certificates=client_ca, require_client_auth=True
        )
        bound = server.add_secure_port(address, credentials)
    else:
        bound = server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"cannot listen on {address}: is BIND_HOST an address of this machine?")
    if not tokens:
        log.warning(
            "GRPC_AUTH_TOKENS is not set: caller authentication is off, anyone who reaches "
            "this port may call every method",
            extra={"host": host, "port": bound},
        )
    server.start()
    running = RunningServer(server, bound, health_servicer, names)
    running.set_serving(True)
    return running


def serve_until_signalled(running: RunningServer, name: str, grace: float = 10.0) -> None:
    """Block until SIGTERM or SIGINT, then stop gracefully."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("serving", extra={"service": name, "port": running.port})
    stop.wait()
    log.info("stopping", extra={"service": name, "grace_s": grace})
    running.stop(grace)
    log.info("stopped", extra={"service": name})
