"""The form in which unknown sales' UTM values are grouped: the router's suggestions
(router_svc/suggestions.py) and the edge's review queue (edge/review_queue.py) must agree on
it, so it lives here once. Pure: no I/O."""

import re

# Separators people type between words of a source: "kenesary fb", "kenesary-fb", "kenesary.fb".
SEPARATORS = re.compile(r"[\s_\-.]+")


def normalise(value: str) -> str:
    """The form unknown sources are grouped by: trimmed, case-folded, every run of
    separators as one `_` (`" Kenesary-FB "` and `"kenesary fb"` are one group)."""
    return SEPARATORS.sub("_", value.strip().casefold()).strip("_")
