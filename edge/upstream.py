"""A gRPC service's error, as the admin API's HTTP answer."""

import falcon
import grpc


def upstream_error(service: str, address: str, exc: grpc.RpcError) -> falcon.HTTPError:
    """400 for INVALID_ARGUMENT (the service's message names the field), 503 with
    Retry-After when the service did not answer, 502 for anything else it said."""
    code = exc.code()
    name = code.name if code else "UNKNOWN"
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return falcon.HTTPBadRequest(description=f"{service}: {exc.details()}")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return falcon.HTTPServiceUnavailable(
            description=f"{service} at {address} did not answer ({name}); try again shortly",
            retry_after=5,
        )
    return falcon.HTTPBadGateway(
        description=f"{service} at {address} failed ({name}): {exc.details()}"
    )
