"""Optional TLS on the gRPC servers and channels (GRPC_TLS_* settings)."""

import subprocess
from pathlib import Path

import grpc
import pytest

from amoroute.channels import channel
from amoroute.v1 import traffic_pb2, traffic_pb2_grpc
from traffic_svc import server
from traffic_svc.settings import Settings


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def test_tls_server_answers_a_verifying_client_and_refuses_plaintext(make_database, certificate) -> None:  # type: ignore[no-untyped-def]
    cert, key = certificate
    settings = Settings(traffic_database_url=make_database("traffic"),
                        grpc_tls_cert_file=str(cert), grpc_tls_key_file=str(key))
    server.upgrade_database(settings)
    running = server.build(settings, port=0)
    try:
        with channel(f"localhost:{running.port}", tls_ca_file=str(cert)) as secure:
            reply = traffic_pb2_grpc.TrafficServiceStub(secure).ListSales(
                traffic_pb2.ListSalesRequest(), timeout=5)
            assert list(reply.sales) == []
        with channel(f"localhost:{running.port}") as plain, pytest.raises(grpc.RpcError) as err:
            traffic_pb2_grpc.TrafficServiceStub(plain).ListSales(
                traffic_pb2.ListSalesRequest(), timeout=2)
        assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    finally:
        running.stop(0)


def test_half_configured_tls_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE"):
        Settings(grpc_tls_cert_file="/tmp/only-cert.pem").server_tls()
