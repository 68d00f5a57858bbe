"""An outgoing gRPC call's details with new metadata: what a client interceptor that adds
a header (the request id, the caller's token) passes on."""

import grpc


class WithMetadata(grpc.ClientCallDetails):
    def __init__(self, details: grpc.ClientCallDetails, metadata: list[tuple[str, str]]) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = details.wait_for_ready
        self.compression = details.compression
