"""Mutual TLS on the gRPC servers and channels (GRPC_TLS_* settings): a TLS server
requires a client certificate signed by GRPC_TLS_CA_FILE."""

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from amoroute.callers import CallerCredentials
from amoroute.channels import channel
from amoroute.grpc_server import RunningServer
from amoroute.v1 import traffic_pb2, traffic_pb2_grpc
from traffic_svc import server
from traffic_svc.settings import Settings


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@dataclass
class Pki:
    ca: Path
    server: tuple[Path, Path]  # certificate, key
    client: tuple[Path, Path]
    stranger: tuple[Path, Path]  # signed by another CA


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
             f"/CN={name}", "-keyout", str(key), "-out", str(cert))
    return cert, key


def _issued(folder: Path, name: str, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    cert, key, csr, ext = (folder / f"{name}{s}" for s in (".pem", ".key", ".csr", ".ext"))
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
             "-keyout", str(key), "-out", str(csr))
    ext.write_text("subjectAltName=DNS:localhost\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(cert))
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("tls")
    ca, other_ca = _ca(folder, "amoroute-ca"), _ca(folder, "other-ca")
    return Pki(ca[0], _issued(folder, "server", ca), _issued(folder, "edge", ca),
               _issued(folder, "stranger", other_ca))


@pytest.fixture(scope="module")
def running(make_database, pki: Pki) -> Iterator[RunningServer]:  # type: ignore[no-untyped-def]
    settings = Settings(traffic_database_url=make_database("traffic"),
                        grpc_tls_cert_file=str(pki.server[0]), grpc_tls_key_file=str(pki.server[1]),
                        grpc_tls_ca_file=str(pki.ca))
    server.upgrade_database(settings)
    running = server.build(settings, port=0)
    yield running
    running.stop(0)


def _list_sales(address: str, credentials: CallerCredentials | None) -> traffic_pb2.ListSalesResponse:
    with channel(address, credentials) as ch:
        return traffic_pb2_grpc.TrafficServiceStub(ch).ListSales(
            traffic_pb2.ListSalesRequest(), timeout=5)


def test_tls_server_answers_a_client_with_a_certificate_of_its_ca(running, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    credentials = CallerCredentials(tls_ca_file=str(pki.ca), tls_cert_file=str(pki.client[0]),
                                    tls_key_file=str(pki.client[1]))
    assert list(_list_sales(f"localhost:{running.port}", credentials).sales) == []


@pytest.mark.parametrize("client", ["plaintext", "no certificate", "certificate of another CA"])
def test_tls_server_refuses_a_client_without_a_certificate_of_its_ca(running, pki: Pki, client: str) -> None:  # type: ignore[no-untyped-def]
    credentials = {
        "plaintext": None,
        "no certificate": CallerCredentials(tls_ca_file=str(pki.ca)),
        "certificate of another CA": CallerCredentials(
            tls_ca_file=str(pki.ca), tls_cert_file=str(pki.stranger[0]),
            tls_key_file=str(pki.stranger[1])),
    }[client]
    with pytest.raises(grpc.RpcError) as err:
        _list_sales(f"localhost:{running.port}", credentials)
    assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_half_configured_tls_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE"):
        Settings(grpc_tls_cert_file="/tmp/only-cert.pem").server_tls()


def test_tls_server_without_a_ca_for_its_clients_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="GRPC_TLS_CA_FILE is not set"):
        Settings(grpc_tls_cert_file="/tmp/c.pem", grpc_tls_key_file="/tmp/k.pem").server_tls()


def test_tls_client_without_its_own_certificate_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="servers require a client certificate"):
        Settings(grpc_tls_ca_file="/tmp/ca.pem").caller_credentials("edge")
