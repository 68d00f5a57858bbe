"""Registering referral partners through the admin API: the edge app in-process, calling
a real ReferralService on an ephemeral port with caller authentication on, as deployed."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import falcon.testing
import grpc
import pytest

from amoroute.callers import CALLERS, OPERATOR, CallerCredentials
from amoroute.channels import channel
from amoroute.v1 import referral_pb2, referral_pb2_grpc
from tests.admin.helpers import AUTH, admin_client, migrated_edge_database
from tests.support.services import start_services

TOKENS = {caller: f"{caller}-token-for-partner-tests-0123" for caller in CALLERS}
GRPC_AUTH_TOKENS = ",".join(f"{caller}:{token}" for caller, token in TOKENS.items())
JSON = {**AUTH, "Content-Type": "application/json"}


@dataclass
class Admin:
    client: falcon.testing.TestClient
    # referral_svc, called as the operator; and its address.
    referral: referral_pb2_grpc.ReferralServiceStub
    referral_addr: str

    def put(self, code: str, body: Any, headers: dict[str, str] = JSON) -> falcon.testing.Result:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.simulate_put(f"/api/admin/partners/{code}", body=raw, headers=headers)

    def stats(self, code: str) -> list[referral_pb2.ReferrerStats]:
        return list(self.referral.GetReferrerStats(
            referral_pb2.GetReferrerStatsRequest(referral_code=code), timeout=5).stats)

    def record(self, lead_id: int, code: str, amount: int) -> None:
        """A conversion as the router records it (the admin test has no router)."""
        with channel(self.referral_addr, CallerCredentials(token=TOKENS["router"])) as ch:
            referral_pb2_grpc.ReferralServiceStub(ch).RecordConversion(
                referral_pb2.RecordConversionRequest(conversion=referral_pb2.Conversion(
                    lead_id=lead_id, account_id=1, referral_code=code, amount=amount)),
                timeout=5)


@pytest.fixture(scope="module")
def admin(make_database) -> Iterator[Admin]:  # type: ignore[no-untyped-def]
    services = start_services(make_database, common={"grpc_auth_tokens": GRPC_AUTH_TOKENS})
    addr = services.addr("referral")
    client = admin_client(migrated_edge_database(make_database), referral_addr=addr,
                          traffic_addr=services.addr("traffic"),
                          grpc_auth_tokens=GRPC_AUTH_TOKENS)
    operator = channel(addr, CallerCredentials(token=TOKENS[OPERATOR]))
    yield Admin(client, referral_pb2_grpc.ReferralServiceStub(operator), addr)
    operator.close()
    services.stop()


def test_a_code_with_conversions_is_registered_then_edited_and_the_dashboard_follows(
    admin: Admin,
) -> None:
    admin.record(9700001, "NEWBIE", 50000)
    [before] = admin.client.simulate_get("/api/admin/sales/referral", headers=AUTH).json["items"]
    assert (before["partner_registered"], before["commission_bp"]) == (False, 0)

    created = admin.put("newbie", {"name": "Newbie Partner", "commission_bp": 1250})
    assert created.status_code == 201, created.text
    assert created.json == {"referral_code": "NEWBIE", "name": "Newbie Partner",
                            "commission_bp": 1250, "created": True}
    [after] = admin.client.simulate_get("/api/admin/sales/referral", headers=AUTH).json["items"]
    assert (after["partner_registered"], after["partner_name"], after["commission_bp"],
            after["commission_total"]) == (True, "Newbie Partner", 1250, 6250)

    edited = admin.put("NEWBIE", {"name": "Newbie & Co", "commission_bp": 0})
    assert edited.status_code == 200, edited.text
    assert edited.json["created"] is False
    [stats] = admin.stats("NEWBIE")
    assert (stats.partner_name, stats.commission_bp, stats.commission_total) == (
        "Newbie & Co", 0, 0)


def test_a_partner_can_be_registered_before_its_first_conversion(admin: Admin) -> None:
    reply = admin.put("EARLY_bird-1", {"name": "", "commission_bp": 10000})
    assert reply.status_code == 201, reply.text
    assert reply.json["referral_code"] == "EARLY_BIRD-1"
    admin.record(9700002, "EARLY_BIRD-1", 300)
    [stats] = admin.stats("EARLY_BIRD-1")
    assert (stats.partner_registered, stats.commission_total) == (True, 300)


@pytest.mark.parametrize(
    ("code", "body", "field"),
    [
        ("BAD.CODE", {"name": "x", "commission_bp": 1}, "referral_code"),
        ("BAD%20CODE", {"name": "x", "commission_bp": 1}, "referral_code"),
        ("X" * 65, {"name": "x", "commission_bp": 1}, "referral_code"),
        ("ÜBER", {"name": "x", "commission_bp": 1}, "referral_code"),
        ("GOOD", {"name": "x", "commission_bp": 10001}, "commission_bp"),
        ("GOOD", {"name": "x", "commission_bp": -1}, "commission_bp"),
        ("GOOD", {"name": "x", "commission_bp": 12.5}, "commission_bp"),
        ("GOOD", {"name": "x", "commission_bp": True}, "commission_bp"),
        ("GOOD", {"name": "x", "commission_bp": "1000"}, "commission_bp"),
        ("GOOD", {"name": "x"}, "commission_bp"),
        ("GOOD", {"commission_bp": 1}, "name"),
        ("GOOD", {"name": None, "commission_bp": 1}, "name"),
        ("GOOD", {"name": "n" * 201, "commission_bp": 1}, "name"),
        ("GOOD", {"name": "nul\x00", "commission_bp": 1}, "name"),
        ("GOOD", {"name": "x", "commission_bp": 1, "commission_percent": 10}, "commission_percent"),
        ("GOOD", [], "body"),
        ("GOOD", b"{not json", "body"),
        ("GOOD", b"", "body"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_registers_nothing(
    admin: Admin, code: str, body: Any, field: str
) -> None:
    reply = admin.put(code, body)
    assert reply.status_code == 400, reply.text
    assert reply.json["description"].startswith(f"{field}: "), reply.json
    assert admin.stats("GOOD") == []
    assert not any(s.partner_registered for s in admin.stats(code.upper()[:64]))


@pytest.mark.parametrize(
    ("name", "commission_bp", "accepted"),
    [("n" * 200, 0, True), ("n" * 201, 0, False), ("", 10000, True), ("x", 10001, False),
     ("x", -1, False), ("nul\x00", 5, False)],
)
def test_the_edge_checks_the_limits_the_service_checks(
    admin: Admin, name: str, commission_bp: int, accepted: bool
) -> None:
    """The same partner, sent to the edge and straight to the service, is accepted or
    refused by both alike."""
    code = f"LIMIT{len(name)}X{commission_bp}".replace("-", "M")
    via_edge = admin.put(code, {"name": name, "commission_bp": commission_bp})
    direct = referral_pb2.UpsertPartnerRequest(partner=referral_pb2.Partner(
        referral_code=code + "D", name=name, commission_bp=commission_bp))
    try:
        admin.referral.UpsertPartner(direct, timeout=5)
        service_accepted = True
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
        service_accepted = False
    assert (via_edge.status_code in (200, 201), service_accepted) == (accepted, accepted), (
        via_edge.text)


def test_without_the_admin_token_nothing_is_registered(admin: Admin) -> None:
    body = {"name": "Intruder", "commission_bp": 10000}
    assert admin.put("SNEAKY", body, {"Content-Type": "application/json"}).status_code == 401
    wrong = {"Content-Type": "application/json", "Authorization": "Bearer not-the-token"}
    assert admin.put("SNEAKY", body, wrong).status_code == 401
    assert admin.stats("SNEAKY") == []


def test_a_body_that_is_not_json_is_refused_as_such(admin: Admin) -> None:
    reply = admin.put("FORMY", b"name=x&commission_bp=1",
                      {**AUTH, "Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status_code == 415, reply.text
    assert admin.stats("FORMY") == []


def test_referral_svc_down_is_a_503_saying_so(make_database) -> None:  # type: ignore[no-untyped-def]
    client = admin_client(migrated_edge_database(make_database), referral_addr="127.0.0.1:9")
    reply = client.simulate_put("/api/admin/partners/DOWN", headers=JSON,
                                body=json.dumps({"name": "", "commission_bp": 0}))
    assert reply.status_code == 503, reply.text
    assert "referral_svc at 127.0.0.1:9 did not answer" in reply.json["description"]
