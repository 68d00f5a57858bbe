"""The request id that follows one webhook from the edge through every gRPC hop,
so one grep finds every log line about it."""

import contextvars
import re
import uuid
from collections.abc import Callable
from typing import Any

import grpc

from amoroute import tracing
from amoroute.call_details import WithMetadata

HEADER = "x-request-id"
# What a request id may be: gRPC metadata and HTTP headers take it as it is, and a
# log line or a grep never meets a character that needs escaping.
_VALID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_current: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


def current() -> str:
    return _current.get()


def set_current(value: str) -> contextvars.Token[str]:
    return _current.set(value)


def new() -> str:
    return uuid.uuid4().hex[:16]


def is_valid(value: object) -> bool:
    """1 to 64 ASCII letters, digits, '.', '_' or '-'."""
    return isinstance(value, str) and _VALID.fullmatch(value) is not None


def accept(given: str | None) -> str:
    """The caller's request id when it is valid, otherwise a new one: a bad id is
    replaced, never refused (it only helps find log lines)."""
    return given if given is not None and is_valid(given) else new()


def from_metadata(metadata: Any) -> str:
    """The valid x-request-id among a call's metadata, or ""."""
    for key, value in metadata or ():
        if key == HEADER and is_valid(value):
            return value
    return ""


class ServerRequestId(grpc.ServerInterceptor):
    """Takes the caller's x-request-id (or makes one) for the duration of the call."""

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        request_id = from_metadata(handler_call_details.invocation_metadata) or new()
        inner = handler.unary_unary

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            token = _current.set(request_id)
            tracing.tag_request_id(request_id)
            try:
                return inner(request, context)
            finally:
                _current.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class ClientRequestId(grpc.UnaryUnaryClientInterceptor):
    """Sends the current request id along with every outgoing call."""

    def intercept_unary_unary(
        self,
        continuation: Callable[..., Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        request_id = _current.get()
        # Invalid metadata would fail the call itself: only a valid id goes along.
        if is_valid(request_id):
            metadata = [*(client_call_details.metadata or ()), (HEADER, request_id)]
            client_call_details = WithMetadata(client_call_details, metadata)
        return continuation(client_call_details, request)
