"""What one phase of the bench measured."""

from dataclasses import dataclass

from bench.accounting import PhaseLedger
from bench.load import LoadResult


@dataclass(frozen=True)
class BaselineResult:
    load: LoadResult
    peak_kib: dict[str, int]  # VmHWM of the baseline's gunicorn master and workers
    cpu_s: dict[str, float]  # CPU seconds each process used during the load
    load_wall_s: float  # the load generator's run, start to exit

    @property
    def requests_per_s(self) -> float:
        return self.load.answered_200 / self.load.active_s


@dataclass(frozen=True)
class PhaseResult:
    name: str
    title: str
    load: LoadResult
    ledger: PhaseLedger
    drained: bool  # every sent lead credited within the drain bound
    backlog_at_load_end: int  # sent leads not yet credited when the load stopped
    cpu_s: dict[str, float]  # CPU seconds each process used during the load
    load_wall_s: float  # the load generator's run, start to exit
    # pg_stat_database growth over the phase (drain included), per lead: service -> figures
    database: dict[str, object]

    @property
    def ack_webhooks_per_s(self) -> float:
        """Webhooks answered 200 per second, from the first send to the last answer."""
        return self.load.answered_200 / self.load.active_s

    @property
    def ack_leads_per_s(self) -> float:
        return self.ack_webhooks_per_s * self.load.leads_per_body

    @property
    def e2e_leads_per_s(self) -> float | None:
        """Credited leads / (first send -> last credit)."""
        last = self.ledger.last_credit_at
        if last is None or last <= self.load.started_at:
            return None
        return self.ledger.credited / (last - self.load.started_at)

    @property
    def e2e_span_s(self) -> float | None:
        last = self.ledger.last_credit_at
        return None if last is None else last - self.load.started_at
