"""Settings every process reads, besides its own."""

import os
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """Base of every process's settings. A secret (a token, a password, a key) is a
    SecretStr: repr(), str() and model_dump() show it as '**********', and
    secret_values() hands every one to the log redaction (amoroute/logs.py)."""

    # Secrets may also come from files (Kubernetes secret volumes, Docker secrets):
    # with AMOROUTE_SECRETS_DIR set, a file named like a setting (admin_token,
    # telegram_bot_token, …) supplies it; an environment variable still wins.
    model_config = SettingsConfigDict(
        extra="ignore", secrets_dir=os.environ.get("AMOROUTE_SECRETS_DIR") or None
    )

    log_level: str = "INFO"
    # Port of the Prometheus /metrics endpoint of a gRPC service; 0 turns it off.
    metrics_port: int = 9090
    # TLS for gRPC. A server with a certificate and key serves TLS only; a client
    # with a CA file verifies the servers it calls against it. Empty: plaintext
    # (inside a cluster whose network policies already fence the services).
    grpc_tls_cert_file: str = ""
    grpc_tls_key_file: str = ""
    grpc_tls_ca_file: str = ""

    def secret_values(self) -> list[str]:
        """The value of every secret setting that is set, for the log redaction."""
        values = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
        return values

    def server_tls(self) -> tuple[bytes, bytes] | None:
        """(certificate chain, private key) PEM bytes, or None for plaintext."""
        if not (self.grpc_tls_cert_file or self.grpc_tls_key_file):
            return None
        if not (self.grpc_tls_cert_file and self.grpc_tls_key_file):
            raise ValueError("GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE must be set together")
        return Path(self.grpc_tls_cert_file).read_bytes(), Path(self.grpc_tls_key_file).read_bytes()
