"""The admin API's insights on a real app and database: the flow time series (buckets by
status, percentiles, one point per interval) and the CSV export of the log list."""

import csv
import io
from datetime import datetime, timedelta

import falcon.testing
import pytest
from pydantic import ValidationError

from amoroute.timeutil import now
from edge.flow_series import WINDOWS, percentile_cont
from edge.log_store import LogQuery, NewLog
from edge.settings import Settings
from tests.admin.helpers import AUTH, Seeder, admin_client, migrated_edge_database


@pytest.fixture(scope="module")
def empty_client(make_database) -> falcon.testing.TestClient:  # type: ignore[no-untyped-def]
    """The app on a database no test writes to."""
    return admin_client(migrated_edge_database(make_database))


# --- the time series --------------------------------------------------------------------------


def _bucket_of(buckets: list[dict], interval_s: int, moment: datetime) -> int:
    """Which of the answer's buckets holds `moment`."""
    for index, bucket in enumerate(buckets):
        start = datetime.fromisoformat(bucket["start"])
        if start <= moment < start + timedelta(seconds=interval_s):
            return index
    raise AssertionError(f"{moment} lies in no bucket")


def test_time_series_counts_each_status_per_bucket_with_percentiles(make_database) -> None:  # type: ignore[no-untyped-def]
    database = migrated_edge_database(make_database)
    seed = Seeder(database)
    moment = now()
    # (hours ago, status, processing_ms): two busy hours, the rest empty.
    events = [
        (2, "success", 10), (2, "success", 20), (2, "success", 30), (2, "error", 400),
        (2, "partial", 50), (2, "pending", None),
        (5, "success", 100), (5, "error", 1000), (5, "pending", None),
        (30, "error", 5),  # outside the 24h window
    ]
    for n, (hours, status, ms) in enumerate(events):
        seed.deal(8800000 + n, "kenesary_fb", status=status, processing_ms=ms,
                  error="traffic: UNAVAILABLE" if status == "error" else None,
                  received_at=moment - timedelta(hours=hours, minutes=1))
    seed.close()
    client = admin_client(database)

    reply = client.simulate_get("/api/admin/webhook-stats/timeseries", headers=AUTH)
    assert reply.status_code == 200, reply.text
    series = reply.json
    assert series["window"] == "24h" and series["interval_s"] == 3600
    buckets = series["buckets"]
    # A point per interval, empty ones included, in time order, the last holding now.
    assert len(buckets) == 24
    starts = [datetime.fromisoformat(b["start"]) for b in buckets]
    assert starts == sorted(starts)
    assert starts[-1] <= now() < starts[-1] + timedelta(hours=1)
    assert series["since"] == buckets[0]["start"]

    expected: dict[int, list[tuple[str, int | None]]] = {}
    for hours, status, ms in events[:-1]:
        index = _bucket_of(buckets, 3600, moment - timedelta(hours=hours, minutes=1))
        expected.setdefault(index, []).append((status, ms))
    assert len(expected) == 2
    for index, bucket in enumerate(buckets):
        rows = expected.get(index, [])
        for status in ("success", "partial", "error", "pending"):
            assert bucket[status] == sum(1 for s, _ in rows if s == status), (index, status)
        assert bucket["total"] == len(rows)
        times = sorted(ms for _, ms in rows if ms is not None)
        for key, fraction in (("p50_ms", 0.5), ("p95_ms", 0.95)):
            want = percentile_cont(times, fraction)
            assert bucket[key] == (None if want is None else round(want, 1)), (index, key)
    busy = buckets[_bucket_of(buckets, 3600, moment - timedelta(hours=2, minutes=1))]
    assert (busy["success"], busy["error"], busy["p50_ms"], busy["p95_ms"]) == (3, 1, 30.0, 330.0)

    # A second call (its old buckets kept by the process) answers the same.
    again = client.simulate_get("/api/admin/webhook-stats/timeseries", headers=AUTH).json
    if again["since"] == series["since"]:  # not across an hour's turn
        assert again["buckets"] == buckets


@pytest.mark.parametrize(("window", "points", "interval_s"),
                         [("1h", 60, 60), ("24h", 24, 3600), ("7d", 28, 21600),
                          ("30d", 30, 86400)])
def test_every_window_has_a_point_per_interval(empty_client, window: str, points: int,  # type: ignore[no-untyped-def]
                                                interval_s: int) -> None:
    assert window in WINDOWS
    client = empty_client
    reply = client.simulate_get("/api/admin/webhook-stats/timeseries",
                                params={"window": window}, headers=AUTH)
    assert reply.status_code == 200, reply.text
    assert reply.json["interval_s"] == interval_s
    assert len(reply.json["buckets"]) == points
    assert all(b["total"] == 0 and b["p95_ms"] is None for b in reply.json["buckets"])


@pytest.mark.parametrize("window", ["2h", "1w", "abc", "24H"])
def test_time_series_refuses_a_window_it_does_not_offer(empty_client, window: str) -> None:  # type: ignore[no-untyped-def]
    client = empty_client
    reply = client.simulate_get("/api/admin/webhook-stats/timeseries",
                                params={"window": window}, headers=AUTH)
    assert reply.status_code == 400
    assert reply.json["description"] == "window: must be one of 1h, 24h, 7d, 30d"
    unknown = client.simulate_get("/api/admin/webhook-stats/timeseries",
                                  params={"span": "1h"}, headers=AUTH)
    assert unknown.status_code == 400 and unknown.json["description"].startswith("span:")


# --- the CSV export and the total -------------------------------------------------------------


def _csv_rows(reply) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "text/csv; charset=utf-8"
    assert reply.headers["content-disposition"].startswith('attachment; filename="webhook-logs-')
    assert reply.content.startswith(b"\xef\xbb\xbf")  # the BOM, so Excel reads UTF-8
    return list(csv.DictReader(io.StringIO(reply.content.decode("utf-8-sig"))))


def test_csv_export_keeps_the_filters_cyrillic_and_defuses_formulas(make_database) -> None:  # type: ignore[no-untyped-def]
    database = migrated_edge_database(make_database)
    seed = Seeder(database)
    failed = seed.deal(8810001, "=HYPERLINK(\"http://evil\")", "-camp", name="Сделка «Алия»",
                       status="error", error="traffic: UNAVAILABLE")
    seed.deal(8810002, "kenesary_fb", name="Обычная сделка")
    other_failed = seed.deal(8810003, "@SUM(A1)", "+1", name="Ещё", status="error",
                             error="referral: UNAVAILABLE", source="reconcile")
    seed.close()
    client = admin_client(database)

    rows = _csv_rows(client.simulate_get("/api/admin/webhook-logs",
                                         params={"format": "csv", "status": "error"}, headers=AUTH))
    assert [int(r["id"]) for r in rows] == [other_failed, failed]  # newest first
    first = rows[1]
    assert first["deal_name"] == "Сделка «Алия»"
    assert first["utm_source"] == "'=HYPERLINK(\"http://evil\")"
    assert first["utm_campaign"] == "'-camp"
    assert first["processing_status"] == "error" and first["lead_id"] == "8810001"
    assert first["error_message"] == "traffic: UNAVAILABLE"
    assert datetime.fromisoformat(first["received_at"]).tzinfo is not None
    assert rows[0]["utm_source"] == "'@SUM(A1)" and rows[0]["utm_campaign"] == "'+1"
    assert "deal_data" not in first

    # Every filter of the list applies: source, search text (Cyrillic too).
    by_source = _csv_rows(client.simulate_get(
        "/api/admin/webhook-logs", params={"format": "csv", "source": "reconcile"}, headers=AUTH))
    assert [int(r["id"]) for r in by_source] == [other_failed]
    searched = _csv_rows(client.simulate_get(
        "/api/admin/webhook-logs", params={"format": "csv", "q": "сделка"}, headers=AUTH))
    assert {r["lead_id"] for r in searched} == {"8810001", "8810002"}
    nothing = _csv_rows(client.simulate_get(
        "/api/admin/webhook-logs", params={"format": "csv", "lead_id": "1"}, headers=AUTH))
    assert nothing == []

    # The list's total, on request, counts every match of the filters.
    listed = client.simulate_get("/api/admin/webhook-logs",
                                 params={"status": "error", "limit": "1", "total": "true"},
                                 headers=AUTH).json
    assert listed["total"] == 2 and len(listed["items"]) == 1
    assert "total" not in client.simulate_get("/api/admin/webhook-logs", headers=AUTH).json


def test_csv_export_of_many_rows_comes_in_keyset_pages(make_database) -> None:  # type: ignore[no-untyped-def]
    database = migrated_edge_database(make_database)
    seed = Seeder(database)
    count = 4500
    seed.store.insert([NewLog(source="amocrm", deal_data={"n": n}, lead_id=9000000 + n,
                              deal_name=f"Сделка {n}") for n in range(count)])
    pages = list(seed.store.export_pages(LogQuery(), ("id",), page_size=1000))
    assert [len(page) for page in pages] == [1000, 1000, 1000, 1000, 500]
    seed.close()
    client = admin_client(database)

    rows = _csv_rows(client.simulate_get("/api/admin/webhook-logs", params={"format": "csv"},
                                         headers=AUTH))
    ids = [int(r["id"]) for r in rows]
    assert len(ids) == count and ids == sorted(set(ids), reverse=True)
    assert {r["deal_name"] for r in rows} == {f"Сделка {n}" for n in range(count)}


@pytest.mark.parametrize(("params", "message"), [
    ({"format": "xml"}, "format: must be one of json, csv"),
    ({"format": "csv", "limit": "10"}, "limit: not taken with format=csv"),
    ({"format": "csv", "cursor": "abc"}, "cursor: not taken with format=csv"),
    ({"format": "csv", "total": "true"}, "total: not taken with format=csv"),
    ({"total": "maybe"}, "total: must be true or false"),
    ({"format": "csv", "status": "lost"}, "status: must be one of"),
])
def test_list_options_refuse_bad_values_by_name(empty_client, params: dict[str, str],  # type: ignore[no-untyped-def]
                                                 message: str) -> None:
    client = empty_client
    reply = client.simulate_get("/api/admin/webhook-logs", params=params, headers=AUTH)
    assert reply.status_code == 400
    assert reply.json["description"].startswith(message)


# --- the time zone ----------------------------------------------------------------------------


def test_the_servers_time_zone_reaches_the_page(make_database,  # type: ignore[no-untyped-def]
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    database = migrated_edge_database(make_database)
    monkeypatch.delenv("ADMIN_TIME_ZONE", raising=False)
    plain = admin_client(database).simulate_get("/admin/").text
    assert '<meta name="amoroute-time-zone" content="">' in plain
    page = admin_client(database, admin_time_zone="Asia/Almaty").simulate_get("/admin/").text
    assert '<meta name="amoroute-time-zone" content="Asia/Almaty">' in page
    monkeypatch.setenv("ADMIN_TIME_ZONE", "Asia/Almaty")
    assert Settings().admin_time_zone == "Asia/Almaty"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "UTC+5", "../etc/passwd"])
def test_an_unknown_time_zone_stops_the_start_named(zone: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_TIME_ZONE", zone)
    with pytest.raises(ValidationError, match="ADMIN_TIME_ZONE: .* is not an IANA time zone"):
        Settings()
