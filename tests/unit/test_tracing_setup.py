"""Tracing set up by the standard OTEL_* variables: off without an endpoint, and with
one, spans exported over OTLP (gRPC or HTTP/protobuf) under the process's name, and
log lines that carry the trace and span ids. Each case runs in a fresh interpreter:
the setup is once per process."""

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from amoroute.settings import CommonSettings
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.waiting import eventually

PRELUDE = (
    "import logging, sys\n"
    "from opentelemetry import trace\n"
    "from amoroute.logging_setup import setup_logging\n"
    "from amoroute.settings import CommonSettings\n"
    "from amoroute.tracing import setup_tracing, shutdown\n"
    "setup_logging('svc')\n"
    "log = logging.getLogger('svc')\n"
)


def _run(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + script],
        capture_output=True, text=True, timeout=60, check=True, env={**clean, **env},
    )


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_without_an_endpoint_nothing_is_set_up() -> None:
    done = _run(
        "import falcon, grpc, sqlalchemy\n"
        "app_class, channel_factory = falcon.App, grpc.insecure_channel\n"
        "print(setup_tracing('router', CommonSettings()))\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "print(isinstance(trace.get_tracer_provider(), TracerProvider))\n"
        "print(falcon.App is app_class, grpc.insecure_channel is channel_factory)\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.instrumentation')))\n"
        "with trace.get_tracer('t').start_as_current_span('work'):\n"
        "    log.info('inside')\n",
        OTEL_TRACES_SAMPLER="always_on",
        OTEL_SERVICE_NAME="named-but-no-endpoint",
    )
    assert done.stdout.split("\n")[:4] == ["False", "False", "True True", "[]"]
    [line] = _lines(done.stderr)
    assert line["msg"] == "inside"
    assert "trace_id" not in line and "span_id" not in line


def test_sdk_disabled_wins_over_an_endpoint() -> None:
    done = _run(
        "print(setup_tracing('router', CommonSettings()))\n",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4317",
        OTEL_SDK_DISABLED="true",
    )
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_spans_go_to_the_endpoint_under_the_process_name_and_logs_carry_their_ids(
    protocol: str,
) -> None:
    with OtlpReceiver() as otlp:
        endpoint = otlp.grpc_endpoint if protocol == "grpc" else otlp.http_endpoint
        done = _run(
            "print(setup_tracing('router', CommonSettings()))\n"
            "with trace.get_tracer('t').start_as_current_span('work'):\n"
            "    log.info('inside')\n"
            "log.info('outside')\n"
            "shutdown()\n",
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        )
        assert done.stdout.strip() == "True"
        [span] = eventually(lambda: [s for s in otlp.spans if s.name == "work"])
    assert span.service == "router"
    lines = {line["msg"]: line for line in _lines(done.stderr)}
    assert (lines["inside"]["trace_id"], lines["inside"]["span_id"]) == (
        span.trace_id, span.span_id)
    assert "trace_id" not in lines["outside"]


def test_otel_service_name_and_the_sampler_come_from_the_environment() -> None:
    with OtlpReceiver() as otlp:
        _run(
            "setup_tracing('router', CommonSettings())\n"
            "tracer = trace.get_tracer('t')\n"
            "for _ in range(20):\n"
            "    with tracer.start_as_current_span('dropped'):\n"
            "        pass\n"
            "shutdown()\n",
            OTEL_EXPORTER_OTLP_ENDPOINT=otlp.http_endpoint,
            OTEL_SERVICE_NAME="router-eu",
            OTEL_TRACES_SAMPLER="traceidratio",
            OTEL_TRACES_SAMPLER_ARG="0",
        )
        _run(
            "setup_tracing('router', CommonSettings())\n"
            "with trace.get_tracer('t').start_as_current_span('kept'):\n"
            "    pass\n"
            "shutdown()\n",
            OTEL_EXPORTER_OTLP_ENDPOINT=otlp.http_endpoint,
            OTEL_SERVICE_NAME="router-eu",
        )
        [span] = eventually(lambda: otlp.spans)
    assert (span.service, span.name) == ("router-eu", "kept")


def test_a_statement_outside_any_trace_starts_none_and_one_inside_joins_it() -> None:
    with OtlpReceiver() as otlp:
        _run(
            "setup_tracing('edge-worker', CommonSettings())\n"
            "import sqlalchemy as sa\n"
            "engine = sa.create_engine('sqlite://')\n"
            "with engine.connect() as conn:\n"
            "    conn.execute(sa.text('SELECT 1'))\n"
            "    with trace.get_tracer('t').start_as_current_span('retry'):\n"
            "        conn.execute(sa.text('SELECT 2'))\n"
            "shutdown()\n",
            OTEL_EXPORTER_OTLP_ENDPOINT=otlp.grpc_endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        )
        spans = eventually(lambda: len(otlp.spans) >= 2 and otlp.spans)
    [retry] = [s for s in spans if s.name == "retry"]
    [statement] = [s for s in spans if s.name != "retry"]
    assert (statement.kind, statement.parent_span_id) == ("client", retry.span_id)
    assert "SELECT 2" in statement.attributes.get("db.statement", "")


def test_an_unknown_protocol_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValidationError, match="otel_exporter_otlp_protocol"):
        CommonSettings(otel_exporter_otlp_protocol="http/json")  # type: ignore[arg-type]


def test_the_webhook_secret_and_query_strings_stay_out_of_the_edges_spans() -> None:
    with OtlpReceiver() as otlp:
        _run(
            # falcon.testing subscripts falcon.App in its annotations: imported first.
            "import falcon, falcon.testing\n"
            "setup_tracing('edge', CommonSettings(), http_server=True)\n"
            "class Hook:\n"
            "    def on_post(self, req, resp, secret):\n"
            "        resp.media = {'success': True}\n"
            "app = falcon.App()\n"
            "app.add_route('/webhook/amocrm/{secret}', Hook())\n"
            "client = falcon.testing.TestClient(app)\n"
            "assert client.simulate_post('/webhook/amocrm/hook-s3cret', query_string='code=c0de').status_code == 200\n"
            "assert client.simulate_get('/healthz').status_code == 404\n"
            "shutdown()\n",
            OTEL_EXPORTER_OTLP_ENDPOINT=otlp.grpc_endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        )
        [span] = eventually(lambda: otlp.spans)
    assert span.name == "POST /webhook/amocrm/{secret}"
    # The stable HTTP semantic conventions, unless OTEL_SEMCONV_STABILITY_OPT_IN says otherwise.
    assert span.attributes["http.request.method"] == "POST"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["url.path"] == "/webhook/amocrm/***"
    recorded = json.dumps(span.attributes)
    assert "/webhook/amocrm/***" in recorded
    assert "s3cret" not in recorded and "c0de" not in recorded
