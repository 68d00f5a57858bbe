"""The real edge (gunicorn serving the Falcon app) as a process on a free port, and a raw
HTTP/1.1 client that sends a request byte for byte (no client normalises a path or a header)."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.stack import REPO, free_port


def raw_request(
    port: int, method: str, target: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request; header values are sent as UTF-8 bytes, as they are given."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, reply_body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    reply_headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        reply_headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), reply_headers, reply_body


@contextmanager
def running_edge(
    env: dict[str, str], output: Path, app: str = "edge.app:create_app()"
) -> Iterator[int]:
    """gunicorn with edge/gunicorn_conf.py and one worker, `env` added to this process's
    environment, stdout and stderr into the file `output`; yields its port once /healthz
    answers, and stops it on leaving."""
    port = free_port()
    full_env = {**os.environ, "EDGE_WORKERS": "1", **env, "EDGE_PORT": str(port)}
    with output.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "edge/gunicorn_conf.py", app],
            cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if raw_request(port, "GET", "/healthz", {})[0] == 200:
                        break
                except OSError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, (
                    f"edge did not start: {output.read_text(errors='replace')[-2000:]}"
                )
                time.sleep(0.1)
            yield port
        finally:
            proc.terminate()
            proc.wait(20)
