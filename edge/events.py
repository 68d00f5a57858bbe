"""Stored events and deals: what webhook_logs.deal_data holds, and the Deal it
becomes. Pure: no SQL, no gRPC calls.

deal_data is either a webhook lead event (LeadEvent.to_json()) or, for leads
read from the AmoCRM API (reconciliation, or a webhook that carried no UTM
marks), `{"api_lead": <v4 lead JSON>, "account_subdomain": ...}` — the API
data wins when both are present — or, for a lead's status change read from
AmoCRM's events log (reconciliation of a deal that left won),
`{"api_event": StatusChange.to_json(), "account_subdomain": ...}`.
"""

from typing import Any

from amoroute.v1 import deal_pb2
from edge.amocrm_api import AmoCrmError, StatusChange, deal_from_api_lead
from edge.amocrm_form import FormError, LeadEvent, deal_from_event
from edge.log_store import NewLog


class UnroutableEvent(ValueError):
    """Stored data that cannot become a deal; the message says why."""


def deal_from_log(
    deal_data: dict[str, Any], default_subdomain: str, *, shared: bool = False
) -> deal_pb2.Deal:
    """The Deal a stored event stands for. `shared`: `deal_data` is read once and
    dropped (nothing else holds it), so the event need not copy it."""
    try:
        if "api_lead" in deal_data:
            subdomain = deal_data.get("account_subdomain") or default_subdomain
            return deal_from_api_lead(deal_data["api_lead"], subdomain)
        if "api_event" in deal_data:
            subdomain = deal_data.get("account_subdomain") or default_subdomain
            change = StatusChange.from_json(deal_data["api_event"])
            return deal_from_status_change(change, subdomain)
        return deal_from_event(LeadEvent.from_json(deal_data, shared=shared))
    except (FormError, AmoCrmError, KeyError, TypeError, ValueError) as exc:
        raise UnroutableEvent(f"stored event cannot be routed: {exc}") from exc


def log_for_deal(source: str, deal_data: dict[str, Any], deal: deal_pb2.Deal) -> NewLog:
    """The webhook_logs row of an event that became `deal`, its columns taken from it."""
    return NewLog(
        source=source,
        deal_data=deal_data,
        event=deal.event or None,
        account_id=deal.account_id or None,
        pipeline_id=deal.pipeline_id or None,
        status_id=deal.status_id or None,
        lead_id=deal.lead_id,
        lead_updated_at=deal.updated_at.seconds or None,
        deal_name=deal.name or None,
    )


def log_for_api_lead(
    lead: dict[str, Any], subdomain: str, source: str
) -> tuple[NewLog, deal_pb2.Deal]:
    """The webhook_logs row and the deal for a lead read from the AmoCRM API."""
    data = {"api_lead": lead, "account_subdomain": subdomain}
    deal = deal_from_log(data, subdomain)
    return log_for_deal(source, data, deal), deal


def deal_from_status_change(change: StatusChange, subdomain: str) -> deal_pb2.Deal:
    """The Deal of a status change from the events log: the lead's statuses before and
    after, at the event's time (which orders it against the lead's other events)."""
    after_pipeline, after_status = change.after or (0, 0)
    before_pipeline, before_status = change.before or (0, 0)
    deal = deal_pb2.Deal(
        lead_id=change.lead_id,
        status_id=after_status,
        pipeline_id=after_pipeline,
        old_status_id=before_status,
        old_pipeline_id=before_pipeline,
        account_id=change.account_id,
        account_subdomain=subdomain,
        event="api",
    )
    if change.created_at:
        deal.updated_at.FromSeconds(change.created_at)
    return deal


def log_for_status_change(
    change: StatusChange, subdomain: str, source: str
) -> tuple[NewLog, deal_pb2.Deal]:
    """The webhook_logs row and the deal for a status change read from the events log."""
    data = {"api_event": change.to_json(), "account_subdomain": subdomain}
    deal = deal_from_log(data, subdomain)
    return log_for_deal(source, data, deal), deal


def log_for_won_change(
    change: StatusChange, lead: dict[str, Any], subdomain: str, source: str
) -> tuple[NewLog, deal_pb2.Deal]:
    """The webhook_logs row and the deal for a move into won read from the events log,
    with the lead's data read from the API: in the status the event moved it to, at the
    event's time (the lead may have moved on since)."""
    after_pipeline, after_status = change.after or (0, 0)
    at_change = {
        **lead,
        "pipeline_id": after_pipeline,
        "status_id": after_status,
        "updated_at": change.created_at,
    }
    data = {
        "api_lead": at_change,
        "account_subdomain": subdomain,
        "api_event": change.to_json(),
    }
    deal = deal_from_log(data, subdomain)
    return log_for_deal(source, data, deal), deal
