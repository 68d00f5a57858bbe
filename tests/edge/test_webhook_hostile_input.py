"""Whatever a stranger posts to the public webhook URL: the answer is 200 or a
4xx, fast, and the body is logged (or logged as rejected); nothing is lost and
nothing crashes. The real app on a real database; the router is unreachable,
so nothing here is routed."""

import logging
import time
from collections.abc import Iterator
from urllib.parse import quote

import falcon.testing
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.__main__ import upgrade_database
from edge.amocrm_form import FormLimits
from edge.app import create_app
from edge.log_store import webhook_logs
from edge.settings import Settings
from edge.webhook import intake
from tests.support.forms import encode, won_deal_body

FORM = "application/x-www-form-urlencoded"
SECRET = "s3cr3t-path-segment-0123456789abcdef"


class Edge:
    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)
        settings_ = Settings(
            edge_database_url=url, router_addr="127.0.0.1:9", router_deadline_s=0.3,
            amocrm_domain="onaiagencykz", webhook_secret=SECRET, max_body_bytes=65536,
        )
        self.client = falcon.testing.TestClient(create_app(settings_))

    def post(self, body: bytes, content_type: str = FORM, path: str = f"/webhook/amocrm/{SECRET}"):  # type: ignore[no-untyped-def]
        return self.client.simulate_post(path, body=body, headers={"Content-Type": content_type})

    def rows(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(webhook_logs)).scalar_one()

    def newest(self) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(webhook_logs).order_by(webhook_logs.c.id.desc())).first()
        assert row is not None
        return dict(row._mapping)


@pytest.fixture(scope="module")
def edge(make_database) -> Iterator[Edge]:  # type: ignore[no-untyped-def]
    url = make_database("edge")
    upgrade_database(Settings(edge_database_url=url))
    e = Edge(url)
    yield e
    e.engine.dispose()


def assert_answered_and_logged(edge: Edge, body: bytes, content_type: str = FORM) -> None:
    before = edge.rows()
    started = time.monotonic()
    reply = edge.post(body, content_type)
    elapsed = time.monotonic() - started
    assert reply.status_code in (200, 413, 415), (reply.status_code, reply.text)
    assert elapsed < 2.0
    assert edge.rows() > before, "the body was neither logged nor logged as rejected"


KEY_PART = st.sampled_from(["leads", "status", "add", "custom_fields", "values", "value", "id",
                            "account", "subdomain", "0", "1", "999999999", "", "[", "]", "%5B"])
KEY = st.lists(KEY_PART, min_size=1, max_size=12).map(lambda parts: parts[0] + "".join(
    f"[{p}]" for p in parts[1:]))
VALUE = st.text(max_size=40) | st.sampled_from(["24681357", "142", "10418746", "onaiagencykz",
                                                "ref_X", "kenesary_fb", "-1", "1e309"])
FORM_BODIES = st.lists(st.tuples(KEY, VALUE), max_size=40).map(
    lambda pairs: "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs).encode())
RAW_BODIES = st.binary(max_size=3000)
CONTENT_TYPES = st.sampled_from([FORM, FORM + "; charset=UTF-8", "application/json",
                                 "text/plain", "", FORM + "; charset=koi8-r", "multipart/form-data"])
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(body=FORM_BODIES | RAW_BODIES)
def test_any_form_body_is_answered_fast_and_logged(edge: Edge, body: bytes) -> None:
    assert_answered_and_logged(edge, body)


@FUZZ
@given(body=FORM_BODIES, content_type=CONTENT_TYPES)
def test_any_content_type_is_answered_fast_and_logged(edge: Edge, body: bytes, content_type: str) -> None:
    assert_answered_and_logged(edge, body, content_type)


@pytest.mark.parametrize(
    "body",
    [
        b"leads%5Bstatus%5D%5B999999999%5D%5Bid%5D=1",
        b"&".join(b"k%d=v" % i for i in range(100_000))[:65000],
        b"a" + b"%5Bx%5D" * 5000 + b"=1",
        b"\xff\xfe\xfd" * 100,
        encode(won_deal_body(1, "ref_A")) + b"&leads%5Bstatus%5D%5B0%5D%5Bid%5D=2",
        encode(won_deal_body(2, "kenesary_\x00fb", name="a\x00b")),
        b"garbage\x00with-nul",
    ],
    ids=["huge-index", "many-keys", "deep-brackets", "invalid-utf8", "repeated-key", "nul-in-values",
         "nul-in-garbage"],
)
def test_known_hostile_bodies_are_logged_not_crashing(edge: Edge, body: bytes) -> None:
    assert_answered_and_logged(edge, body)


def test_foreign_account_is_logged_as_rejected_and_not_routed(edge: Edge) -> None:
    body = encode(won_deal_body(42, "kenesary_fb")).replace(b"onaiagencykz", b"evilcorp")
    assert edge.post(body).status_code == 200
    row = edge.newest()
    assert row["processing_status"] == "error" and row["routing_decision"] == "ignored"
    assert "evilcorp" in row["error_message"] and row["lead_id"] is None
    assert row["retry_at"] is None  # never retried, never routed


def test_oversized_body_is_413_and_leaves_a_sample(edge: Edge) -> None:
    reply = edge.post(b"x=" + b"y" * 70_000)
    assert reply.status_code == 413
    row = edge.newest()
    assert "MAX_BODY_BYTES" in row["error_message"]
    assert len(row["deal_data"]["raw_body"]) <= 4096


def test_wrong_content_type_is_415_with_a_logged_reason(edge: Edge) -> None:
    reply = edge.post(b'{"leads": []}', "application/json")
    assert reply.status_code == 415
    assert "application/json" in edge.newest()["error_message"]


def test_wrong_or_missing_secret_is_404_and_the_secret_is_never_logged(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = encode(won_deal_body(43, "kenesary_fb"))
    assert edge.post(body, path="/webhook/amocrm/wrong-secret").status_code == 404
    assert edge.post(body, path="/webhook/amocrm").status_code == 404
    assert edge.post(body).status_code == 200
    assert SECRET not in caplog.text
    assert all(SECRET not in str(v) for v in edge.newest().values())


@pytest.mark.parametrize("body", [b"", b"&&", b"=1", b"foo=bar", b"contacts[add][0][id]=5"])
def test_a_body_without_lead_events_follows_one_rule_whatever_it_holds(edge: Edge, body: bytes) -> None:
    # This edge expects an account (AMOCRM_DOMAIN): a body naming none is rejected, logged.
    reply = edge.post(body)
    assert reply.status_code == 200
    [log_id] = reply.json["log_ids"]
    assert reply.json["links"] == [f"/admin/#/logs/{log_id}"]
    row = edge.newest()
    assert (row["id"], row["routing_decision"], row["processing_status"]) == (
        log_id, "ignored", "error")
    assert "account" in row["error_message"]
    # Without an expected account, the same bodies are ignored: nothing to route.
    [logged], [deal] = intake(body, FORM, FormLimits())
    assert (logged.routing_decision, logged.processing_status, deal) == (
        "ignored", "success", None)
    assert logged.error_message == "no lead events in the body"
