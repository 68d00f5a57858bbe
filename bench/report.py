"""The bench's one table, and the same figures as JSON."""

import dataclasses
from datetime import UTC, datetime
from typing import Any

from bench.phases import BaselineResult, PhaseResult
from bench.settings import BenchSettings

TELEGRAM = (
    "fake Telegram Bot API server on 127.0.0.1, TELEGRAM_BOT_TOKEN set: every lead goes to "
    "Kenesary's chat, which Telegram's pace (1 message/s per chat) limits, so most "
    "notifications stay queued (pending) in the notifier outbox; 'credited' counts a "
    "stored outbox row"
)


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _load(load: Any) -> dict[str, Any]:
    data = dataclasses.asdict(load)
    for bulky in ("generated_leads", "acked_log_ids"):
        data.pop(bulky)
    data["started_at"] = datetime.fromtimestamp(load.started_at, UTC).isoformat()
    return data


def build(
    settings: BenchSettings,
    machine: dict[str, object],
    baseline: BaselineResult,
    phases: list[PhaseResult],
    peak_kib: dict[str, int],
    elapsed_s: float,
) -> dict[str, Any]:
    """Every figure of the run, as written to bench/results/*.json."""
    base_rps = baseline.requests_per_s
    by_name = {p.name: p for p in phases}
    throughput = {}
    for name in ("single", "ten"):
        p = by_name[name]
        throughput[name] = {
            "leads_per_webhook": p.load.leads_per_body,
            "ack_webhooks_per_s": round(p.ack_webhooks_per_s, 1),
            "ack_leads_per_s": round(p.ack_leads_per_s, 1),
            "ack_ratio_to_baseline": round(p.ack_webhooks_per_s / base_rps, 4),
            "e2e_leads_per_s": _round(p.e2e_leads_per_s),
            "e2e_span_s": _round(p.e2e_span_s),
            "load_s": round(p.load.duration_s, 1),
            "backlog_at_load_end": p.backlog_at_load_end,
            "drained": p.drained,
            "ack_latency_ms_closed_loop": p.load.latency_ms,
        }
    latency = {}
    for p in phases:
        if p.load.generator != "openloop":
            continue
        latency[p.name] = {
            "offered_webhooks_per_s": p.load.extra.get("rate"),
            "load_s": round(p.load.duration_s, 1),
            "latency_ms": p.load.latency_ms,
            "answered_200": p.load.answered_200,
            "scheduled": p.load.extra.get("scheduled"),
            "within_2s": p.load.extra.get("within_2s"),
            "achieved_ack_webhooks_per_s": round(p.ack_webhooks_per_s, 1),
            # Includes the retry of every unanswered lead after the load: not a rate to quote.
            "e2e_leads_per_s_with_retries": _round(p.e2e_leads_per_s),
            "max_schedule_lag_ms": p.load.extra.get("max_schedule_lag_ms"),
            "errors": p.load.errors,
            "statuses": p.load.statuses,
        }
    processes: dict[str, Any] = {}
    for label, kib in sorted(peak_kib.items()):
        processes[label] = {"peak_rss_mib": _mib(kib)}
    for label, kib in sorted(baseline.peak_kib.items()):
        processes[label] = {"peak_rss_mib": _mib(kib)}
    runs = [(p.name, p.cpu_s, p.load_wall_s) for p in phases]
    runs.append(("baseline", baseline.cpu_s, baseline.load_wall_s))
    for name, cpu, wall_s in runs:
        for label, seconds in cpu.items():
            entry = processes.setdefault(label, {})
            entry.setdefault("cpu_s", {})[name] = seconds
            entry.setdefault("cores_used", {})[name] = round(seconds / wall_s, 2)
    database = {p.name: p.database for p in phases}
    accounting = {
        p.name: {**dataclasses.asdict(p.ledger), "zero_loss": p.ledger.zero_loss}
        for p in phases
    }
    return {
        "run": {
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": "quick" if settings.quick else "full",
            "settings": dataclasses.asdict(settings),
            "machine": machine,
            "telegram": TELEGRAM,
            "elapsed_s": round(elapsed_s, 1),
        },
        "baseline": {
            "app": "bench/baseline_app.py under edge/gunicorn_conf.py",
            "requests_per_s": round(base_rps, 1),
            "load": _load(baseline.load),
        },
        "throughput": throughput,
        "latency": latency,
        "accounting": accounting,
        "processes": processes,
        "database": database,
        "loads": {p.name: _load(p.load) for p in phases},
        "zero_loss": all(p.ledger.zero_loss for p in phases),
    }


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in
                       enumerate(zip(header, widths, strict=True)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                               enumerate(zip(row, widths, strict=True))))
    return lines


def _latency(ms: dict[str, Any], key: str, timeout_s: float) -> str:
    value = ms.get(key)
    return f"> {timeout_s * 1000:,.0f}" if value is None else _num(float(value))


def render(result: dict[str, Any]) -> str:
    """The table printed at the end of `make bench`."""
    run, settings = result["run"], result["run"]["settings"]
    m = run["machine"]
    out = [
        f"amoroute bench — {run['mode']} run, {settings['duration_s']:g} s per phase, "
        f"{m['cpus']} CPUs, PostgreSQL {m['postgresql']}, gunicorn gthread "
        f"{settings['edge_workers']} workers x {settings['edge_threads']} threads, "
        f"load average at start {m['load_average_at_start']}",
        "Telegram: " + run["telegram"],
    ]
    if not m.get("postgresql_autovacuum", True):
        out.append(
            "PostgreSQL: autovacuum is off on this server, so each phase starts on "
            "freshly vacuumed databases (VACUUM ANALYZE before the phase, not timed)"
        )
    out += [
        "",
        f"THROUGHPUT (closed loop: wrk, {settings['wrk_threads']} thread, "
        f"{settings['connections']} connections)",
    ]
    base = result["baseline"]
    base_ms = base["load"]["latency_ms"]
    rows = [[
        "baseline: bare Falcon", _num(base["requests_per_s"]), "—", "1.000", "—", "—",
        f"{_num(base_ms['p50'])} / {_num(base_ms['p99'])}",
    ]]
    for name, label in (("single", "edge: 1 lead/webhook"), ("ten", "edge: 10 leads/webhook")):
        t = result["throughput"][name]
        ms = t["ack_latency_ms_closed_loop"]
        rows.append([
            label, _num(t["ack_webhooks_per_s"]), _num(t["ack_leads_per_s"]),
            f"{t['ack_ratio_to_baseline']:.3f}", _num(t["e2e_leads_per_s"]),
            _num(t["e2e_span_s"]), f"{_num(ms['p50'])} / {_num(ms['p99'])}",
        ])
    out += _table(
        ["", "ack webhooks/s", "ack leads/s", "ack / baseline", "e2e leads/s",
         "e2e span s", "ack p50 / p99 ms"],
        rows,
    )
    timeout = settings["request_timeout_s"]
    out += [
        "",
        f"ACK LATENCY (open loop for {settings['duration_s']:g} s: a webhook every 1/rate s "
        "whatever the answers; latency from each request's scheduled time)",
    ]
    rows = []
    for lat in result["latency"].values():
        ms = lat["latency_ms"]
        scheduled = lat["scheduled"] or 0
        within = lat["within_2s"] or 0
        rows.append([
            f"{lat['offered_webhooks_per_s']:g}", _latency(ms, "p50", timeout),
            _latency(ms, "p95", timeout), _latency(ms, "p99", timeout), _num(ms.get("max")),
            f"{lat['answered_200']:,} / {scheduled:,}",
            f"{within / scheduled:.1%}" if scheduled else "—",
            _num(lat["achieved_ack_webhooks_per_s"]), _num(lat["max_schedule_lag_ms"]),
        ])
    out += _table(
        ["offered webhooks/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "answered 200",
         "within 2 s", "achieved webhooks/s", "sender lag max ms"],
        rows,
    )
    out += ["", "ZERO-LOSS ACCOUNTING (leads; every phase must have sent = credited, "
                "0 duplicated, 0 lost)"]
    rows = []
    for name, a in result["accounting"].items():
        rows.append([
            name, _num(a["sent"]), _num(a["acked"]), _num(a["resent"]), _num(a["logged_rows"]),
            _num(a["logged_leads"]), _num(a["credited"]), _num(a["duplicated"]),
            _num(a["lost"]), _num(a["worker_retried"]), "ok" if a["zero_loss"] else "FAILED",
        ])
    out += _table(
        ["phase", "sent", "acked", "resent", "logged rows", "logged leads", "credited",
         "duplicated", "lost", "worker retried", "result"],
        rows,
    )
    out += ["", "POSTGRESQL WORK PER LEAD (pg_stat_database over each phase, drain included)"]
    services = ("edge", "traffic", "notifier", "all")
    rows = []
    for name, db in result["database"].items():
        rows.append(
            [name]
            + [_num(db.get(s, {}).get("xact_commit_per_lead"), 2) for s in services]
            + [_num(db["all"]["xact_rollback_per_lead"], 2),
               _num(db["all"]["tup_inserted_per_lead"] + db["all"]["tup_updated_per_lead"], 2),
               _num(db["all"]["sessions_opened"])]
        )
    out += _table(
        ["phase"] + [f"commits {s}" for s in services]
        + ["rollbacks", "rows written", "sessions opened"],
        rows,
    )
    phase_names = list(result["accounting"]) + ["baseline"]
    out += ["", "PROCESSES (peak RSS = VmHWM; CPU = cores busy on average during each load)"]
    rows = []
    for label, p in result["processes"].items():
        cores = p.get("cores_used", {})
        rows.append([label, _num(p.get("peak_rss_mib"))] + [
            _num(cores.get(name), 2) for name in phase_names
        ])
    out += _table(["process", "peak RSS MiB"] + [f"CPU {n}" for n in phase_names], rows)
    out += ["", "zero loss in every phase: " + ("yes" if result["zero_loss"] else "NO")]
    return "\n".join(out)


def phase_line(p: PhaseResult) -> str:
    """One progress line after a phase."""
    e2e = p.e2e_leads_per_s
    return (
        f"{p.load.answered_200:,} webhooks answered 200 in {p.load.duration_s:.1f} s "
        f"({p.ack_webhooks_per_s:,.1f}/s), sent {p.ledger.sent:,} leads, credited "
        f"{p.ledger.credited:,}, e2e {'—' if e2e is None else f'{e2e:,.1f}'} leads/s, "
        f"duplicated {p.ledger.duplicated}, {'drained' if p.drained else 'NOT drained'}"
    )
