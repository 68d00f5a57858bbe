"""gRPC client channels, built one way for every caller.

On Kubernetes, addresses are `dns:///name.namespace.svc:port` of headless
Services: HTTP/2 keeps one connection open, so only client-side round_robin
over every pod address spreads the load.
"""

import json
from pathlib import Path

import grpc

from amoroute.callers import CallerCredentials
from amoroute.grpc_auth import BearerToken
from amoroute.requestid import ClientRequestId

_SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
)

CHANNEL_OPTIONS = [
    ("grpc.service_config", _SERVICE_CONFIG),
    ("grpc.enable_retries", 1),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5_000),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    # Each channel keeps its own connections: with grpc's process-wide pool, a new
    # channel to an address whose earlier server went away shares the old channel's
    # connection and its reconnect backoff, and fails UNAVAILABLE for seconds
    # though a server now listens there (a restarted replica on the same port).
    ("grpc.use_local_subchannel_pool", 1),
]


def channel(address: str, credentials: CallerCredentials | None = None) -> grpc.Channel:
    """A channel to `address` with keepalive, reconnect and retry settings, passing
    the current request id and the caller's token along; TLS when the credentials
    name a CA (presenting the caller's certificate when they name one)."""
    credentials = credentials or CallerCredentials()
    if credentials.tls_ca_file:
        chain = key = None
        if credentials.tls_cert_file and credentials.tls_key_file:
            chain = Path(credentials.tls_cert_file).read_bytes()
            key = Path(credentials.tls_key_file).read_bytes()
        tls = grpc.ssl_channel_credentials(
            Path(credentials.tls_ca_file).read_bytes(), private_key=key, certificate_chain=chain
        )
        raw = grpc.secure_channel(address, tls, options=CHANNEL_OPTIONS)
    else:
        raw = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
    if credentials.token:
        return grpc.intercept_channel(raw, ClientRequestId(), BearerToken(credentials.token))
    return grpc.intercept_channel(raw, ClientRequestId())
