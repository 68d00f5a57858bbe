"""Secrets stay secret (issue #8, point 8): an unhandled error on the secret webhook URL,
through the real edge under gunicorn, writes no secret to stdout or stderr, whichever
part of the process writes it; settings never show a secret in a repr or a dump."""

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

import edge.settings
import notifier_svc.settings
import referral_svc.settings
import router_svc.settings
import traffic_svc.settings
from amoroute.logging_setup import RedactSecrets
from tests.admin.helpers import migrated_edge_database
from tests.support.edge_server import raw_request, running_edge
from tests.support.forms import encode, won_deal_body

WEBHOOK_SECRET = "hook-Secret-4f9a1c0e7d2b"
ADMIN_TOKEN = "admin-Secret-token-0123456789abcdef"
AMOCRM_TOKEN = "amocrm-Secret-token-aa11bb22"
NAMED_ADMIN_TOKEN = "named-admin-Secret-token-0123456789ab"
SECRETS = (WEBHOOK_SECRET, ADMIN_TOKEN, AMOCRM_TOKEN, NAMED_ADMIN_TOKEN)


@pytest.fixture(scope="module")
def failing_edge(make_database, tmp_path_factory) -> Iterator[tuple[int, Path]]:  # type: ignore[no-untyped-def]
    output = tmp_path_factory.mktemp("edge") / "edge.log"
    env = {"EDGE_DATABASE_URL": migrated_edge_database(make_database),
           "WEBHOOK_SECRET": WEBHOOK_SECRET, "ADMIN_TOKEN": ADMIN_TOKEN,
           "ADMIN_TOKENS": f"ops:{NAMED_ADMIN_TOKEN}",
           "AMOCRM_ACCESS_TOKEN": AMOCRM_TOKEN, "AMOCRM_DOMAIN": "onaiagencykz",
           "ROUTER_ADDR": "127.0.0.1:9", "REFERRAL_ADDR": "127.0.0.1:9",
           "TRAFFIC_ADDR": "127.0.0.1:9", "LOG_LEVEL": "DEBUG"}
    with running_edge(env, output, app="tests.support.failing_edge:create_app()") as port:
        yield port, output


def output_once_written(output: Path, *expected: str) -> str:
    """The edge's stdout and stderr, once every `expected` text is in it."""
    deadline = time.monotonic() + 10
    while True:
        text = output.read_text(errors="replace")
        if all(e in text for e in expected) or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


@pytest.mark.parametrize(("fail", "logged"), [
    ("resource", "unhandled error"),  # Falcon's handler wrote the path to wsgi.errors
    ("wsgi", "Error handling request"),  # gunicorn's error log quotes the request line
])
def test_an_unhandled_error_on_the_secret_url_never_writes_the_secret(
    failing_edge: tuple[int, Path], fail: str, logged: str
) -> None:
    port, output = failing_edge
    body = encode(won_deal_body(8800001, "kenesary_fb"))
    for path in (f"/webhook/amocrm/{WEBHOOK_SECRET}",
                 f"/webhook/amocrm/{WEBHOOK_SECRET.replace('-', '%2D')}?token={ADMIN_TOKEN}"
                 f"&named={NAMED_ADMIN_TOKEN}"):
        try:
            status = raw_request(port, "POST", path, {
                "X-Fail": fail, "Content-Type": "application/x-www-form-urlencoded",
            }, body)[0]
        except ValueError:  # gunicorn may close the connection without an answer
            status = 500
        assert status == 500
    text = output_once_written(output, logged, "failed on purpose at /webhook/amocrm/***")
    assert logged in text and "/webhook/amocrm/***" in text, text[-3000:]
    for secret in SECRETS:
        assert secret not in text, text[-3000:]
    assert "Secret%2D" not in text and "Secret%2d" not in text, text[-3000:]


def test_a_webhook_answered_normally_logs_no_secret_either(failing_edge: tuple[int, Path]) -> None:
    port, output = failing_edge
    body = encode(won_deal_body(8800002, "kenesary_fb"))
    status, _, reply = raw_request(port, "POST", f"/webhook/amocrm/{WEBHOOK_SECRET}", {
        "Content-Type": "application/x-www-form-urlencoded"}, body)
    assert status == 200, reply
    text = output_once_written(output, "webhook answered")
    assert all(secret not in text for secret in SECRETS)


# --- settings ------------------------------------------------------------------------------


SETTINGS_CLASSES = [edge.settings.Settings, notifier_svc.settings.Settings,
                    referral_svc.settings.Settings, router_svc.settings.Settings,
                    traffic_svc.settings.Settings]
SECRET_NAME_ENDINGS = ("_secret", "_token", "_tokens", "_key", "_password")


@pytest.mark.parametrize("settings_class", SETTINGS_CLASSES, ids=lambda c: c.__module__)
def test_every_setting_named_like_a_secret_is_a_secretstr(settings_class: type) -> None:
    for name, field in settings_class.model_fields.items():
        if name.endswith(SECRET_NAME_ENDINGS):
            assert field.annotation is SecretStr, f"{settings_class.__module__}.{name}"


def test_a_settings_repr_or_dump_never_shows_a_secret() -> None:
    edge_settings = edge.settings.Settings(
        webhook_secret=WEBHOOK_SECRET, admin_token=ADMIN_TOKEN, amocrm_access_token=AMOCRM_TOKEN
    )
    notifier = notifier_svc.settings.Settings(telegram_bot_token="123456:telegram-Secret")
    for settings, secrets in ((edge_settings, SECRETS[:3]),
                              (notifier, ["123456:telegram-Secret"])):
        for shown in (repr(settings), str(settings), str(settings.model_dump()),
                      settings.model_dump_json()):
            for secret in secrets:
                assert secret not in shown
        assert sorted(settings.secret_values()) == sorted(secrets)
    # The code that needs a secret still reads it.
    assert edge_settings.webhook_secret.get_secret_value() == WEBHOOK_SECRET


# --- the filter ----------------------------------------------------------------------------


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{self.format(record)} {record.__dict__.get('detail', '')}")


def test_the_filter_redacts_message_arguments_extras_exception_and_stack() -> None:
    handler = Collect()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactSecrets(["s3cr/et", "", "tok"]))
    log = logging.getLogger("tests.redaction")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("POST /webhook/amocrm/%s?t=%s", "s3cr/et", "tok", extra={
            "detail": {"path": ["/webhook/amocrm/s3cr%2Fet"]}})
        try:
            raise RuntimeError("failed at /webhook/amocrm/s3cr/et")
        except RuntimeError:
            log.exception("unhandled %d", 1, stack_info=True)
        log.warning("bad format %d", "s3cr/et")
        log.warning("encoded %s", "/webhook/amocrm/s3cr%2fet and %73%33cr/et")
    finally:
        log.removeHandler(handler)
    text = "\n".join(handler.lines)
    assert "s3cr" not in text and "tok" not in text.replace("Traceback", "")
    assert "POST /webhook/amocrm/***?t=***" in text
    assert "RuntimeError: failed at /webhook/amocrm/***" in text
    assert "{'path': ['/webhook/amocrm/***']}" in text
    assert "encoded /webhook/amocrm/*** and ***" in text
