"""The pipeline end to end: AmoCRM webhook -> edge -> router -> referral / traffic -> Telegram."""

import time
from pathlib import Path

from amoroute.v1 import notifier_pb2, referral_pb2, traffic_pb2
from tests.support.forms import encode, won_deal_body
from tests.support.waiting import eventually


def sales(e2e, lead_id: int) -> list:  # type: ignore[no-untyped-def]
    return list(e2e.traffic.ListSales(traffic_pb2.ListSalesRequest(lead_id=lead_id)).sales)


def conversions(e2e, lead_id: int) -> list:  # type: ignore[no-untyped-def]
    reply = e2e.referral.ListConversions(referral_pb2.ListConversionsRequest(lead_id=lead_id))
    return list(reply.conversions)


def messages_about(e2e, lead_id: int) -> list:  # type: ignore[no-untyped-def]
    return [m for m in e2e.telegram.delivered if str(lead_id) in m.body.get("text", "")]


def test_kenesary_sale_reaches_traffic_dashboard_and_telegram(e2e, fixtures_dir: Path) -> None:  # type: ignore[no-untyped-def]
    body = (fixtures_dir / "status_won_with_utm.form").read_bytes()
    reply = e2e.post_webhook(body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["success"] is True

    [log] = e2e.settled_logs(24681357)
    assert (log["routing_decision"], log["processing_status"]) == ("traffic", "success")
    assert log["utm_source"] == "kenesary_fb"
    assert log["processed_at"] is not None
    [sale] = sales(e2e, 24681357)
    assert (sale.targetologist, sale.amount) == ("Kenesary", 150000)
    assert conversions(e2e, 24681357) == []
    [message] = eventually(lambda: messages_about(e2e, 24681357))
    assert message.body["chat_id"] == "-1001234567890"
    assert "https://onaiagencykz.amocrm.ru/leads/detail/24681357" in message.body["text"]
    assert message.token == "123456:e2e-test-token"


def test_batch_body_credits_referral_only_and_logs_organic_as_unknown(e2e, fixtures_dir: Path) -> None:  # type: ignore[no-untyped-def]
    reply = e2e.post_webhook((fixtures_dir / "batch_two_leads.form").read_bytes())
    assert reply.status_code == 200
    assert reply.json()["logged"] == 2

    [referral_log] = e2e.settled_logs(24681402)
    assert (referral_log["routing_decision"], referral_log["processing_status"]) == (
        "referral", "success")
    [conversion] = conversions(e2e, 24681402)
    assert (conversion.referral_code, conversion.amount) == ("TEST123", 99000)
    assert sales(e2e, 24681402) == []
    assert messages_about(e2e, 24681402) == []

    [organic] = e2e.settled_logs(24681415)
    assert (organic["routing_decision"], organic["utm_source"]) == ("unknown", "google_organic")
    assert sales(e2e, 24681415) == [] and conversions(e2e, 24681415) == []


def test_deal_with_referral_code_and_targetologist_is_credited_to_both(e2e) -> None:  # type: ignore[no-untyped-def]
    body = encode(won_deal_body(5550001, "ref_PARTNER7", "kenesary_june", price=42000))
    assert e2e.post_webhook(body).status_code == 200
    [log] = e2e.settled_logs(5550001)
    assert (log["routing_decision"], log["processing_status"]) == ("both", "success")
    assert conversions(e2e, 5550001)[0].referral_code == "PARTNER7"
    assert sales(e2e, 5550001)[0].targetologist == "Kenesary"
    assert eventually(lambda: messages_about(e2e, 5550001))


def test_duplicate_webhook_credits_the_sale_once(e2e) -> None:  # type: ignore[no-untyped-def]
    body = encode(won_deal_body(5550002, "kenesary_fb"))
    assert e2e.post_webhook(body).status_code == 200
    assert e2e.post_webhook(body).status_code == 200

    logs = e2e.settled_logs(5550002)
    assert [r["processing_status"] for r in logs] == ["success", "success"]
    assert len(sales(e2e, 5550002)) == 1
    eventually(lambda: messages_about(e2e, 5550002))
    time.sleep(0.5)  # give a wrongly repeated message the chance to show up
    assert len(messages_about(e2e, 5550002)) == 1
    notes = e2e.notifier.ListNotifications(notifier_pb2.ListNotificationsRequest(lead_id=5550002))
    assert len(notes.notifications) == 1


def test_not_won_deal_is_logged_as_ignored_and_credits_nobody(e2e) -> None:  # type: ignore[no-untyped-def]
    body = encode(won_deal_body(5550003, "kenesary_fb", status_id=143))
    assert e2e.post_webhook(body).status_code == 200
    [log] = e2e.settled_logs(5550003)
    assert (log["routing_decision"], log["processing_status"]) == ("ignored", "success")
    assert sales(e2e, 5550003) == []


def test_garbage_body_is_answered_200_and_logged_whole(e2e) -> None:  # type: ignore[no-untyped-def]
    garbage = b"\xff\xfe not a form at all %%% leads[status][0][id]=oops"
    reply = e2e.post_webhook(garbage)
    assert reply.status_code == 200
    log = e2e.newest_log()
    assert log["processing_status"] == "error"
    assert "unparseable" in log["error_message"]
    data = log["deal_data"]
    stored = data.get("raw_body") or data.get("raw_body_base64")
    assert stored, data
    if "raw_body_base64" in data:
        import base64

        assert base64.b64decode(data["raw_body_base64"]) == garbage


def test_webhook_test_endpoint_and_health(e2e) -> None:  # type: ignore[no-untyped-def]
    info = e2e.http.get("/webhook/amocrm/test").json()
    assert info["success"] is True
    assert info["supported_routes"] == ["referral", "traffic", "both", "unknown"]
    assert e2e.http.get("/healthz").status_code == 200
    ready = e2e.http.get("/readyz").json()
    assert ready["ready"] is True and ready["checks"]["router"] == "SERVING"


def test_deal_leaving_won_reverses_its_sale_and_an_older_won_does_not_recredit(e2e) -> None:  # type: ignore[no-untyped-def]
    won = encode(won_deal_body(5550010, "kenesary_fb", updated_at=1_800_000_000))
    lost = encode(won_deal_body(5550010, "kenesary_fb", status_id=143, old_status_id=142,
                                updated_at=1_800_000_100))
    assert e2e.post_webhook(won).status_code == 200
    assert e2e.post_webhook(lost).status_code == 200
    assert e2e.settled_logs(5550010)[-1]["legs"] == {"traffic": "reversed", "referral": "duplicate"}
    [sale] = sales(e2e, 5550010)
    assert sale.reversed_at.seconds == 1_800_000_100
    # AmoCRM's retry of the old "won" arrives late: it must not credit again.
    assert e2e.post_webhook(won).status_code == 200
    e2e.settled_logs(5550010)
    [sale] = sales(e2e, 5550010)
    assert sale.reversed_at.seconds == 1_800_000_100


def test_won_arriving_after_a_newer_lost_is_stored_reversed_and_not_announced(e2e) -> None:  # type: ignore[no-untyped-def]
    lost = encode(won_deal_body(5550011, "kenesary_fb", status_id=143, old_status_id=142,
                                updated_at=1_800_000_100))
    won = encode(won_deal_body(5550011, "kenesary_fb", updated_at=1_800_000_000))
    assert e2e.post_webhook(lost).status_code == 200
    assert e2e.post_webhook(won).status_code == 200
    [log_lost, log_won] = e2e.settled_logs(5550011)
    assert log_won["legs"] == {"traffic": "superseded"}
    assert log_won["processing_status"] == "success"
    [sale] = sales(e2e, 5550011)
    assert sale.HasField("reversed_at")
    time.sleep(0.5)
    assert messages_about(e2e, 5550011) == []


def test_every_grpc_service_exposes_call_metrics(e2e) -> None:  # type: ignore[no-untyped-def]
    import httpx

    body = encode(won_deal_body(5550020, "kenesary_fb"))
    assert e2e.post_webhook(body).status_code == 200
    ports = e2e.running.stack.metrics_ports
    router = httpx.get(f"http://127.0.0.1:{ports['router_svc']}/metrics").text
    assert ('amoroute_grpc_server_handled_total{code="OK",method="BatchRouteDeals",'
            'service="amoroute.v1.RouterService"}') in router
    traffic = httpx.get(f"http://127.0.0.1:{ports['traffic_svc']}/metrics").text
    assert 'method="BatchRecordSales"' in traffic and "amoroute_grpc_server_handling_seconds" in traffic
    for name in ("referral_svc", "notifier_svc"):
        assert "amoroute_grpc_server_handled_total" in httpx.get(
            f"http://127.0.0.1:{ports[name]}/metrics").text


def test_edge_metrics_count_webhooks_by_routing_and_status(e2e) -> None:  # type: ignore[no-untyped-def]
    assert e2e.post_webhook(encode(won_deal_body(5550030, "ref_METRIC1"))).status_code == 200
    # A routed event is counted once its outcome is recorded, after the answer.
    counted = 'amoroute_webhooks_total{routing="referral",status="success"}'

    def metrics_counting_it() -> str:
        text = e2e.http.get("/metrics").text
        return text if counted in text else ""

    text = eventually(metrics_counting_it)
    assert counted in text
    assert "amoroute_webhook_ack_seconds_bucket" in text


def test_request_id_travels_from_the_edge_through_every_service(e2e) -> None:  # type: ignore[no-untyped-def]
    body = encode(won_deal_body(5550031, "kenesary_fb", "x"))
    reply = e2e.http.post("/webhook/amocrm", content=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Request-Id": "rid-5550031"})
    assert reply.headers["X-Request-Id"] == "rid-5550031"

    def services_that_logged_it() -> set[str]:
        import json as _json
        seen = set()
        for line in e2e.running.output().splitlines():
            if "rid-5550031" in line and line.startswith("{"):
                seen.add(_json.loads(line)["service"])
        return seen

    assert eventually(lambda: {"edge", "router_svc"} <= services_that_logged_it())
