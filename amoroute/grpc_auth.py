"""Who may call a gRPC method: per-caller bearer tokens (GRPC_AUTH_TOKENS) checked
by one server interceptor against each service's table of callers, and sent by
every channel as `authorization: Bearer <token>`.

Deny by default: a method with no entry in its service's table is refused, with
tokens or without. With no tokens configured (a local `make run`) anyone who can
reach the port may call every declared method, and start-up says so.
"""

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection

from amoroute.call_details import WithMetadata
from amoroute.callers import CALLERS, CallerTokens

log = logging.getLogger(__name__)

HEADER = "authorization"
_SCHEME = "bearer "

# Kubernetes probes and `grpcurl list/describe` reach these without a token; they
# reveal the schema and the serving state, never data.
OPEN_SERVICES = frozenset(
    {
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    }
)


# Method name -> the callers allowed to call it, for one service.
Permissions = Mapping[str, Collection[str]]


def method_table(service: str, permissions: Permissions) -> dict[str, frozenset[str]]:
    """The full method paths ("/amoroute.v1.X/Method") of one service's table, checked
    against the service's descriptor: a misspelled method or caller stops the start."""
    methods = {m.name for m in descriptor_pool.Default().FindServiceByName(service).methods}
    table = {}
    for method, callers in permissions.items():
        if method not in methods:
            raise ValueError(f"permission table of {service} names unknown method {method!r}")
        unknown = set(callers) - set(CALLERS)
        if unknown:
            raise ValueError(f"permission table of {service}.{method} names {sorted(unknown)}")
        table[f"/{service}/{method}"] = frozenset(callers)
    return table


def _bearer(metadata: Iterable[Any] | None) -> str:
    for key, value in metadata or ():
        if key == HEADER and isinstance(value, str) and value.lower().startswith(_SCHEME):
            return value[len(_SCHEME) :].strip()
    return ""


def caller_of_call(context: grpc.ServicerContext, tokens: CallerTokens) -> str | None:
    """The caller whose token came with a call in progress, for a servicer that records
    who acted (AuthInterceptor has already let it through); None while authentication
    is off."""
    if not tokens:
        return None
    return tokens.caller_of(_bearer(context.invocation_metadata()))


def _refusal(code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    def refuse(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(refuse)


class AuthInterceptor(grpc.ServerInterceptor):
    """Refuses a call without a known token (UNAUTHENTICATED) and a caller the
    method's table does not name, or a method with no table entry (PERMISSION_DENIED)."""

    def __init__(self, table: Mapping[str, frozenset[str]], tokens: CallerTokens) -> None:
        self.table = table
        self.tokens = tokens

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        method = handler_call_details.method
        handler = continuation(handler_call_details)
        # Unknown methods stay UNIMPLEMENTED; the open services need no token.
        if handler is None or method.split("/")[1] in OPEN_SERVICES:
            return handler
        allowed = self.table.get(method)
        if allowed is None:
            return _refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{method} is open to no caller: add it to its service's permission table",
            )
        if not self.tokens:
            return handler
        caller = self.tokens.caller_of(_bearer(handler_call_details.invocation_metadata))
        if caller is None:
            return _refusal(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or unknown token: send 'authorization: Bearer <token>' "
                "with a caller's token from GRPC_AUTH_TOKENS",
            )
        if caller not in allowed:
            log.warning("caller refused", extra={"caller": caller, "method": method})
            return _refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                f"caller {caller} may not call {method} (allowed: {', '.join(sorted(allowed))})",
            )
        return handler


class BearerToken(grpc.UnaryUnaryClientInterceptor):
    """Sends this process's token with every call. An interceptor rather than call
    credentials, which gRPC sends over TLS channels only: inside a fenced cluster
    the services may run plaintext and still need to know their callers."""

    def __init__(self, token: str) -> None:
        self._header = (HEADER, f"Bearer {token}")

    def __repr__(self) -> str:
        return "BearerToken(...)"

    def intercept_unary_unary(
        self,
        continuation: Callable[..., Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        metadata = [*(client_call_details.metadata or ()), self._header]
        return continuation(WithMetadata(client_call_details, metadata), request)
