"""A gRPC service's error, as the admin API's HTTP answer."""

import falcon
import grpc


def upstream_error(
    service: str, address: str, exc: grpc.RpcError, field_prefix: str = ""
) -> falcon.HTTPError:
    """400 for INVALID_ARGUMENT (the service's message names the field, `field_prefix`,
    the request message's such as "partner.", taken off so it names the API's field), 503
    with Retry-After when the service did not answer, 502 for anything else it said."""
    code = exc.code()
    name = code.name if code else "UNKNOWN"
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        details = (exc.details() or "").removeprefix(field_prefix)
        return falcon.HTTPBadRequest(description=f"{details} ({service})")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return falcon.HTTPServiceUnavailable(
            description=f"{service} at {address} did not answer ({name}); try again shortly",
            retry_after=5,
        )
    return falcon.HTTPBadGateway(
        description=f"{service} at {address} failed ({name}): {exc.details()}"
    )
