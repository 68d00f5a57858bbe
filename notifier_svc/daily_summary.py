"""The daily summary: at NOTIFIER_DAILY_SUMMARY_AT (local time, NOTIFIER_TIMEZONE)
every targetologist's chat gets the last 24 hours' sales, revenue and top
campaigns, and the default chat the totals per targetologist and referral code.

Where the figures come from. The notifier's own outbox knows which sales it
announced, but not what happened to them afterwards: a sale reversed when its
deal left the won status, or re-attributed to another targetologist (or to
nobody) under new rules, would still be counted, and referral sales are never
announced at all. The services that own the credits know: so the figures are
asked of them over gRPC, as the `notifier` caller, never read from their tables:

- traffic_svc `ListSales` with the period as `won_from`/`won_to` (every sale won
  in it; those with `reversed_at` or `reattributed_at` are left out), tallied per
  targetologist and campaign (summary.tally);
- referral_svc `GetReferrerStats` over the same period (credited conversions
  only: reversed ones are counted apart and left out);
- router_svc `GetRules`: which targetologist has which chat (the rules in force).

Exactly once per chat and day: NotificationStore.queue_summary inserts the
(chat, day) row of daily_summaries and the summary's messages in one
transaction, so however many replicas look, and whatever restarts, one queues
them and the others find the row. The messages are then sent by the outbox,
within the chat's and the bot's limits, like any sale. A chat already summarised
is not asked about again; a call that fails (a service down) is retried at the
next check, every CHECK_INTERVAL_S, for up to summary.CATCH_UP after the send
time (a replica started within that time catches up; later, the day is skipped).
"""

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Protocol
from zoneinfo import ZoneInfo

import grpc

from amoroute.timeutil import now, to_timestamp
from amoroute.v1 import (
    referral_pb2,
    referral_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
    traffic_pb2,
    traffic_pb2_grpc,
)
from notifier_svc.store import NotificationStore
from notifier_svc.summary import (
    ReferralDay,
    SaleFigure,
    TargetologistDay,
    Window,
    due_day,
    render_chat_summary,
    render_default_summary,
    tally,
    window,
)

log = logging.getLogger(__name__)

# How often each replica looks whether a summary is due (and at start).
CHECK_INTERVAL_S = 30.0
# Bound of each call for the figures.
CALL_TIMEOUT_S = 10.0
# Sales asked for per ListSales page (its maximum).
SALES_PAGE = 1000


@dataclass(frozen=True)
class RuleChat:
    """A targetologist of the rules and the chat they name (empty: the default)."""

    targetologist: str
    chat_id: str


class Figures(Protocol):
    """Where the summary's chats and figures come from."""

    def rule_chats(self) -> list[RuleChat]: ...

    def sales(self, start: datetime, end: datetime) -> Iterator[SaleFigure]: ...

    def referrals(self, start: datetime, end: datetime) -> list[ReferralDay]: ...


class GrpcFigures:
    """The figures asked of router_svc, traffic_svc and referral_svc."""

    def __init__(
        self, router: grpc.Channel, traffic: grpc.Channel, referral: grpc.Channel
    ) -> None:
        self.router = router_pb2_grpc.RouterServiceStub(router)
        self.traffic = traffic_pb2_grpc.TrafficServiceStub(traffic)
        self.referral = referral_pb2_grpc.ReferralServiceStub(referral)

    def rule_chats(self) -> list[RuleChat]:
        """The targetologists of the rules in force, in the rules' order."""
        rules = self.router.GetRules(router_pb2.GetRulesRequest(), timeout=CALL_TIMEOUT_S)
        document = json.loads(rules.current.json or "{}")
        return [
            RuleChat(str(t.get("name", "")), str(t.get("telegram_chat_id", "")))
            for t in (document.get("traffic") or {}).get("targetologists") or []
        ]

    def sales(self, start: datetime, end: datetime) -> Iterator[SaleFigure]:
        """Every sale won in [start, end), page by page."""
        token = ""
        while True:
            page = self.traffic.ListSales(
                traffic_pb2.ListSalesRequest(
                    page_size=SALES_PAGE,
                    page_token=token,
                    won_from=to_timestamp(start),
                    won_to=to_timestamp(end),
                ),
                timeout=CALL_TIMEOUT_S,
            )
            for sale in page.sales:
                yield SaleFigure(
                    sale.targetologist,
                    sale.amount,
                    sale.utm.campaign,
                    reversed=sale.HasField("reversed_at") or sale.HasField("reattributed_at"),
                )
            token = page.next_page_token
            if not token:
                return

    def referrals(self, start: datetime, end: datetime) -> list[ReferralDay]:
        """Credited conversions and their amount per referral code in [start, end)."""
        stats = self.referral.GetReferrerStats(
            referral_pb2.GetReferrerStatsRequest(
                won_from=to_timestamp(start), won_to=to_timestamp(end)
            ),
            timeout=CALL_TIMEOUT_S,
        )
        return [
            ReferralDay(s.referral_code, s.conversions, s.amount_total)
            for s in stats.stats
            if s.conversions
        ]


class DailySummary:
    """Queues the day's summary for every chat once it is due; the outbox sends it."""

    def __init__(
        self,
        store: NotificationStore,
        figures: Figures,
        *,
        send_at: time,
        zone: ZoneInfo,
        default_chat_id: str,
        allowed: Callable[[str], bool],
        currency: str,
        wake: Callable[[], None],
        clock: Callable[[], datetime] = now,
        interval_s: float = CHECK_INTERVAL_S,
    ) -> None:
        """`allowed(chat_id)`: whether the bot may post there (as for Notify);
        `wake`: tells the outbox that messages were queued."""
        self.store = store
        self.figures = figures
        self.send_at = send_at
        self.zone = zone
        self.default_chat_id = default_chat_id
        self.allowed = allowed
        self.currency = currency
        self.wake = wake
        self.clock = clock
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Set once a check has run to its end (whatever it queued): a replica
        # that just started has then looked at today's summary.
        self.checked = threading.Event()

    def check(self) -> int:
        """Queue the summary due now for every chat that has none yet; returns how
        many chats this call queued one for (0 when others did, or all are done)."""
        day = due_day(self.clock(), self.send_at, self.zone)
        if day is None:
            return 0
        rules = self.figures.rule_chats()
        chats = self._chats(rules)
        done = self.store.summarised_chats(day)
        if all(chat in done for chat in chats):
            return 0
        period = window(day, self.send_at, self.zone)
        people = tally(self.figures.sales(period.start, period.end))
        queued = 0
        for chat, names in chats.items():
            if chat in done:
                continue
            queued += self._queue(chat, day, self._parts(chat, names, people, period, rules))
        if queued:
            self.wake()
        return queued

    def _chats(self, rules: list[RuleChat]) -> dict[str, list[str]]:
        """Each chat to summarise and its targetologists, in the rules' order; the
        default chat (its list empty) gets the totals, not a targetologist's part."""
        chats: dict[str, list[str]] = {}
        for rule in rules:
            if not rule.chat_id or rule.chat_id == self.default_chat_id:
                continue
            if not self.allowed(rule.chat_id):
                log.warning(
                    "daily summary not sent to chat %s of targetologist %s: not in "
                    "TELEGRAM_ALLOWED_CHAT_IDS",
                    rule.chat_id,
                    rule.targetologist,
                )
                continue
            chats.setdefault(rule.chat_id, []).append(rule.targetologist)
        if self.default_chat_id:
            chats[self.default_chat_id] = []
        return chats

    def _parts(
        self,
        chat: str,
        names: list[str],
        people: dict[str, TargetologistDay],
        period: Window,
        rules: list[RuleChat],
    ) -> list[str]:
        if chat != self.default_chat_id:
            figures = [people.get(n.lower(), TargetologistDay(n)) for n in names]
            return render_chat_summary(period, figures, self.currency)
        everyone = dict(people)
        for rule in rules:
            everyone.setdefault(rule.targetologist.lower(), TargetologistDay(rule.targetologist))
        referrals = self.figures.referrals(period.start, period.end)
        return render_default_summary(period, list(everyone.values()), referrals, self.currency)

    def _queue(self, chat: str, day: date, parts: list[str]) -> int:
        if not self.store.queue_summary(chat, day, parts):
            return 0  # another replica queued it meanwhile
        log.info(
            "daily summary queued",
            extra={"chat_id": chat, "day": day.isoformat(), "parts": len(parts)},
        )
        return 1

    def start(self) -> None:
        """Check at once, then every interval_s, in a background thread until stop()."""
        self._thread = threading.Thread(target=self._run, name="notifier-summary", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
                self.checked.set()
            except grpc.RpcError as error:
                log.warning(
                    "daily summary: figures unavailable, retrying in %.0f s: %s",
                    self.interval_s,
                    error.code(),
                )
            except Exception:  # the database may be away for a while: keep checking
                log.exception("daily summary check failed")
            self._stop.wait(self.interval_s)
