"""The "why credited" of one logged event, for its admin page: the router's decision
and reason as stored with the outcome, who each leg credited and with what amount, the
request that brought it (ids, content type, user agent) and what was kept of its body."""

from typing import Any

from edge.amocrm_values import BadValue, amount

# The leg that credits each kind of party.
_PARTY_LEG = {"referral": "referral_code", "traffic": "targetologist"}


def credited_why(row: dict[str, Any]) -> dict[str, Any]:
    """The "why" block of a webhook_logs row (as WebhookLogStore.find returns it)."""
    route = row.get("route") or {}
    legs = row.get("legs") or {}
    deal = row.get("deal_data") or {}
    price = _price(deal)
    credits = [
        {"leg": leg, "party": route.get(key), "amount": price, "outcome": legs[leg]}
        for leg, key in _PARTY_LEG.items()
        if leg in legs
    ]
    request = row.get("request") or {}
    traceparent = row.get("traceparent") or ""
    parts = traceparent.split("-")
    return {
        "decision": row.get("routing_decision"),
        "reason": route.get("reason"),
        "referral_code": route.get("referral_code"),
        "targetologist": route.get("targetologist"),
        "utm_source": row.get("utm_source"),
        "utm_campaign": row.get("utm_campaign"),
        "credits": credits,
        "request_id": request.get("request_id"),
        "trace_id": parts[1] if len(parts) == 4 else None,
        "content_type": request.get("content_type") or deal.get("content_type"),
        "user_agent": request.get("user_agent"),
    }


def _price(deal: dict[str, Any]) -> int | None:
    """The deal's amount: of the lead read from the API when there is one (the router
    routed that), else of the webhook's lead; None when neither carries one."""
    for key in ("api_lead", "lead"):
        lead = deal.get(key)
        if isinstance(lead, dict) and lead.get("price") is not None:
            try:
                return amount(str(lead["price"]))
            except BadValue:
                return None
    return None
