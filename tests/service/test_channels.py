"""Client channels (amoroute.channels) against real gRPC servers on loopback."""

import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from amoroute.channels import channel


def _health_server(port: int) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(2), options=[("grpc.so_reuseport", 0)])
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, bound


def _check(ch: grpc.Channel) -> None:
    health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2)


def test_a_new_channel_reaches_a_server_restarted_on_a_port_an_open_channel_saw_fail() -> None:
    """An open channel whose server went away waits out its reconnect backoff; a
    channel made after a new server took the port connects at once, not after it."""
    first, port = _health_server(0)
    with channel(f"127.0.0.1:{port}") as old:
        _check(old)
        first.stop(0).wait()
        try:
            _check(old)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE
        time.sleep(1)  # the old channel is now in its reconnect backoff
        second, _ = _health_server(port)
        try:
            with channel(f"127.0.0.1:{port}") as new:
                _check(new)
        finally:
            second.stop(0)
