"""Bulk replay jobs through the real thing: the edge app in-process on a migrated database
(PostgreSQL or SQLite), the worker's job runner routing through a real RouterService and the
services behind it on ephemeral ports."""

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import falcon.testing
import grpc
import pytest
import sqlalchemy as sa

from amoroute.channels import channel
from edge.dispatch import Dispatcher
from edge.job_store import JobStore
from edge.jobs import JobRunner
from edge.log_store import WebhookLogStore, webhook_logs
from tests.admin.helpers import AUTH, Seeder, admin_client, migrated_edge_database
from tests.support.services import start_services
from tests.support.waiting import eventually

REPLAY = "/api/admin/webhook-logs/replay"


@dataclass
class Rig:
    client: falcon.testing.TestClient
    seed: Seeder
    logs: WebhookLogStore
    router: grpc.Channel
    database: str

    def runner(self, rate: float = 10_000, lease: timedelta | None = None) -> JobRunner:
        return JobRunner(JobStore(self.logs.engine), self.logs,
                         Dispatcher(self.router, self.logs), 5.0, rate, lease=lease)

    def post(self, body: object) -> falcon.testing.Result:
        return self.client.simulate_post(REPLAY, json=body, headers=AUTH)

    def start(self, **filters: object) -> dict:
        reply = self.post({"filters": filters})
        assert reply.status_code == 202, reply.text
        assert reply.headers["location"] == f"/api/admin/jobs/{reply.json['job']['id']}"
        return reply.json["job"]

    def job(self, job_id: int) -> dict:
        reply = self.client.simulate_get(f"/api/admin/jobs/{job_id}", headers=AUTH)
        assert reply.status_code == 200, reply.text
        return reply.json

    def listed(self, **filters: object) -> list[int]:
        """Every id the list view shows for the filters, page after page."""
        ids: list[int] = []
        params: dict[str, object] = {**filters, "limit": 7}
        while True:
            reply = self.client.simulate_get("/api/admin/webhook-logs", params=params,
                                             headers=AUTH)
            assert reply.status_code == 200, reply.text
            ids += [item["id"] for item in reply.json["items"]]
            if reply.json["next_cursor"] is None:
                return ids
            params["cursor"] = reply.json["next_cursor"]

    def replays(self) -> Counter[int]:
        """How many times each event has been replayed."""
        c = webhook_logs.c
        with self.logs.engine.connect() as conn:
            return Counter(conn.execute(
                sa.select(c.replay_of).where(c.replay_of.is_not(None))).scalars())


@pytest.fixture
def rig(make_database) -> Iterator[Rig]:  # type: ignore[no-untyped-def]
    services = start_services(make_database)
    router_addr = services.start_router()
    database = migrated_edge_database(make_database)
    seeder = Seeder(database)
    logs = WebhookLogStore(sa.create_engine(database))
    router = channel(router_addr)
    client = admin_client(database, router_addr=router_addr,
                          referral_addr=services.addr("referral"),
                          traffic_addr=services.addr("traffic"))
    yield Rig(client, seeder, logs, router, database)
    router.close()
    logs.engine.dispose()
    seeder.close()
    services.stop()


def seed_mix(rig: Rig) -> dict[str, list[int]]:
    """Events of several statuses and sources; returns ids by kind."""
    ids: dict[str, list[int]] = {"error": [], "success": [], "replay": []}
    for n in range(23):
        ids["error"].append(rig.seed.deal(9400000 + n, "kenesary_fb", status="error",
                                          error="router did not answer"))
    for n in range(6):
        ids["success"].append(rig.seed.deal(9410000 + n, "ref_PARTNER", decision="referral"))
    for n in range(4):
        ids["replay"].append(rig.seed.deal(9420000 + n, "kenesary_fb", source="replay"))
    return ids


def run_to_end(runner: JobRunner) -> None:
    """Run the runner's jobs to their end, without the pause between chunks."""
    for _ in range(10_000):
        runner.next_chunk_at = float("-inf")
        runner.run_once()
        if runner.current is None:
            return
    raise AssertionError("the job did not finish")


def test_dry_run_counts_what_the_list_shows(rig: Rig) -> None:
    seed_mix(rig)
    for filters in ({}, {"status": ["error"]}, {"source": "replay"}, {"q": "9400001"},
                    {"status": ["success"], "routing": ["referral"]}, {"lead_id": 9400003},
                    {"received_from": "2000-01-01T00:00:00Z", "received_to": "2999-01-01"}):
        reply = rig.post({"filters": filters, "dry_run": True})
        assert reply.status_code == 200, reply.text
        query = {k: ",".join(v) if isinstance(v, list) else v for k, v in filters.items()}
        assert reply.json == {"matching": len(rig.listed(**query))}, filters
    assert rig.post({"filters": {"status": ["error"]}, "dry_run": True}).json == {"matching": 23}


def test_a_job_replays_every_matching_event_once_with_exact_counts(rig: Rig) -> None:
    ids = seed_mix(rig)
    job = rig.start(status=["error"])
    assert (job["state"], job["kind"], job["total"], job["done"], job["failed"]) == (
        "queued", "replay", 23, 0, 0)
    assert job["created_by"] == "admin"
    # An event logged after the job started is not part of it.
    late = rig.seed.deal(9430000, "kenesary_fb", status="error", error="late")
    runner = rig.runner(rate=5)  # chunks of 5: several chunks
    run_to_end(runner)

    done = rig.job(job["id"])
    assert (done["state"], done["total"], done["done"], done["failed"]) == ("done", 23, 23, 0)
    assert rig.replays() == Counter(ids["error"])
    assert late not in rig.replays()
    # The replays were routed through the router, as a single replay is.
    for replay_id in rig.listed(source="replay")[:3]:
        row = rig.client.simulate_get(f"/api/admin/webhook-logs/{replay_id}", headers=AUTH).json
        if row["replay_of"] in ids["error"]:
            assert (row["processing_status"], row["routing_decision"]) == ("success", "traffic")
    listed = rig.client.simulate_get("/api/admin/jobs", headers=AUTH).json
    assert [item["id"] for item in listed["items"]] == [job["id"]]


def test_an_unreplayable_event_counts_as_failed(rig: Rig) -> None:
    ids = seed_mix(rig)
    broken = rig.seed.deal(9440000, "kenesary_fb", status="error", error="x")
    rig.seed.set(broken, deal_data={"leads": "not a lead"})
    job = rig.start(status=["error"])
    run_to_end(rig.runner(rate=7))
    done = rig.job(job["id"])
    assert (done["state"], done["total"], done["done"], done["failed"]) == ("done", 24, 23, 1)
    assert rig.replays() == Counter(ids["error"])


def test_an_interrupted_job_resumes_from_its_cursor(rig: Rig) -> None:
    ids = seed_mix(rig)
    job = rig.start(status=["error"])
    first = rig.runner(rate=4, lease=timedelta(seconds=1))
    first.run_once()
    first.run_once()  # not due yet: paced
    partway = rig.job(job["id"])
    assert (partway["state"], partway["done"]) == ("running", 4)
    # The first worker stops without a word; another takes the job once its lease is over.
    second = rig.runner(rate=4)
    assert eventually(lambda: second.run_once() or second.current is not None, timeout=15)
    run_to_end(second)
    done = rig.job(job["id"])
    assert (done["state"], done["total"], done["done"], done["failed"]) == ("done", 23, 23, 0)
    assert rig.replays() == Counter(ids["error"])
    # The first worker comes back: the job is not its any more, and it changes nothing.
    first.next_chunk_at = float("-inf")
    assert first.run_once() == 0
    assert rig.replays() == Counter(ids["error"])


def test_a_released_job_is_taken_over_at_once(rig: Rig) -> None:
    ids = seed_mix(rig)
    job = rig.start(source="amocrm")
    first = rig.runner(rate=10)
    first.run_once()
    first.release()  # a graceful stop
    second = rig.runner(rate=10)
    run_to_end(second)
    done = rig.job(job["id"])
    assert (done["state"], done["done"]) == ("done", 29)
    assert rig.replays() == Counter(ids["error"] + ids["success"])


def test_cancel_stops_the_job(rig: Rig) -> None:
    seed_mix(rig)
    job = rig.start(status=["error"])
    runner = rig.runner(rate=5)
    runner.run_once()
    reply = rig.client.simulate_delete(f"/api/admin/jobs/{job['id']}", headers=AUTH)
    assert reply.status_code == 200, reply.text
    assert (reply.json["state"], reply.json["done"]) == ("cancelled", 5)
    runner.next_chunk_at = float("-inf")
    assert runner.run_once() == 0
    assert runner.current is None
    assert sum(rig.replays().values()) == 5
    assert rig.job(job["id"])["state"] == "cancelled"
    again = rig.client.simulate_delete(f"/api/admin/jobs/{job['id']}", headers=AUTH)
    assert again.status_code == 409
    assert "cancelled already" in again.json["description"]
    missing = rig.client.simulate_delete("/api/admin/jobs/999999", headers=AUTH)
    assert missing.status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"filters": {"status": ["nope"]}}, "status"),
    ({"filters": {"routing": "sideways"}}, "routing"),
    ({"filters": {"lead_id": 0}}, "lead_id"),
    ({"filters": {"lead_id": True}}, "lead_id"),
    ({"filters": {"source": "Bad Source"}}, "source"),
    ({"filters": {"q": "x" * 201}}, "q"),
    ({"filters": {"received_from": "yesterday"}}, "received_from"),
    ({"filters": {"received_from": "2025-02-01", "received_to": "2025-01-01"}}, "received_to"),
    ({"filters": {"limit": "5"}}, "limit"),
    ({"filters": ["status"]}, "filters"),
    ({"filters": {}, "dry_run": "yes"}, "dry_run"),
    ({"filterz": {}}, "filterz"),
    ([1, 2], "body"),
])
def test_bad_input_gets_400_naming_the_field(rig: Rig, body: object, field: str) -> None:
    reply = rig.post(body)
    assert reply.status_code == 400, reply.text
    assert reply.json["description"].startswith(f"{field}:"), reply.json


def test_a_replay_of_nothing_is_refused(rig: Rig) -> None:
    seed_mix(rig)
    assert rig.post({"filters": {"lead_id": 1}, "dry_run": True}).json == {"matching": 0}
    reply = rig.post({"filters": {"lead_id": 1}})
    assert reply.status_code == 400
    assert reply.json["description"].startswith("filters: no stored event matches")
    assert rig.client.simulate_get("/api/admin/jobs", headers=AUTH).json["items"] == []


def test_job_routes_need_the_token(rig: Rig) -> None:
    for method, path in (("POST", REPLAY), ("GET", "/api/admin/jobs"),
                         ("GET", "/api/admin/jobs/1"), ("DELETE", "/api/admin/jobs/1")):
        assert rig.client.simulate_request(method, path, json={}).status_code == 401


def test_two_workers_never_run_one_job_at_once(rig: Rig) -> None:
    if rig.logs.engine.dialect.name != "postgresql":
        pytest.skip("concurrent claims are a PostgreSQL matter; SQLite runs one write at a time")
    ids = seed_mix(rig)
    jobs = [rig.start(status=["error"]) for _ in range(3)]
    runners = [rig.runner(rate=3) for _ in range(4)]
    holders: dict[int, set[str]] = {job["id"]: set() for job in jobs}
    store = JobStore(rig.logs.engine)
    errors: list[BaseException] = []

    def work(runner: JobRunner) -> None:
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                runner.next_chunk_at = float("-inf")  # no pause: as much contention as can be
                runner.run_once()
                if runner.current is not None:
                    holders[runner.current.id].add(runner.name)
                    continue
                if all(store.get(job["id"]).state == "done" for job in jobs):  # type: ignore[union-attr]
                    return
                time.sleep(0.01)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r,)) for r in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for job in jobs:
        done = rig.job(job["id"])
        assert (done["state"], done["done"], done["failed"]) == ("done", 23, 0)
        assert len(holders[job["id"]]) == 1, holders
    assert rig.replays() == Counter(ids["error"] * 3)


def test_concurrent_claims_take_one_job_each(rig: Rig) -> None:
    seed_mix(rig)
    jobs = [rig.start(status=["error"])["id"] for _ in range(3)]
    store = JobStore(rig.logs.engine)
    barrier = threading.Barrier(5)
    claimed: dict[str, int | None] = {}

    def claim(name: str) -> None:
        barrier.wait()
        job = store.claim(name, timedelta(seconds=60))
        claimed[name] = job.id if job else None

    threads = [threading.Thread(target=claim, args=(f"w{n}",)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = {name: job_id for name, job_id in claimed.items() if job_id is not None}
    # Never one job to two workers; on PostgreSQL (SKIP LOCKED) each takes another job at
    # once, on SQLite a claim that lost the race takes nothing and tries again later.
    assert len(set(won.values())) == len(won) >= 1, claimed
    if rig.logs.engine.dialect.name == "postgresql":
        assert sorted(won.values()) == jobs, claimed
    for name, job_id in won.items():
        row = store.get(job_id)
        assert row is not None and (row.state, row.claimed_by) == ("running", name)
