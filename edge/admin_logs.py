"""Admin resources over webhook_logs: the list, one log, its replay, and the stats.

They only translate HTTP to store calls and the replay use case (edge/replay.py) and
back; the SQL lives in edge/log_store.py.
"""

import falcon

from amoroute import paging
from amoroute.timeutil import now
from edge.admin_csv import send_csv
from edge.admin_json import iso, public
from edge.admin_params import (
    Params,
    bad_param,
    list_format,
    log_id_param,
    log_query,
    parse_window,
    wants_total,
)
from edge.credited_why import credited_why
from edge.dispatch import Dispatcher
from edge.event_lifecycle import DECISIONS, PENDING, STATUSES
from edge.flow_series import WINDOWS, FrozenBuckets, buckets_for
from edge.flow_store import FlowBucketStore
from edge.log_store import WebhookLogStore
from edge.replay import NotReplayable, replay
from edge.retention import CHECKPOINT as RETENTION_CHECKPOINT
from edge.retention import RetentionPolicy

API_PREFIX = "/api/admin"
# The columns of a log export, in order: the list's, without the stored payload.
EXPORT_COLUMNS = (
    "received_at", "source", "lead_id", "deal_name", "pipeline_id", "status_id",
    "utm_source", "utm_campaign", "routing_decision", "processing_status", "error_message",
    "attempts", "processing_ms", "processed_at", "replay_of",
)


class WebhookLogsResource:
    """GET /api/admin/webhook-logs, GET …/{id}, POST …/{id}/replay."""

    def __init__(
        self, logs: WebhookLogStore, dispatcher: Dispatcher, deadline_s: float, subdomain: str = ""
    ) -> None:
        self.logs = logs
        self.dispatcher = dispatcher
        self.deadline_s = deadline_s
        self.subdomain = subdomain

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        export = list_format(req) == "csv"
        query = log_query(req)
        if export:
            pages = self.logs.export_pages(query, ("id", *EXPORT_COLUMNS))
            send_csv(resp, "webhook-logs", ("id", *EXPORT_COLUMNS), pages)
            return
        page = self.logs.search(query)
        resp.media = {
            "items": [public(row) for row in page.items],
            "next_cursor": None
            if page.next_before_id is None
            else paging.encode_token(page.next_before_id),
        }
        if wants_total(req):
            resp.media["total"] = self.logs.count_matching(query)

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, log_id: int) -> None:
        log_id = log_id_param(log_id)
        row = self.logs.find(log_id)
        if row is None:
            raise falcon.HTTPNotFound(description=f"no webhook log {log_id}")
        resp.media = {
            **public(row),
            "attempts": [public(a) for a in self.logs.attempts(log_id)],
            "replayed_as": self.logs.replays_of(log_id),
            "why": credited_why(row),
        }

    def on_post_replay(self, req: falcon.Request, resp: falcon.Response, log_id: int) -> None:
        log_id = log_id_param(log_id)
        try:
            new_id = replay(self.logs, self.dispatcher, log_id, self.deadline_s, self.subdomain)
        except LookupError:
            raise falcon.HTTPNotFound(description=f"no webhook log {log_id}") from None
        except NotReplayable as exc:
            raise falcon.HTTPConflict(
                description=f"webhook log {log_id} cannot be replayed: {exc}"
            ) from None
        row = self.logs.find(new_id)
        assert row is not None
        resp.status = falcon.HTTP_201
        resp.location = f"{API_PREFIX}/webhook-logs/{new_id}"
        resp.media = public(row)


class WebhookStatsResource:
    """GET /api/admin/webhook-stats?window=24h."""

    def __init__(
        self, logs: WebhookLogStore, retention: RetentionPolicy, retention_every_s: int
    ) -> None:
        self.logs = logs
        self.retention = retention
        self.retention_every_s = retention_every_s

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        label, length = parse_window(Params(req, ("window",)).text("window"))
        until = now()
        stats = self.logs.window_stats(until - length, until)
        by_status = {status: stats.by_status.get(status, 0) for status in STATUSES}
        total = sum(stats.by_status.values())
        finished = total - by_status[PENDING]
        resp.media = {
            "window": label,
            "since": iso(stats.since),
            "until": iso(stats.until),
            "total": total,
            "by_status": by_status,
            "by_routing": {
                **{decision: stats.by_decision.get(decision, 0) for decision in DECISIONS},
                "undecided": stats.by_decision.get(None, 0),
            },
            "finished": finished,
            # Share of finished events that fully succeeded; null when none finished.
            "success_rate": round(by_status["success"] / finished, 4) if finished else None,
            "processing_ms": {"p50": stats.p50_ms, "p95": stats.p95_ms, "count": stats.timed},
            "retention": self._retention(),
        }

    def _retention(self) -> dict[str, object]:
        """The retention in force, the oldest event kept and what the last run did."""
        return {
            "days": self.retention.days,
            "error_days": self.retention.error_days,
            "interval_s": self.retention_every_s,
            "oldest_received_at": iso(self.logs.oldest_received_at()),
            "last_run": self.logs.last_report(RETENTION_CHECKPOINT),
        }


class WebhookFlowResource:
    """GET /api/admin/webhook-stats/timeseries?window=24h: the flow per interval."""

    def __init__(self, logs: WebhookLogStore) -> None:
        self.logs = logs
        self.frozen = FrozenBuckets(FlowBucketStore(logs.engine))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        window = Params(req, ("window",)).text("window") or "24h"
        if window not in WINDOWS:
            raise bad_param("window", f"must be one of {', '.join(WINDOWS)}")
        moment = now()
        buckets = buckets_for(window, moment)
        # PERF: buckets past their events' retries are computed once and kept in
        # webhook_flow_buckets; measured by python -m bench.log_queries
        series = self.frozen.series(buckets, moment, self.logs.flow_series)
        resp.media = {
            "window": window,
            "interval_s": int(buckets.step.total_seconds()),
            "since": iso(buckets.start),
            "until": iso(buckets.end),
            "buckets": [
                {
                    "start": iso(start),
                    **bucket.counts,
                    "total": sum(bucket.counts.values()),
                    "p50_ms": _ms(bucket.p50_ms),
                    "p95_ms": _ms(bucket.p95_ms),
                }
                for start, bucket in zip(buckets.starts(), series, strict=True)
            ],
        }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
