"""GRPC_AUTH_TOKENS: parsing, refusing bad entries by name, never showing a token;
and a permission table entry for every RPC."""

import pytest
from google.protobuf import descriptor_pool

import notifier_svc.server
import referral_svc.server
import router_svc.server
import traffic_svc.server
from amoroute.callers import CallerTokens
from amoroute.v1 import notifier_pb2, referral_pb2, router_pb2, traffic_pb2  # noqa: F401
from router_svc.settings import Settings

SECRET = "s3cr3t-0123456789abcdef"


def test_tokens_map_each_caller_and_compare_whole_tokens() -> None:
    tokens = CallerTokens.parse(f" router:{SECRET} , edge:other-token ,operator:third")
    assert tokens.token_of("router") == SECRET
    assert tokens.caller_of(SECRET) == "router"
    assert tokens.caller_of("other-token") == "edge"
    assert tokens.caller_of(SECRET[:-1]) is None
    assert tokens.caller_of("") is None


def test_no_tokens_is_authentication_off() -> None:
    assert not CallerTokens.parse("") and not CallerTokens.parse("  ")
    assert CallerTokens.parse("").token_of("edge") == ""


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (f"router:{SECRET},,edge:x", "entry 2 is empty"),
        (f"router:{SECRET},edge", "entry 2 has no caller or no token"),
        (f"router:{SECRET},edge:", "entry 2 ('edge') has no caller or no token"),
        (f":{SECRET}", "entry 1 has no caller or no token"),
        (f"routre:{SECRET}", "entry 1 names unknown caller 'routre'"),
        (f"edge:{SECRET},edge:other", "entry 2 names 'edge' a second time"),
        (f"edge:{SECRET},router:{SECRET}", "entry 2 ('router') reuses another caller's token"),
    ],
)
def test_a_bad_entry_stops_the_start_naming_it_but_not_its_token(value: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        Settings(grpc_auth_tokens=value)
    assert message in str(err.value)
    assert SECRET not in str(err.value)


def test_a_process_whose_own_caller_has_no_token_stops_the_start() -> None:
    settings = Settings(grpc_auth_tokens=f"edge:{SECRET}")
    with pytest.raises(ValueError, match="GRPC_AUTH_TOKENS has no entry for 'router'"):
        settings.caller_credentials("router")


def test_tokens_never_show_in_a_repr_or_a_settings_dump() -> None:
    settings = Settings(grpc_auth_tokens=f"router:{SECRET},edge:other-token")
    shown = [repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump()),
             repr(settings.caller_tokens()), repr(settings.caller_credentials("router"))]
    assert not [text for text in shown if SECRET in text or "other-token" in text]


@pytest.mark.parametrize(
    ("service", "table"),
    [
        ("amoroute.v1.RouterService", router_svc.server.CALLERS),
        ("amoroute.v1.ReferralService", referral_svc.server.CALLERS),
        ("amoroute.v1.TrafficService", traffic_svc.server.CALLERS),
        ("amoroute.v1.NotifierService", notifier_svc.server.CALLERS),
    ],
)
def test_every_rpc_names_its_callers(service: str, table: dict) -> None:
    methods = {m.name for m in descriptor_pool.Default().FindServiceByName(service).methods}
    assert set(table) == methods
