"""The review queue's groups: unknown sales whose UTM marks differ only in case, separators or
spaces are one group, keyed by their normalised source and campaign. Pure: no I/O."""

from dataclasses import dataclass, field
from datetime import datetime

from amoroute.utm_grouping import normalise
from edge.review_store import LEADS_PER_GROUP, RawGroup


def group_key(source: str, campaign: str) -> str:
    """A group's key from its normalised source and campaign. Normalised values hold no
    spaces, so " / " separates them unambiguously; a group with a source and no campaign is
    keyed by the source alone, and a group without marks by " / "."""
    return source if source and not campaign else f"{source} / {campaign}"


@dataclass
class Group:
    source: str  # normalised
    campaign: str  # normalised
    key: str
    # The raw marks seen, the most revenue first.
    variants: list[RawGroup] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(v.count for v in self.variants)

    @property
    def revenue(self) -> int:
        return sum(v.revenue for v in self.variants)

    @property
    def first_seen(self) -> datetime:
        return min(v.first_seen for v in self.variants)

    @property
    def last_seen(self) -> datetime:
        return max(v.last_seen for v in self.variants)

    @property
    def newest(self) -> list[tuple[int, int]]:
        """(log id, lead id) of the newest sales of every variant, newest first."""
        return sorted((n for v in self.variants for n in v.newest), reverse=True)[:LEADS_PER_GROUP]


def merge(raw: list[RawGroup]) -> list[Group]:
    """Raw groups merged by normalised source and campaign, the most revenue first (then the
    most sales, then by key, so the order is stable)."""
    groups: dict[str, Group] = {}
    for item in raw:
        source, campaign = normalise(item.utm_source or ""), normalise(item.utm_campaign or "")
        key = group_key(source, campaign)
        groups.setdefault(key, Group(source, campaign, key)).variants.append(item)
    for group in groups.values():
        group.variants.sort(
            key=lambda v: (-v.revenue, -v.count, v.utm_source or "", v.utm_campaign or "")
        )
    return sorted(groups.values(), key=lambda g: (-g.revenue, -g.count, g.key))
