"""Lead ids and webhook bodies of the bench.

Every phase owns a block of PHASE_BLOCK lead ids, so what was logged and credited
can be counted per phase, and no lead id is used twice in a run."""

from dataclasses import dataclass

from tests.support.forms import encode, won_deal_body

PHASE_BLOCK = 100_000_000
# Routes to the targetologist Kenesary in router_svc/routing_rules.yaml: a traffic sale
# plus a Telegram notification, the longest path a lead takes.
UTM_SOURCE = "kenesary_fb"
CONTENT_TYPE = "application/x-www-form-urlencoded"
USER_AGENT = "amoCRM-WebHook-client/1.0"


@dataclass(frozen=True)
class LeadBlock:
    """The lead ids [first, first + PHASE_BLOCK) of one phase."""

    first: int

    @classmethod
    def of_phase(cls, number: int) -> "LeadBlock":
        return cls(number * PHASE_BLOCK)

    @property
    def last(self) -> int:
        return self.first + PHASE_BLOCK - 1

    def __contains__(self, lead_id: object) -> bool:
        return isinstance(lead_id, int) and self.first <= lead_id <= self.last


def webhook_body(lead_ids: list[int], utm_source: str = UTM_SOURCE) -> bytes:
    """An AmoCRM won-deal form body carrying `lead_ids` as leads[status][0..n-1]."""
    return encode(*(won_deal_body(lead, utm_source, index=k) for k, lead in enumerate(lead_ids)))
