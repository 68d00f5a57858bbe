"""AmoCRM-shaped webhook bodies built in tests."""

from urllib.parse import urlencode

ACCOUNT = {"account[subdomain]": "onaiagencykz", "account[id]": "32145678"}
PIPELINE, WON = 10418746, 142


def won_deal_body(
    lead_id: int,
    utm_source: str = "",
    utm_campaign: str = "",
    *,
    name: str = "",
    price: int = 150000,
    status_id: int = WON,
    old_status_id: int = 80123457,
    pipeline_id: int = PIPELINE,
    updated_at: int = 1750694400,
    action: str = "status",
    index: int = 0,
) -> dict[str, str]:
    """Form fields of one lead in `leads[action][index]`, as AmoCRM sends them."""
    p = f"leads[{action}][{index}]"
    fields = {
        f"{p}[id]": str(lead_id),
        f"{p}[name]": name or f"Сделка #{lead_id}",
        f"{p}[status_id]": str(status_id),
        f"{p}[old_status_id]": str(old_status_id),
        f"{p}[price]": str(price),
        f"{p}[pipeline_id]": str(pipeline_id),
        f"{p}[account_id]": "32145678",
        f"{p}[updated_at]": str(updated_at),
        f"{p}[last_modified]": str(updated_at),
    }
    for k, (code, value) in enumerate([("UTM_SOURCE", utm_source), ("UTM_CAMPAIGN", utm_campaign)]):
        if value:
            fields[f"{p}[custom_fields][{k}][id]"] = str(1402007 + k)
            fields[f"{p}[custom_fields][{k}][name]"] = code.lower()
            fields[f"{p}[custom_fields][{k}][code]"] = code
            fields[f"{p}[custom_fields][{k}][values][0][value]"] = value
    return fields


def encode(*leads: dict[str, str]) -> bytes:
    merged = dict(ACCOUNT)
    for lead in leads:
        merged.update(lead)
    return urlencode(merged).encode()
