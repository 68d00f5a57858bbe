"""The edge's HTTP tracing layer alone: CPU per request of a one-route Falcon app
with tracing off, and on at a 10 % sampling ratio as amoroute.tracing sets it up
(Falcon instrumentation, OTLP export to a local sink), in the stable HTTP semantic
conventions and in the old ones. Each variant runs in a process of its own, in
turns, and the medians are printed.

    .venv/bin/python -m bench.http_tracing

What it isolates is the part of bench.tracing_cost's figure that every webhook
pays whether it is sampled or not, which that whole-stack figure is too noisy to
resolve on this shared machine.
"""

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.tracing_cost import tracing_on
from tests.support.otlp_receiver import OtlpReceiver

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {
    "off": {},
    "on, stable HTTP conventions": {"OTEL_SEMCONV_STABILITY_OPT_IN": "http"},
    "on, old HTTP conventions": {"OTEL_SEMCONV_STABILITY_OPT_IN": "default"},
}

# Run in a fresh interpreter: set up tracing as a gunicorn worker does, then time
# `requests` calls of the WSGI app; prints microseconds of CPU per request.
_ONE_RUN = """
import io, sys, time
import falcon
from amoroute.settings import CommonSettings
from amoroute.tracing import setup_tracing, shutdown
setup_tracing("edge", CommonSettings(), http_server=True)

class Hook:
    def on_post(self, req, resp):
        req.bounded_stream.read()
        resp.media = {"success": True}

app = falcon.App()
app.add_route("/webhook/amocrm", Hook())
body = b"leads%5Bstatus%5D%5B0%5D%5Bid%5D=1"

def environ():
    return {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/webhook/amocrm", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "HTTP_HOST": "127.0.0.1:8080", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000",
        "HTTP_USER_AGENT": "amoCRM-WebHook-client/1.0",
    }

def start_response(status, headers, exc_info=None):
    pass

requests = int(sys.argv[1])
for _ in range(requests // 10):
    b"".join(app(environ(), start_response))
started = time.process_time()
for _ in range(requests):
    b"".join(app(environ(), start_response))
shutdown()  # what is still buffered is exported inside the timing
print((time.process_time() - started) / requests * 1e6)
"""


def one_run(env: dict[str, str], requests: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _ONE_RUN, str(requests)],
        cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="runs per variant (5)")
    parser.add_argument("--requests", type=int, default=30000, help="requests per run")
    args = parser.parse_args()
    results: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with OtlpReceiver(keep=False) as otlp:
        tracing = tracing_on(otlp, 0.1)
        for _ in range(args.rounds):
            for name, variant in VARIANTS.items():
                env = {**tracing, **variant} if variant else {}
                results[name].append(one_run(env, args.requests))
    off = statistics.median(results["off"])
    for name, runs in results.items():
        median = statistics.median(runs)
        print(f"{name:30s} {median:6.1f} us/request CPU "
              f"(+{median - off:5.1f} over off; runs {', '.join(f'{r:.1f}' for r in runs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
