"""Settings every process reads, besides its own."""

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from amoroute.callers import CallerCredentials, CallerTokens

# The PostgreSQL pool of each engine (amoroute/db.py): connections kept open, and
# how many more may be opened for a burst (closed again once returned).
DB_POOL_SIZE = 20
DB_MAX_OVERFLOW = 10
# Far above what one process's threads can use; a typo such as 2000 stops the start.
MAX_DB_POOL = 500


class CommonSettings(BaseSettings):
    """Base of every process's settings. A secret (a token, a password, a key) is a
    SecretStr: repr(), str() and model_dump() show it as '**********', and
    secret_values() hands every one to the log redaction (amoroute/logging_setup.py)."""

    # Secrets may also come from files (Kubernetes secret volumes, Docker secrets):
    # with AMOROUTE_SECRETS_DIR set, a file named like a setting (admin_token,
    # telegram_bot_token, …) supplies it; an environment variable still wins.
    # A refused value is not quoted back: the error may name a secret setting.
    model_config = SettingsConfigDict(
        extra="ignore",
        secrets_dir=os.environ.get("AMOROUTE_SECRETS_DIR") or None,
        hide_input_in_errors=True,
    )

    log_level: str = "INFO"
    # Address the servers listen on: loopback for `make run`; the Kubernetes
    # manifests (and the image) set 0.0.0.0 so probes and other pods reach them.
    bind_host: str = "127.0.0.1"
    # Port of the Prometheus /metrics endpoint of a gRPC service; 0 turns it off.
    metrics_port: int = 9090
    # Per-caller gRPC tokens, "router:<token>,edge:<token>,operator:<token>" (one
    # Secret for every pod): servers check them, each process sends its own.
    # Empty: the check is off, and start-up says so.
    grpc_auth_tokens: SecretStr = Field(default=SecretStr(""), repr=False)
    # Mutual TLS for gRPC. This process's certificate and key: servers serve them,
    # channels present them. The CA verifies both ways: clients check servers
    # against it and servers require a client certificate it signed. Empty:
    # plaintext (inside a cluster whose network policies already fence the services).
    grpc_tls_cert_file: str = ""
    grpc_tls_key_file: str = ""
    grpc_tls_ca_file: str = ""
    # Connections each database engine of this process may hold (PostgreSQL; SQLite
    # keeps SQLAlchemy's own pool): at most DB_POOL_SIZE + DB_MAX_OVERFLOW. Every
    # process and replica multiplies it; deploy/README.md adds it up against
    # PostgreSQL's max_connections.
    db_pool_size: int = DB_POOL_SIZE
    db_max_overflow: int = DB_MAX_OVERFLOW
    # Traces (amoroute/tracing.py), by the standard OpenTelemetry variables: off
    # unless an OTLP endpoint is set. The SDK reads the others itself
    # (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG, OTEL_RESOURCE_ATTRIBUTES, ...).
    otel_exporter_otlp_endpoint: str = ""
    otel_exporter_otlp_traces_endpoint: str = ""
    # The specification's default; the Python SDK has no http/json exporter.
    otel_exporter_otlp_protocol: Literal["grpc", "http/protobuf"] = "http/protobuf"
    otel_exporter_otlp_traces_protocol: Literal["grpc", "http/protobuf", ""] = ""
    # Empty: each process names itself (edge, edge-worker, router, ...).
    otel_service_name: str = ""
    otel_sdk_disabled: bool = False
    # May carry a tracing backend's API key: a secret, hidden in log lines.
    otel_exporter_otlp_headers: SecretStr = Field(default=SecretStr(""), repr=False)

    @field_validator("db_pool_size")
    @classmethod
    def _pool_size(cls, value: int) -> int:
        # SQLAlchemy reads 0 as "no limit": refused, a pool needs a bound.
        if not 1 <= value <= MAX_DB_POOL:
            raise ValueError(f"DB_POOL_SIZE must be from 1 to {MAX_DB_POOL} connections")
        return value

    @field_validator("db_max_overflow")
    @classmethod
    def _max_overflow(cls, value: int) -> int:
        # SQLAlchemy reads -1 as "no limit": refused, as is any negative number.
        if not 0 <= value <= MAX_DB_POOL:
            raise ValueError(f"DB_MAX_OVERFLOW must be from 0 to {MAX_DB_POOL} connections")
        return value

    @field_validator("grpc_auth_tokens")
    @classmethod
    def _tokens(cls, value: SecretStr) -> SecretStr:
        CallerTokens.parse(value.get_secret_value())  # a bad entry stops the start
        return value

    def tracing_configured(self) -> bool:
        """An OTLP endpoint is set and the SDK is not disabled."""
        endpoint = self.otel_exporter_otlp_endpoint or self.otel_exporter_otlp_traces_endpoint
        return bool(endpoint) and not self.otel_sdk_disabled

    def caller_tokens(self) -> CallerTokens:
        return CallerTokens.parse(self.grpc_auth_tokens.get_secret_value())

    def secret_values(self) -> list[str]:
        """The value of every secret setting that is set, for the log redaction; each
        caller's gRPC token on its own, so a token is hidden wherever it appears."""
        values = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
        values += self.caller_tokens().tokens()
        return values

    def server_tls(self) -> tuple[bytes, bytes, bytes] | None:
        """(certificate chain, private key, client CA) PEM bytes, or None for plaintext."""
        if not (self.grpc_tls_cert_file or self.grpc_tls_key_file):
            return None
        if not (self.grpc_tls_cert_file and self.grpc_tls_key_file):
            raise ValueError("GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE must be set together")
        if not self.grpc_tls_ca_file:
            raise ValueError(
                "GRPC_TLS_CA_FILE is not set: a TLS server requires client certificates "
                "and verifies them against it; set it to the CA that signs the callers' "
                "certificates"
            )
        return (
            Path(self.grpc_tls_cert_file).read_bytes(),
            Path(self.grpc_tls_key_file).read_bytes(),
            Path(self.grpc_tls_ca_file).read_bytes(),
        )

    def caller_credentials(self, caller: str) -> CallerCredentials:
        """What this process, calling as `caller`, shows the services it calls."""
        if self.grpc_tls_ca_file and not (self.grpc_tls_cert_file and self.grpc_tls_key_file):
            raise ValueError(
                "GRPC_TLS_CA_FILE is set without GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE: "
                "servers require a client certificate; give this process one the CA signed"
            )
        return CallerCredentials(
            token=self.caller_tokens().token_of(caller),
            tls_ca_file=self.grpc_tls_ca_file,
            tls_cert_file=self.grpc_tls_cert_file,
            tls_key_file=self.grpc_tls_key_file,
        )
