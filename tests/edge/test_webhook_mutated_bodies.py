"""Real AmoCRM bodies, mutated, through the whole webhook resource on a real
database: never a 5xx, every body logged, and no lead of a body lost (each
lead id it names is in a stored row, as a lead or inside the body kept raw)."""

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote_to_bytes

import falcon.testing
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.__main__ import upgrade_database
from edge.app import create_app
from edge.log_store import webhook_logs
from edge.settings import Settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "amocrm"
BODIES = [path.read_bytes() for path in sorted(FIXTURES.glob("*.form"))]
FORM = "application/x-www-form-urlencoded"
# leads[<action>][<n>][id]=<digits>, percent-encoded or not
LEAD_ID = re.compile(rb"^leads\[[^\[\]]*\]\[[^\[\]]*\]\[id\]=([0-9]{1,18})$")


class Edge:
    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)
        self.client = falcon.testing.TestClient(create_app(Settings(
            edge_database_url=url, router_addr="127.0.0.1:9", router_deadline_s=0.3,
            amocrm_domain="onaiagencykz",
        )))

    def rows(self, ids: list[int]) -> list[dict]:
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(webhook_logs).where(webhook_logs.c.id.in_(ids)))
            return [dict(r._mapping) for r in found]


@pytest.fixture(scope="module")
def edge(make_database) -> Iterator[Edge]:  # type: ignore[no-untyped-def]
    url = make_database("edge")
    upgrade_database(Settings(edge_database_url=url))
    e = Edge(url)
    yield e
    e.engine.dispose()


PIECES = st.sampled_from([
    b"leads%5Bstatus%5D%5B0%5D%5Bid%5D=", b"leads[add][1][id]=", b"%5B", b"%5D", b"[", b"]",
    b"&", b"=", b"%", b"%D0", b"%00", b"\x00", b"\xff", b"+", b"0", b"24681357", b"-1",
    b"account%5Bsubdomain%5D=evilcorp", b"contacts%5Badd%5D%5B0%5D%5Bid%5D=5", b"x" * 300,
])


@st.composite
def mutated_bodies(draw: st.DrawFn) -> bytes:
    """A fixture body with a few of AmoCRM's fields dropped, repeated, moved, cut,
    spliced from another fixture, or with bytes put in or replaced."""
    pairs = draw(st.sampled_from(BODIES)).split(b"&")
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, max(len(pairs) - 1, 0)))
        op = draw(st.sampled_from(["drop", "repeat", "move", "cut", "splice", "insert", "replace"]))
        if op == "drop" and pairs:
            pairs.pop(at)
        elif op == "repeat" and pairs:
            pairs.insert(draw(st.integers(0, len(pairs))), pairs[at])
        elif op == "move" and pairs:
            pairs.insert(draw(st.integers(0, len(pairs) - 1)), pairs.pop(at))
        elif op == "cut" and pairs:
            pairs[at] = pairs[at][: draw(st.integers(0, len(pairs[at])))]
        elif op == "splice":
            pairs += draw(st.sampled_from(BODIES)).split(b"&")[: draw(st.integers(0, 20))]
        elif op == "insert":
            pairs.insert(at, b"".join(draw(st.lists(PIECES, min_size=1, max_size=4))))
        elif pairs:
            pair = pairs[at]
            spot = draw(st.integers(0, len(pair)))
            pairs[at] = pair[:spot] + draw(PIECES) + pair[spot + 1 :]
    return b"&".join(pairs)


def named_lead_ids(body: bytes) -> set[str]:
    """The lead ids the body names in leads[<action>][<n>][id] fields; of a name
    given twice, the last (the parser's documented rule: the last value wins)."""
    ids = {}
    for pair in body.split(b"&"):
        decoded = unquote_to_bytes(pair.replace(b"+", b" "))
        match = LEAD_ID.match(decoded)
        if match:
            ids[decoded.partition(b"=")[0]] = match[1].decode()
    return set(ids.values())


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=mutated_bodies())
def test_mutated_amocrm_body_is_answered_logged_and_loses_no_lead(edge: Edge, body: bytes) -> None:
    reply = edge.client.simulate_post("/webhook/amocrm", body=body, headers={"Content-Type": FORM})
    assert reply.status_code == 200, (reply.status_code, reply.text)
    rows = edge.rows(reply.json["log_ids"])
    assert rows and len(rows) == reply.json["logged"]
    stored = json.dumps([row["deal_data"] for row in rows], ensure_ascii=False)
    logged_leads = {str(row["lead_id"]) for row in rows if row["lead_id"] is not None}
    raw = b"".join(base64.b64decode(row["deal_data"].get("raw_body_base64", "")) for row in rows)
    for lead_id in named_lead_ids(body):
        assert lead_id in logged_leads or lead_id in stored or lead_id.encode() in raw, (
            lead_id, rows)
