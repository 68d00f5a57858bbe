"""AmoCrmClient against a real local HTTP server standing in for AmoCRM (fast: fake clock),
and deal_from_api_lead on the API v4 fixtures."""

import copy
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import prometheus_client
import pytest

from amoroute.v1 import deal_pb2
from edge.amocrm_api import (
    AmoCrmAuthError,
    AmoCrmBlocked,
    AmoCrmClient,
    AmoCrmError,
    deal_from_api_lead,
    status_change,
)
from edge.amocrm_form import deal_from_event, lead_events, parse_form
from tests.support.fake_amocrm import AMOCRM_HOST, FIXTURES, FakeAmoCrm, fixture_json

TOKEN = "test-token-5f1c9e0d7a"
PIPELINE = 10418746
WON = 142
PAGE1_FROM = 1750636800  # filter[updated_at][from] of the list fixtures


class FakeClock:
    """Monotonic time that moves only when slept on (plus `step` per reading)."""

    def __init__(self, step: float = 0.0) -> None:
        self.now = 1000.0
        self.step = step
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.now += self.step
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def amocrm(clock: FakeClock) -> Iterator[FakeAmoCrm]:
    with FakeAmoCrm(TOKEN, clock=clock) as fake:
        yield fake


def make_client(
    fake: FakeAmoCrm, clock: FakeClock, token: str = TOKEN, **options: Any
) -> AmoCrmClient:
    return AmoCrmClient(
        fake.url, token, sleep=clock.sleep, clock=clock, public_host=AMOCRM_HOST, **options
    )


@pytest.fixture
def client(amocrm: FakeAmoCrm, clock: FakeClock) -> Iterator[AmoCrmClient]:
    with make_client(amocrm, clock) as api:
        yield api


def won_lead(lead_id: int, **fields: Any) -> dict[str, Any]:
    lead = {"id": lead_id, "name": f"Сделка #{lead_id}", "price": 1000, "status_id": WON,
            "pipeline_id": PIPELINE, "account_id": 32145678, "created_at": 1750000000,
            "updated_at": 1750700000, "custom_fields_values": None,
            "_embedded": {"tags": []}}
    return {**lead, **fields}


# --- fetching leads --------------------------------------------------------------------------


def test_600_ids_are_fetched_in_3_requests_of_at_most_250(
    amocrm: FakeAmoCrm, client: AmoCrmClient
) -> None:
    amocrm.set_leads(won_lead(lead_id) for lead_id in range(1, 601))

    leads = client.get_leads([*range(1, 601), 5, 7])  # repeats are asked for once

    assert sorted(lead["id"] for lead in leads) == list(range(1, 601))
    requests = amocrm.requests
    assert len(requests) == 3
    assert [len(r.values("filter[id][]")) for r in requests] == [250, 250, 100]
    assert {r.values("limit")[0] for r in requests} == {"250"}
    assert {r.headers["authorization"] for r in requests} == {f"Bearer {TOKEN}"}


def test_won_leads_follow_next_links_across_the_fixture_pages(
    amocrm: FakeAmoCrm, client: AmoCrmClient
) -> None:
    amocrm.add_lead(won_lead(1, pipeline_id=99))  # won in another pipeline
    amocrm.add_lead(won_lead(2, status_id=143))  # lost
    amocrm.add_lead(won_lead(3, updated_at=PAGE1_FROM - 1))  # too old
    page1 = fixture_json("leads_list_v4_page1.json")["_embedded"]["leads"]
    page2 = fixture_json("leads_list_v4_page2.json")["_embedded"]["leads"]

    leads = list(client.iter_won_leads([PIPELINE], [WON], updated_from=PAGE1_FROM, limit=3))

    assert leads == page1 + page2
    first, second = amocrm.requests
    assert first.query == [
        ("filter[statuses][0][pipeline_id]", str(PIPELINE)),
        ("filter[statuses][0][status_id]", str(WON)),
        ("filter[updated_at][from]", str(PAGE1_FROM)),
        ("order[updated_at]", "asc"),
        ("limit", "3"),
    ]
    # The fake's next link names https://onaiagencykz.amocrm.ru; the client came back here.
    assert second.query == [*first.query, ("page", "2")]


def test_won_leads_ask_for_every_pipeline_and_won_status_pair(
    amocrm: FakeAmoCrm, client: AmoCrmClient
) -> None:
    amocrm.set_leads([won_lead(1), won_lead(2, pipeline_id=7, status_id=150),
                      won_lead(3, pipeline_id=7, status_id=143)])

    leads = list(client.iter_won_leads([PIPELINE, 7], [WON, 150], updated_from=0))

    assert [lead["id"] for lead in leads] == [1, 2]
    statuses = [v for k, v in amocrm.requests[0].query if k.startswith("filter[statuses]")]
    assert statuses == [str(PIPELINE), "142", str(PIPELINE), "150", "7", "142", "7", "150"]


def test_won_leads_refuse_an_empty_status_filter(client: AmoCrmClient) -> None:
    with pytest.raises(ValueError, match="pipeline"):
        client.iter_won_leads([], [WON], updated_from=0)


def test_nothing_found_is_204_and_an_empty_list(
    amocrm: FakeAmoCrm, client: AmoCrmClient
) -> None:
    assert client.get_leads([999]) == []
    assert list(client.iter_won_leads([PIPELINE], [WON], updated_from=2_000_000_000)) == []
    assert client.get_leads([]) == []
    assert [r.status for r in amocrm.requests] == [204, 204]


def test_a_next_link_to_another_host_is_refused(clock: FakeClock) -> None:
    with FakeAmoCrm(TOKEN, public_base="https://evil.example", clock=clock) as fake:
        with make_client(fake, clock) as api:
            with pytest.raises(AmoCrmError, match="evil.example") as error:
                list(api.iter_won_leads([PIPELINE], [WON], updated_from=0, limit=1))
        assert len(fake.requests) == 1
    assert "refusing" in str(error.value)


def test_single_lead_endpoint_answers_the_lead_or_204(amocrm: FakeAmoCrm) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    found = httpx.get(f"{amocrm.url}/api/v4/leads/24681357", headers=headers)
    missing = httpx.get(f"{amocrm.url}/api/v4/leads/1", headers=headers)

    assert found.json() == fixture_json("lead_v4.json")
    assert (missing.status_code, missing.content) == (204, b"")


# --- failures --------------------------------------------------------------------------------


def test_429_twice_then_200_returns_the_leads_after_3_requests(
    amocrm: FakeAmoCrm, client: AmoCrmClient, clock: FakeClock
) -> None:
    amocrm.fail_next(429, times=2)
    started = time.monotonic()

    leads = client.get_leads([24681357])

    assert [lead["id"] for lead in leads] == [24681357]
    assert [r.status for r in amocrm.requests] == [429, 429, 200]
    assert sum(clock.sleeps) >= 1.0 + 2.0  # backed off 1 s, then 2 s (of fake time)
    assert time.monotonic() - started < 1.0


def test_a_dropped_connection_is_retried(amocrm: FakeAmoCrm, client: AmoCrmClient) -> None:
    amocrm.drop_next()

    assert len(client.get_leads([24681357])) == 1
    assert [r.status for r in amocrm.requests] == [0, 200]


def test_500_forever_fails_after_max_retries_naming_path_and_status(
    amocrm: FakeAmoCrm, clock: FakeClock
) -> None:
    amocrm.fail_next(500, times=50)

    with make_client(amocrm, clock, max_retries=3) as api:
        with pytest.raises(AmoCrmError) as error:
            api.get_leads([24681357])

    assert not isinstance(error.value, AmoCrmAuthError)
    assert "/api/v4/leads" in str(error.value) and "500" in str(error.value)
    assert len(amocrm.requests) == 4  # the first attempt and 3 retries


def test_401_raises_auth_error_asking_to_renew_the_token_without_showing_it(
    amocrm: FakeAmoCrm, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "expired-token-0123456789abcdef"
    caplog.set_level(logging.DEBUG)

    with make_client(amocrm, clock, token=wrong) as api:
        with pytest.raises(AmoCrmAuthError, match="AMOCRM_ACCESS_TOKEN") as error:
            api.get_leads([24681357])

    assert "401" in str(error.value) and "Unauthorized" in str(error.value)
    assert wrong not in str(error.value) and wrong not in caplog.text
    assert len(amocrm.requests) == 1  # never retried


def test_403_raises_auth_error_at_once(amocrm: FakeAmoCrm, client: AmoCrmClient) -> None:
    amocrm.fail_next(403)

    with pytest.raises(AmoCrmAuthError, match="403"):
        client.list_webhooks()

    assert len(amocrm.requests) == 1


def test_400_reports_the_validation_errors(amocrm: FakeAmoCrm, client: AmoCrmClient) -> None:
    amocrm.fail_next(400)

    with pytest.raises(AmoCrmError) as error:
        client.get_leads([24681357])

    message = str(error.value)
    assert not isinstance(error.value, AmoCrmAuthError)
    assert "Request validation failed" in message
    assert "custom_fields_values.0.field_id" in message and "NotSupportedChoice" in message
    assert len(amocrm.requests) == 1


def test_a_redirect_is_not_followed(amocrm: FakeAmoCrm, client: AmoCrmClient) -> None:
    amocrm.fail_next(301)

    with pytest.raises(AmoCrmError, match="base URL"):
        client.list_webhooks()


# --- rate limit ------------------------------------------------------------------------------


def test_request_starts_are_spaced_by_the_rate_on_a_fake_clock() -> None:
    clock = FakeClock(step=0.001)  # every clock reading moves time a little, like real work
    with FakeAmoCrm(TOKEN, clock=clock) as fake:
        with make_client(fake, clock, rate_per_s=6.0) as api:
            for _ in range(20):
                api.list_webhooks()
        times = [r.at for r in fake.requests]

    assert len(times) == 20
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 1 / 6 - 1e-9
    assert fake.max_requests_per_second() < 7


def test_a_real_run_stays_under_7_requests_per_second_across_threads() -> None:
    """Real time, real sleeps: 15 requests from 3 threads at rate 6 take about 2.3 s."""
    with FakeAmoCrm(TOKEN) as fake:
        with AmoCrmClient(fake.url, TOKEN, rate_per_s=6.0) as api:
            workers = [
                threading.Thread(target=lambda: [api.list_webhooks() for _ in range(5)])
                for _ in range(3)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(10)

        assert [r.status for r in fake.requests] == [200] * 15
        assert fake.max_requests_per_second() < 7


# --- webhooks --------------------------------------------------------------------------------


def test_list_webhooks_reports_a_disabled_hook(client: AmoCrmClient) -> None:
    hooks = client.list_webhooks()

    assert [(hook.disabled, hook.settings) for hook in hooks] == [
        (False, ("status_lead", "add_lead", "update_lead")),
        (True, ("status_lead",)),
    ]
    assert hooks[1].destination == "https://old.example/amocrm-hook"


def test_no_webhooks_is_an_empty_list(amocrm: FakeAmoCrm, client: AmoCrmClient) -> None:
    amocrm.set_webhooks([])

    assert client.list_webhooks() == []


# --- deal_from_api_lead ----------------------------------------------------------------------


def fields_by_code_or_name(deal: deal_pb2.Deal) -> dict[str, deal_pb2.CustomField]:
    return {field.code or field.name: field for field in deal.custom_fields}


def test_api_lead_maps_to_a_deal() -> None:
    deal = deal_from_api_lead(fixture_json("lead_v4.json"), "onaiagencykz")

    assert (deal.lead_id, deal.status_id, deal.pipeline_id, deal.price) == (
        24681357, 142, PIPELINE, 150000)
    assert (deal.account_id, deal.account_subdomain, deal.event) == (
        32145678, "onaiagencykz", "api")
    assert deal.name == "Курс «Таргетолог PRO» — Айгерим"
    assert deal.responsible_user_id == 11223344
    assert deal.created_at.seconds == 1750003200 and deal.updated_at.seconds == 1750694400
    assert [(tag.id, tag.name) for tag in deal.tags] == [(65401, "facebook"), (65403, "оплата")]
    fields = fields_by_code_or_name(deal)
    assert fields["UTM_SOURCE"].values[0].value == "kenesary_fb"
    assert fields["UTM_SOURCE"].id == 1402007 and fields["UTM_SOURCE"].name == "utm_source"
    assert fields["Дата оплаты"].values[0].value == "1750636800"
    assert [(v.value, v.enum_id) for v in fields["Тариф"].values] == [("PRO", 3301011)]
    assert [(v.value, v.enum_id) for v in fields["Каналы трафика"].values] == [
        ("Facebook", 3301021), ("Instagram", 3301023)]


def test_api_lead_text_is_html_unescaped() -> None:
    lead = fixture_json("lead_v4.json")
    url_field = next(f for f in lead["custom_fields_values"] if f["field_type"] == "url")
    url_field["values"][0]["value"] = "https://onai.kz/landing?utm_source=kenesary_fb&amp;utm_medium=cpc"
    lead["name"] = "Tom &amp; Jerry"

    deal = deal_from_api_lead(lead, "onaiagencykz")

    assert fields_by_code_or_name(deal)["Ссылка на сайт"].values[0].value == (
        "https://onai.kz/landing?utm_source=kenesary_fb&utm_medium=cpc")
    assert deal.name == "Tom & Jerry"


def test_api_lead_without_custom_fields_or_price() -> None:
    (lead,) = fixture_json("leads_list_v4_page2.json")["_embedded"]["leads"]
    deal = deal_from_api_lead(lead, "onaiagencykz")
    assert (deal.lead_id, deal.price, list(deal.custom_fields), list(deal.tags)) == (
        24681499, 0, [], [])

    nulls = deal_from_api_lead({**lead, "price": None, "_embedded": None}, "onaiagencykz")
    assert nulls.price == 0 and not nulls.tags


def test_api_and_webhook_give_the_same_deal_for_the_same_lead() -> None:
    (event,) = lead_events(parse_form((FIXTURES / "status_won_with_utm.form").read_bytes()))
    from_hook = deal_from_event(event)
    from_api = deal_from_api_lead(fixture_json("lead_v4.json"), "onaiagencykz")

    # The webhook carries only the filled fields it sends; the API adds the two selects.
    assert list(from_api.custom_fields)[: len(from_hook.custom_fields)] == list(
        from_hook.custom_fields)
    for deal in (from_hook, from_api):
        deal.ClearField("custom_fields")
        deal.ClearField("event")
        deal.ClearField("old_status_id")
    assert from_api == from_hook


@pytest.mark.parametrize(
    "change", [{"id": None}, {"id": -1}, {"price": "lots"}, {"custom_fields_values": {}}]
)
def test_a_malformed_api_lead_is_refused_by_field(change: dict[str, Any]) -> None:
    lead = copy.deepcopy(fixture_json("lead_v4.json")) | change
    with pytest.raises(AmoCrmError, match="lead"):
        deal_from_api_lead(lead, "onaiagencykz")


# --- AmoCRM's block: a 403 after 429s ------------------------------------------------------


def blocked_gauge() -> float | None:
    return prometheus_client.REGISTRY.get_sample_value("amoroute_amocrm_blocked")


def test_a_403_after_429s_stops_every_call_for_the_pause_then_calls_resume(
    amocrm: FakeAmoCrm, clock: FakeClock
) -> None:
    told: list[float] = []
    client = make_client(amocrm, clock, block_pause_s=900, on_blocked=told.append)
    amocrm.fail_next(429, times=2)
    amocrm.fail_next(403)
    with pytest.raises(AmoCrmBlocked, match="blocked the integration") as error:
        client.get_leads([24681357])
    assert not isinstance(error.value, AmoCrmAuthError)
    assert [r.status for r in amocrm.requests] == [429, 429, 403]
    assert told == [900] and blocked_gauge() == 1.0
    assert client.blocked_for_s() == pytest.approx(900, abs=1)

    # While blocked, nothing is sent, whatever is asked.
    for call in (lambda: client.get_leads([24681357]), client.list_webhooks):
        with pytest.raises(AmoCrmBlocked, match="not sent"):
            call()
    assert len(amocrm.requests) == 3

    clock.sleep(901)
    assert client.blocked_for_s() == 0 and blocked_gauge() == 0.0
    assert [lead["id"] for lead in client.get_leads([24681357])] == [24681357]


def test_a_403_long_after_the_last_429_is_a_refused_access_not_a_block(
    amocrm: FakeAmoCrm, clock: FakeClock
) -> None:
    client = make_client(amocrm, clock)
    amocrm.fail_next(429)
    client.get_leads([24681357])
    clock.sleep(3600)
    amocrm.fail_next(403)
    with pytest.raises(AmoCrmAuthError):
        client.get_leads([24681357])
    assert client.blocked_for_s() == 0


# --- the events log ----------------------------------------------------------------------------


def test_status_changes_are_listed_with_the_won_filters_page_by_page(
    amocrm: FakeAmoCrm, client: AmoCrmClient
) -> None:
    for n in range(5):
        amocrm.add_status_event(7000 + n, (PIPELINE, 80123457), (PIPELINE, WON), 1750000000 + n,
                                account_id=32145678)
    amocrm.add_status_event(7100, (PIPELINE, WON), (PIPELINE, 143), 1750000100)
    amocrm.add_status_event(7200, (999, 1), (999, WON), 1750000000)  # another pipeline

    amocrm.fail_next(429)  # the events endpoint is rate-limited like the rest
    into = list(client.iter_status_changes([PIPELINE], [WON], 1749999999, 1750000200,
                                           into=True, limit=2))
    assert sorted(c.lead_id for c in into) == [7000, 7001, 7002, 7003, 7004]
    assert {(c.before, c.after, c.account_id) for c in into} == {
        ((PIPELINE, 80123457), (PIPELINE, WON), 32145678)}
    assert [(r.status, r.values("page")) for r in amocrm.requests] == [
        (429, []), (200, []), (200, ["2"]), (200, ["3"])]
    assert amocrm.max_requests_per_second() < 7
    [out] = client.iter_status_changes([PIPELINE], [WON], 1749999999, 1750000200, into=False)
    assert (out.lead_id, out.before, out.after) == (7100, (PIPELINE, WON), (PIPELINE, 143))
    assert list(client.iter_status_changes([PIPELINE], [WON], 1750000101, 1750000200,
                                           into=True)) == []  # 204: nothing in the window


@pytest.mark.parametrize("event", [
    {"id": "e1", "type": "lead_status_changed", "entity_id": "x", "created_at": 1},
    {"id": "e1", "type": "lead_status_changed", "entity_id": 5, "created_at": 1,
     "value_after": {"lead_status": {"id": 142}}},
    {"type": "lead_status_changed", "entity_id": 5, "created_at": 1},
])
def test_a_malformed_status_change_is_named(event: dict[str, Any]) -> None:
    with pytest.raises(AmoCrmError, match="AmoCRM event"):
        status_change(event)


def test_other_events_are_not_status_changes() -> None:
    assert status_change({"id": "e", "type": "lead_added", "entity_id": 5}) is None
