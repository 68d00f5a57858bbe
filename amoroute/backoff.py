"""How long to wait before trying again, and when to stop: the one backoff rule of
every retry (edge events, notifier outbox, AmoCRM API calls)."""

from dataclasses import dataclass

# Doubling beyond this many times overshoots any cap; stopping here keeps a
# float delay from overflowing when a stored attempt count is huge.
_MAX_DOUBLINGS = 60


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff without jitter: `first_s` after the first failed try,
    doubling after each further one, `max_s` at most; no try after the `tries`-th."""

    first_s: float
    max_s: float
    tries: int

    def __post_init__(self) -> None:
        if self.first_s < 0 or self.max_s < 0:
            raise ValueError(f"backoff delays must be 0 or more; got {self.first_s}, {self.max_s}")
        if self.tries < 1:
            raise ValueError(f"a backoff allows at least one try; got tries={self.tries}")

    def delay_s(self, failed: int) -> float:
        """Seconds to wait after `failed` failed tries (1 = after the first one)."""
        doublings = min(max(failed - 1, 0), _MAX_DOUBLINGS)
        return min(self.first_s * 2**doublings, self.max_s)

    def gives_up(self, tried: int) -> bool:
        """True once `tried` tries are all this backoff allows."""
        return tried >= self.tries
