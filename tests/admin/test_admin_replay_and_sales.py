"""Replay and the sales figures through real services: the edge app in-process, calling
RouterService, ReferralService, TrafficService and NotifierService on ephemeral ports."""

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import falcon.testing
import pytest

from amoroute.channels import channel
from amoroute.timeutil import to_timestamp
from amoroute.v1 import deal_pb2, referral_pb2, referral_pb2_grpc, traffic_pb2, traffic_pb2_grpc
from tests.admin.helpers import AUTH, FORM, Seeder, admin_client, migrated_edge_database
from tests.support.forms import encode, won_deal_body
from tests.support.services import start_services
from tests.support.waiting import eventually


@dataclass
class Stack:
    client: falcon.testing.TestClient
    seed: Seeder
    traffic: traffic_pb2_grpc.TrafficServiceStub
    referral: referral_pb2_grpc.ReferralServiceStub

    def webhook(self, *leads: dict[str, str]) -> list[int]:
        """Post the leads and wait until each event is routed (after the answer)."""
        reply = self.client.simulate_post("/webhook/amocrm", body=encode(*leads), headers=FORM)
        assert reply.status_code == 200, reply.text
        log_ids = reply.json["log_ids"]
        assert eventually(lambda: all(self._tried(i) for i in log_ids)), f"{log_ids} not routed"
        return log_ids

    def _tried(self, log_id: int) -> bool:
        row = self.get(f"webhook-logs/{log_id}")
        return bool(row["processed_at"]) or row["processing_status"] != "pending"

    def get(self, path: str, **params: object) -> dict:
        reply = self.client.simulate_get(f"/api/admin/{path}", params=params, headers=AUTH)
        assert reply.status_code == 200, reply.text
        return reply.json

    def replay(self, log_id: int) -> dict:
        reply = self.client.simulate_post(f"/api/admin/webhook-logs/{log_id}/replay",
                                          headers=AUTH)
        assert reply.status_code == 201, reply.text
        return reply.json


@pytest.fixture(scope="module")
def stack(make_database) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    services = start_services(make_database)
    addr = {name: services.addr(name) for name in ("referral", "traffic", "notifier")}
    router = services.start_router()
    database = migrated_edge_database(make_database)
    client = admin_client(database, router_addr=router,
                          referral_addr=addr["referral"], traffic_addr=addr["traffic"],
                          router_deadline_s=5.0, amocrm_domain="onaiagencykz",
                          amocrm_currency="KZT")
    channels = [channel(addr["traffic"]), channel(addr["referral"])]
    seeder = Seeder(database)
    yield Stack(client, seeder, traffic_pb2_grpc.TrafficServiceStub(channels[0]),
                referral_pb2_grpc.ReferralServiceStub(channels[1]))
    seeder.close()
    for ch in channels:
        ch.close()
    services.stop()


def unix(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())  # type: ignore[misc]


def test_replay_logs_a_new_event_and_the_sale_stays_credited_once(stack: Stack) -> None:
    [original] = stack.webhook(won_deal_body(9100001, "kenesary_fb", price=70000))
    assert stack.get(f"webhook-logs/{original}")["processing_status"] == "success"

    replay = stack.replay(original)
    assert replay["id"] > original
    assert (replay["source"], replay["replay_of"]) == ("replay", original)
    assert (replay["processing_status"], replay["routing_decision"]) == ("success", "traffic")
    assert replay["legs"]["traffic"] == "duplicate"
    assert replay["deal_data"] == stack.get(f"webhook-logs/{original}")["deal_data"]
    assert replay["deal_name"] == "Сделка #9100001"

    sales = stack.traffic.ListSales(traffic_pb2.ListSalesRequest(lead_id=9100001)).sales
    assert [(s.targetologist, s.amount) for s in sales] == [("Kenesary", 70000)]
    assert stack.get(f"webhook-logs/{original}")["replayed_as"] == [replay["id"]]
    [attempt] = stack.get(f"webhook-logs/{replay['id']}")["attempts"]
    assert (attempt["attempt"], attempt["status"], attempt["routing_decision"]) == (
        1, "success", "traffic")
    listed = stack.get("webhook-logs", lead_id=9100001)["items"]
    assert [(i["id"], i["source"]) for i in listed] == [
        (replay["id"], "replay"), (original, "amocrm")]


def test_replaying_an_event_that_gave_up_credits_its_sale(stack: Stack) -> None:
    failed = stack.seed.deal(9100002, "ref_COMEBACK", status="error", decision=None,
                             error="router UNAVAILABLE: down (gave up after 10 attempts)")
    assert stack.referral.ListConversions(
        referral_pb2.ListConversionsRequest(lead_id=9100002)).conversions == []

    replay = stack.replay(failed)
    assert (replay["processing_status"], replay["routing_decision"]) == ("success", "referral")
    assert replay["utm_source"] == "ref_COMEBACK" and replay["error_message"] is None
    [conversion] = stack.referral.ListConversions(
        referral_pb2.ListConversionsRequest(lead_id=9100002)).conversions
    assert conversion.referral_code == "COMEBACK"
    # The original keeps its own history; the replay has its own.
    original = stack.get(f"webhook-logs/{failed}")
    assert original["processing_status"] == "error"
    assert [a["status"] for a in original["attempts"]] == ["error"]


def test_traffic_dashboard_figures_are_the_services_figures(stack: Stack) -> None:
    stack.webhook(
        won_deal_body(9200001, "kenesary_fb", price=100000, updated_at=unix(2024, 1, 10)),
        won_deal_body(9200002, "aidana_reels", price=50000, updated_at=unix(2024, 1, 11),
                      index=1),
        won_deal_body(9200003, "kenesary_fb", price=30000, updated_at=unix(2024, 1, 31, 23),
                      index=2),
        won_deal_body(9200004, "kenesary_fb", price=7000, updated_at=unix(2024, 2, 1),
                      index=3),
    )
    january = stack.get("sales/traffic", **{"from": "2024-01-01T00:00:00Z",
                                            "to": "2024-02-01T00:00:00Z"})
    assert january["items"] == [
        {"targetologist": "Kenesary", "sales": 2, "revenue": 130000, "reversed_sales": 0,
         "reversed_revenue": 0},
        {"targetologist": "Aidana", "sales": 1, "revenue": 50000, "reversed_sales": 0,
         "reversed_revenue": 0},
    ]
    assert january["currency"] == "KZT"
    assert january["totals"] == {"sales": 3, "revenue": 180000, "reversed_sales": 0,
                                 "reversed_revenue": 0}
    assert (january["from"], january["to"]) == ("2024-01-01T00:00:00+00:00",
                                                "2024-02-01T00:00:00+00:00")
    direct = stack.traffic.GetTargetologistStats(traffic_pb2.GetTargetologistStatsRequest(
        won_from=to_timestamp(datetime(2024, 1, 1, tzinfo=UTC)),
        won_to=to_timestamp(datetime(2024, 2, 1, tzinfo=UTC))))
    assert sorted((s.targetologist, s.sales, s.revenue) for s in direct.stats) == sorted(
        (i["targetologist"], i["sales"], i["revenue"]) for i in january["items"])
    # An offset moves the range: from 2024-02-01 05:00 in Almaty is 2024-02-01 00:00 UTC.
    february = stack.get("sales/traffic", **{"from": "2024-02-01T05:00:00+05:00",
                                             "to": "2024-03-01"})
    assert february["items"] == [{"targetologist": "Kenesary", "sales": 1, "revenue": 7000,
                                  "reversed_sales": 0, "reversed_revenue": 0}]
    everything = stack.get("sales/traffic")
    assert everything["from"] is None and everything["totals"]["sales"] >= 4


def test_referral_dashboard_shows_conversions_and_commission_where_set(stack: Stack) -> None:
    stack.referral.UpsertPartner(referral_pb2.UpsertPartnerRequest(partner=referral_pb2.Partner(
        referral_code="PARTNER9", name="Partner Nine", commission_bp=1500)))
    stack.webhook(
        won_deal_body(9300001, "ref_partner9", price=40000, updated_at=unix(2023, 3, 5)),
        won_deal_body(9300002, "ref_PARTNER9", price=2000, updated_at=unix(2023, 3, 6), index=1),
        won_deal_body(9300003, "ref_NOBODY", price=10000, updated_at=unix(2023, 3, 7), index=2),
    )
    march = stack.get("sales/referral", **{"from": "2023-03-01", "to": "2023-04-01"})
    assert march["items"] == [
        {"referral_code": "PARTNER9", "partner_name": "Partner Nine", "partner_registered": True,
         "conversions": 2, "amount_total": 42000, "commission_bp": 1500,
         "commission_total": 6300, "reversed_conversions": 0, "reversed_amount": 0},
        {"referral_code": "NOBODY", "partner_name": "", "partner_registered": False,
         "conversions": 1, "amount_total": 10000, "commission_bp": 0, "commission_total": 0,
         "reversed_conversions": 0, "reversed_amount": 0},
    ]
    assert march["totals"] == {"conversions": 3, "amount_total": 52000, "commission_total": 6300,
                               "reversed_conversions": 0, "reversed_amount": 0}
    assert march["currency"] == "KZT"


def _csv(stack: Stack, path: str, **params: str) -> list[dict[str, str]]:
    reply = stack.client.simulate_get(f"/api/admin/{path}", params={**params, "format": "csv"},
                                      headers=AUTH)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "text/csv; charset=utf-8"
    assert reply.headers["content-disposition"].startswith("attachment; ")
    assert reply.content.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(io.StringIO(reply.content.decode("utf-8-sig"))))


def test_sales_tables_export_as_csv_with_the_same_range(stack: Stack) -> None:
    stack.referral.UpsertPartner(referral_pb2.UpsertPartnerRequest(partner=referral_pb2.Partner(
        referral_code="ALIYA", name="=Алия «Партнёр»", commission_bp=1000)))
    stack.webhook(
        won_deal_body(9400001, "kenesary_fb", price=12000, updated_at=unix(2022, 5, 5)),
        won_deal_body(9400002, "ref_ALIYA", price=5000, updated_at=unix(2022, 5, 6), index=1),
    )
    may = {"from": "2022-05-01", "to": "2022-06-01"}
    assert _csv(stack, "sales/traffic", **may) == [
        {"targetologist": "Kenesary", "sales": "1", "revenue": "12000", "reversed_sales": "0",
         "reversed_revenue": "0"}]
    [partner] = _csv(stack, "sales/referral", **may)
    # Cyrillic kept; a name a spreadsheet would run as a formula is defused.
    assert partner["partner_name"] == "'=Алия «Партнёр»"
    assert (partner["referral_code"], partner["conversions"], partner["amount_total"]) == (
        "ALIYA", "1", "5000")
    empty = stack.client.simulate_get("/api/admin/sales/traffic", headers=AUTH, params={
        "format": "csv", "from": "1999-01-01", "to": "1999-02-01"})
    assert empty.content.decode("utf-8-sig") == (
        "targetologist,sales,revenue,reversed_sales,reversed_revenue\r\n")
    bad = stack.client.simulate_get("/api/admin/sales/referral", params={"format": "pdf"},
                                    headers=AUTH)
    assert bad.status_code == 400 and bad.json["description"].startswith("format: must be one of")


def test_traffic_daily_series_sums_per_local_day_and_keeps_reversed_apart(stack: Stack) -> None:
    stack.webhook(
        won_deal_body(9300001, "kenesary_fb", price=1000, updated_at=unix(2025, 3, 1, 10)),
        won_deal_body(9300002, "kenesary_fb", price=2000, updated_at=unix(2025, 3, 1, 12),
                      index=1),
        # 20:00 UTC on the 2nd is the 3rd in Almaty (UTC+5).
        won_deal_body(9300003, "aidana_reels", price=500, updated_at=unix(2025, 3, 2, 20),
                      index=2),
        won_deal_body(9300004, "kenesary_fb", price=300, updated_at=unix(2025, 3, 3, 8),
                      index=3),
    )
    # The deal leaves the won status: its sale is reversed, out of the daily revenue.
    stack.traffic.ReverseSale(traffic_pb2.ReverseSaleRequest(
        lead_id=9300004, account_id=32145678, reversed_at=to_timestamp(datetime(2025, 3, 4, tzinfo=UTC)),
        reason="status changed"))
    week = {"from": "2025-03-01T00:00:00+05:00", "to": "2025-03-04T00:00:00+05:00"}
    local = stack.get("sales/traffic/daily", **week, tz="Asia/Almaty")
    assert local["days"] == ["2025-03-01", "2025-03-02", "2025-03-03"]
    assert local["currency"] == "KZT"
    by_name = {s["targetologist"]: s for s in local["series"]}
    assert by_name["Kenesary"]["daily_revenue"] == [3000, 0, 0]
    assert by_name["Kenesary"]["daily_sales"] == [2, 0, 0]
    assert (by_name["Kenesary"]["reversed_sales"],
            by_name["Kenesary"]["reversed_revenue"]) == (1, 300)
    assert by_name["Aidana"]["daily_revenue"] == [0, 0, 500]
    assert local["totals"] == {"sales": 3, "revenue": 3500, "reversed_sales": 1,
                               "reversed_revenue": 300}
    utc = stack.get("sales/traffic/daily", **{"from": "2025-03-01", "to": "2025-03-04"})
    assert utc["tz"] == "UTC"
    assert {s["targetologist"]: s["daily_revenue"] for s in utc["series"]}["Aidana"] == [
        0, 500, 0]


@pytest.mark.parametrize(("params", "field"), [
    ({"to": "2025-03-04"}, "from"),
    ({"from": "2025-03-01"}, "to"),
    ({"from": "2024-01-01", "to": "2025-03-04"}, "to"),
    ({"from": "2025-03-04", "to": "2025-03-01"}, "to"),
    ({"from": "2025-03-01", "to": "2025-03-04", "tz": "Mars/Olympus"}, "tz"),
])
def test_traffic_daily_series_refuses_a_bad_range(
    stack: Stack, params: dict[str, str], field: str
) -> None:
    reply = stack.client.simulate_get("/api/admin/sales/traffic/daily", params=params,
                                      headers=AUTH)
    assert reply.status_code == 400, reply.text
    assert field in reply.text


def test_a_traffic_row_drills_down_to_its_sales_with_links(stack: Stack) -> None:
    stack.webhook(
        won_deal_body(9450001, "kenesary_fb", price=4000, updated_at=unix(2025, 5, 2)),
        won_deal_body(9450002, "kenesary_fb", price=6000, updated_at=unix(2025, 5, 3), index=1),
    )
    stack.traffic.ReverseSale(traffic_pb2.ReverseSaleRequest(
        lead_id=9450002, account_id=32145678,
        reversed_at=to_timestamp(datetime(2025, 5, 4, tzinfo=UTC)), reason="status changed"))
    page = stack.get("sales/traffic/sales", targetologist="kenesary",
                     **{"from": "2025-05-01", "to": "2025-06-01"})
    by_lead = {item["lead_id"]: item for item in page["items"]}
    assert set(by_lead) == {9450001, 9450002}
    credited, reversed_ = by_lead[9450001], by_lead[9450002]
    assert (credited["amount"], credited["reversed_at"]) == (4000, None)
    assert credited["won_at"] == "2025-05-02T00:00:00+00:00"
    assert credited["utm"]["source"] == "kenesary_fb"
    assert credited["amocrm_url"] == "https://onaiagencykz.amocrm.ru/leads/detail/9450001"
    assert credited["log_url"] == "#/logs?lead_id=9450001"
    assert reversed_["reversed_at"] == "2025-05-04T00:00:00+00:00"
    # The table shows the reversed sale apart from the credited one.
    [row] = stack.get("sales/traffic", **{"from": "2025-05-01", "to": "2025-06-01"})["items"]
    assert (row["sales"], row["revenue"], row["reversed_sales"], row["reversed_revenue"]) == (
        1, 4000, 1, 6000)
    missing = stack.client.simulate_get("/api/admin/sales/traffic/sales", headers=AUTH)
    assert missing.status_code == 400 and "targetologist" in missing.text


def test_referral_daily_series_and_drill_down_keep_a_reversed_conversion_apart(
    stack: Stack,
) -> None:
    stack.webhook(
        won_deal_body(9460001, "ref_daily7", price=1000, updated_at=unix(2025, 4, 1, 10)),
        # 20:00 UTC on the 1st is the 2nd in Almaty (UTC+5).
        won_deal_body(9460002, "ref_DAILY7", price=2500, updated_at=unix(2025, 4, 1, 20),
                      index=1),
        won_deal_body(9460003, "ref_daily7", price=700, updated_at=unix(2025, 4, 2, 8), index=2),
        won_deal_body(9460004, "ref_other8", price=300, updated_at=unix(2025, 4, 2, 9), index=3),
    )
    stack.referral.ReverseConversion(referral_pb2.ReverseConversionRequest(
        lead_id=9460003, account_id=32145678,
        reversed_at=to_timestamp(datetime(2025, 4, 3, tzinfo=UTC)), reason="status changed"))
    days = {"from": "2025-04-01T00:00:00+05:00", "to": "2025-04-03T00:00:00+05:00"}
    local = stack.get("sales/referral/daily", **days, tz="Asia/Almaty")
    assert local["days"] == ["2025-04-01", "2025-04-02"] and local["currency"] == "KZT"
    by_code = {s["referral_code"]: s for s in local["series"]}
    assert by_code["DAILY7"]["daily_revenue"] == [1000, 2500]
    assert (by_code["DAILY7"]["reversed_sales"], by_code["DAILY7"]["reversed_revenue"]) == (1, 700)
    assert by_code["OTHER8"]["daily_revenue"] == [0, 300]
    assert local["totals"] == {"sales": 3, "revenue": 3800, "reversed_sales": 1,
                               "reversed_revenue": 700}
    one = stack.get("sales/referral/daily", **days, tz="Asia/Almaty", referral_code="other8")
    assert [s["referral_code"] for s in one["series"]] == ["OTHER8"]
    # The table shows the reversed conversion apart; the row drills down to its sales.
    table = {i["referral_code"]: i for i in stack.get("sales/referral", **days)["items"]}
    assert (table["DAILY7"]["conversions"], table["DAILY7"]["reversed_conversions"],
            table["DAILY7"]["reversed_amount"]) == (2, 1, 700)
    page = stack.get("sales/referral/sales", referral_code="daily7", **days)
    assert page["referral_code"] == "DAILY7" and page["next_page_token"] is None
    by_lead = {item["lead_id"]: item for item in page["items"]}
    assert set(by_lead) == {9460001, 9460002, 9460003}
    assert by_lead[9460003]["reversed_at"] == "2025-04-03T00:00:00+00:00"
    assert by_lead[9460001]["utm"]["source"] == "ref_daily7"
    assert by_lead[9460001]["amocrm_url"] == "https://onaiagencykz.amocrm.ru/leads/detail/9460001"
    assert by_lead[9460001]["log_url"] == "#/logs?lead_id=9460001"
    bad = stack.client.simulate_get("/api/admin/sales/referral/sales", headers=AUTH,
                                    params={"referral_code": "ref?x"})
    assert bad.status_code == 400 and bad.json["description"].startswith("referral_code")
    missing = stack.client.simulate_get("/api/admin/sales/referral/sales", headers=AUTH)
    assert missing.status_code == 400 and "referral_code" in missing.text


def test_a_drill_down_exports_every_sale_of_its_range_as_csv(stack: Stack) -> None:
    """More sales than one page of the service: the export holds them all, in order."""
    won = to_timestamp(datetime(2025, 6, 1, 1, tzinfo=UTC))
    sales = [
        traffic_pb2.RecordSaleRequest(sale=traffic_pb2.Sale(
            lead_id=9470000 + n, account_id=32145678, targetologist="Aidana", amount=100 + n,
            won_at=won, utm=deal_pb2.UtmMarks(source="aidana_csv")))
        for n in range(1, 1031)
    ]
    for start in range(0, len(sales), 500):
        stack.traffic.BatchRecordSales(
            traffic_pb2.BatchRecordSalesRequest(requests=sales[start:start + 500]))
    rows = _csv(stack, "sales/traffic/sales", targetologist="Aidana",
                **{"from": "2025-06-01", "to": "2025-06-02"})
    assert len(rows) == 1030
    assert [int(r["lead_id"]) for r in rows] == list(range(9471030, 9470000, -1))
    assert rows[0]["amount"] == "1130" and rows[0]["utm_source"] == "aidana_csv"
    assert rows[0]["amocrm_url"] == "https://onaiagencykz.amocrm.ru/leads/detail/9471030"
    assert rows[0]["won_at"] == "2025-06-01T01:00:00+00:00" and rows[0]["reversed_at"] == ""
