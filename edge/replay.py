"""Replaying a stored webhook event (POST /api/admin/webhook-logs/{id}/replay), and
turning a stored event into a job to route, which the worker's retries share."""

import dataclasses
import logging
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from edge.dispatch import Dispatcher, Job
from edge.event_lifecycle import ERROR, PENDING, Outcome
from edge.events import UnroutableEvent, deal_from_log
from edge.log_store import DueEvent, NewLog, WebhookLogStore

log = logging.getLogger(__name__)


# The source of the logs a re-attribution job writes (edge/reattribution_apply.py); its
# deal_data keeps under this key the job that re-routed it and whether to announce.
REATTRIBUTION = "reattribution"


def job_for(event: DueEvent, subdomain: str = "") -> Job | Outcome:
    """The job to route for a claimed event, or the final outcome when its
    stored data cannot become a deal. A re-attribution's retry re-attributes again."""
    try:
        deal = deal_from_log(event.deal_data, subdomain)
    except UnroutableEvent as exc:
        return Outcome(event.id, ERROR, error_message=str(exc))
    traceparent = event.traceparent or ""
    if event.source == REATTRIBUTION:
        why = event.deal_data.get(REATTRIBUTION)
        announce = isinstance(why, dict) and why.get("announce") is True
        return Job(
            event.id, deal, event.done_legs, reattribution=True, announce=announce,
            traceparent=traceparent,
        )
    return Job(event.id, deal, event.done_legs, traceparent=traceparent)


def replay_log(original: dict[str, Any]) -> NewLog:
    """The new `replay` log of a stored event (a row as the store returns it)."""
    return NewLog(
        source="replay",
        deal_data=original["deal_data"],
        event=original["event"],
        account_id=original["account_id"],
        pipeline_id=original["pipeline_id"],
        status_id=original["status_id"],
        lead_id=original["lead_id"],
        lead_updated_at=original["lead_updated_at"],
        processing_status=PENDING,
        deal_name=original["deal_name"],
        replay_of=original["id"],
    )


class NotReplayable(Exception):
    """The stored event cannot become a deal (e.g. an unparseable body)."""


def replay(
    logs: WebhookLogStore,
    dispatcher: Dispatcher,
    log_id: int,
    deadline_s: float,
    subdomain: str = "",
) -> int:
    """Log the stored event again as a new `replay` event and route it now; returns the new
    log's id. Downstream services dedupe per lead, so a replay never credits a sale twice.
    `subdomain`: the AmoCRM account's, for events read from its API that do not name it.
    LookupError: no such log; NotReplayable: its data cannot become a deal."""
    original = logs.find(log_id)
    if original is None:
        raise LookupError(log_id)
    prepared = job_for(DueEvent(log_id, original["source"], original["deal_data"], ()), subdomain)
    if isinstance(prepared, Outcome):
        raise NotReplayable(prepared.error_message)
    [new_id] = logs.insert([replay_log(original)])
    log.info("replaying webhook log", extra={"log_id": log_id, "replay_log_id": new_id})
    job: Job = dataclasses.replace(prepared, log_id=new_id)
    try:
        dispatcher.dispatch([job], deadline_s)
    except SQLAlchemyError:
        # The replay is logged as pending: the worker finishes it.
        log.exception("replay outcome not recorded", extra={"log_id": new_id})
    return new_id
