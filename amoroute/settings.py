"""Settings every process reads, besides its own."""

import os
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
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

    def server_tls(self) -> tuple[bytes, bytes] | None:
        """(certificate chain, private key) PEM bytes, or None for plaintext."""
        if not (self.grpc_tls_cert_file or self.grpc_tls_key_file):
            return None
        if not (self.grpc_tls_cert_file and self.grpc_tls_key_file):
            raise ValueError("GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE must be set together")
        return Path(self.grpc_tls_cert_file).read_bytes(), Path(self.grpc_tls_key_file).read_bytes()
