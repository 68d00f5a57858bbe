"""Posting webhooks outside the load generators: the warm-up, and the AmoCRM-style
retry of every lead that had no 200 answer when a load generator stopped."""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from bench.leads import CONTENT_TYPE, USER_AGENT, webhook_body

ATTEMPTS = 5


def post_until_ok(client: httpx.Client, lead_id: int) -> bool:
    """Post the lead's webhook until it is answered 200, as AmoCRM retries."""
    body = webhook_body([lead_id])
    headers = {"Content-Type": CONTENT_TYPE, "User-Agent": USER_AGENT}
    for attempt in range(ATTEMPTS):
        try:
            if client.post("/webhook/amocrm", content=body, headers=headers).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5 * (attempt + 1))
    return False


def post_leads(edge_url: str, lead_ids: list[int], concurrency: int = 32) -> list[int]:
    """Post every lead (one per body); returns the leads never answered 200."""
    if not lead_ids:
        return []
    with httpx.Client(base_url=edge_url, timeout=10) as client, ThreadPoolExecutor(
        concurrency
    ) as pool:
        ok = list(pool.map(lambda lead: post_until_ok(client, lead), lead_ids))
    return [lead for lead, done in zip(lead_ids, ok, strict=True) if not done]
