"""`make bench` (python -m bench.run): the whole stack on PostgreSQL under load,
next to a bare Falcon baseline, in one run. Prints one table and writes it as JSON
to bench/results/<timestamp>.json and bench/results/latest.json.

Phases, each with its own block of lead ids (bench.leads):
  baseline        wrk closed loop on bench.baseline_app under edge/gunicorn_conf.py
  single          wrk closed loop, one lead per webhook, then wait until all are credited
  ten             the same with ten leads per webhook
  fixed_rate_low  bench.openloop (open loop) at 70 % of the single-lead capacity, then wait
  fixed_rate      bench.openloop at BENCH_RATE (500) webhooks/s, then wait
Every lead without a 200 answer when a generator stops is posted again, as AmoCRM
retries, so each phase must end with sent = credited and nothing duplicated."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa

from bench import pgstats, profile, report
from bench.accounting import Ledger, telegram_leads
from bench.delivery import post_leads
from bench.leads import LeadBlock
from bench.load import LoadResult, require_wrk, run_openloop, run_wrk
from bench.phases import BaselineResult, PhaseResult
from bench.procstats import OTHERS, CpuSnapshot, ProcessWatch, cpu_delta, parent_of
from bench.settings import BenchSettings
from tests.support.databases import PG_ADMIN_URL, create_database, drop_database
from tests.support.fake_telegram import FakeTelegram
from tests.support.stack import RunningStack, free_port, start_stack

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("results")
BOT_TOKEN = "123456:bench-token"
WEBHOOK_PATH = "/webhook/amocrm"
POSTGRES = "postgres server (all databases)"
ORCHESTRATOR = "bench.run (+ fake Telegram)"
LOAD_GENERATOR = "load generator"
PROFILE_S = 20


def wait_http_ok(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not answering 200 within {timeout_s} s")


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def postmaster_pid() -> int | None:
    """The PostgreSQL server's main process, when it runs on this machine."""
    admin = sa.create_engine(PG_ADMIN_URL)
    try:
        with admin.connect() as conn:
            backend = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            return parent_of(backend)
    finally:
        admin.dispose()


def load_cpu(before: CpuSnapshot, after: CpuSnapshot, load: LoadResult) -> dict[str, float]:
    """CPU seconds per process during a load, the load generator's included."""
    cpu = cpu_delta(before, after)
    cpu[LOAD_GENERATOR] = round(load.generator_cpu_s, 2)
    cpu[OTHERS] = round(max(0.0, cpu[OTHERS] - load.generator_cpu_s), 2)
    return cpu


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr, its children's too, to `path`
    (the migrations start_stack runs print to them)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def measure_baseline(settings: BenchSettings, work_dir: Path) -> BaselineResult:
    """The bare Falcon app under the edge's gunicorn settings, single-lead bodies."""
    port = free_port()
    env = {
        **os.environ,
        "EDGE_PORT": str(port),
        "EDGE_WORKERS": settings.edge_workers,
        "EDGE_THREADS": settings.edge_threads,
    }
    argv = [sys.executable, "-m", "gunicorn", "-c", "edge/gunicorn_conf.py",
            "bench.baseline_app:create_app()"]
    with open(work_dir / "baseline.log", "wb") as log:
        proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{url}/healthz", proc)
        watch = ProcessWatch({"baseline (gunicorn master)": proc.pid},
                             child_label={"baseline (gunicorn master)": "baseline worker"})
        before = watch.cpu({os.getpid(): ORCHESTRATOR})
        started = time.monotonic()
        load = run_wrk(
            url + WEBHOOK_PATH,
            first_lead=LeadBlock.of_phase(1).first,
            leads_per_body=1,
            duration_s=settings.duration_s,
            connections=settings.connections,
            threads=settings.wrk_threads,
            timeout_s=settings.request_timeout_s,
            work_dir=work_dir,
            name="baseline",
        )
        wall_s = time.monotonic() - started
        cpu = load_cpu(before, watch.cpu({os.getpid(): ORCHESTRATOR}), load)
        return BaselineResult(load, dict(watch.peak_kib), cpu, wall_s)
    finally:
        stop_process(proc)


class StackBench:
    """The running stack and what measures it."""

    def __init__(
        self,
        settings: BenchSettings,
        running: RunningStack,
        telegram: FakeTelegram,
        databases: dict[str, str],
        work_dir: Path,
        autovacuum: bool = True,
    ) -> None:
        """`autovacuum`: the server's autovacuum is on; when it is off, each phase
        starts on freshly vacuumed databases, as autovacuum would keep them."""
        self.settings = settings
        self.running = running
        self.telegram = telegram
        self.databases = databases
        self.autovacuum = autovacuum
        self.work_dir = work_dir
        self.url = running.edge_url
        self.ledger = Ledger(databases["edge"], databases["traffic"], databases["notifier"])
        procs = running.stack.procs
        self.watch = ProcessWatch(
            {("edge (gunicorn master)" if name == "edge" else name): p.pid
             for name, p in procs.items()},
            child_label={"edge (gunicorn master)": "edge worker"},
        )
        self.postmaster = postmaster_pid()
        self.db_stats: pgstats.DatabaseStats | None = None

    def close(self) -> None:
        self.ledger.close()

    def cpu_now(self) -> CpuSnapshot:
        trees = {POSTGRES: self.postmaster} if self.postmaster else {}
        return self.watch.cpu({os.getpid(): ORCHESTRATOR}, trees)

    def profile_targets(self) -> dict[str, int]:
        self.watch.sample()
        wanted = ("edge worker", "router_svc", "traffic_svc", "notifier_svc", "edge.worker")
        return {label: pid for pid, label in self.watch.labels.items()
                if label.startswith(wanted)}

    def wait_credited(self, block: LeadBlock, expected: int) -> bool:
        return self.ledger.wait_credited(block, expected, self.settings.drain_timeout_s)

    def warm_up(self) -> None:
        """Open every connection pool and channel before anything is measured."""
        block = LeadBlock.of_phase(9)
        leads = list(range(block.first, block.first + 64))
        post_leads(self.url, leads, concurrency=16)
        self.wait_credited(block, len(leads))
        self.db_stats = self.settled_db_stats()

    def settled_db_stats(self) -> pgstats.DatabaseStats:
        time.sleep(pgstats.STATS_SETTLE_S)
        return pgstats.snapshot(PG_ADMIN_URL, self.databases)

    def vacuum(self) -> None:
        pgstats.vacuum(self.databases.values())

    def phase(
        self, number: int, name: str, title: str, load: Callable[[LeadBlock], LoadResult]
    ) -> PhaseResult:
        block = LeadBlock.of_phase(number)
        if not self.autovacuum:
            self.vacuum()
        print(f"bench: phase {name}: {title}", flush=True)
        profilers: list[subprocess.Popen[bytes]] = []
        if self.settings.profile and name == self.settings.profile_phase:
            seconds = max(1, min(PROFILE_S, round(self.settings.duration_s) - 2))
            profilers = profile.start(
                self.profile_targets(), seconds, self.work_dir / "profile", self.settings.profile
            )
        before = self.cpu_now()
        started = time.monotonic()
        result = load(block)
        wall_s = time.monotonic() - started
        cpu = load_cpu(before, self.cpu_now(), result)
        for proc in profilers:
            proc.wait()
        generated = set(result.generated_leads)
        n_sales, n_notes = self.ledger.credited_so_far(block)
        backlog = len(generated) - min(n_sales, n_notes)
        leads_of = self.ledger.leads_of_logs(result.acked_log_ids)
        acked = {lead for lead in leads_of.values() if lead is not None}
        acked_not_logged = len(set(result.acked_log_ids) - set(leads_of))
        unanswered = sorted(generated - acked)
        never_ok = post_leads(self.url, unanswered)
        if never_ok:
            print(f"bench: {len(never_ok)} leads never answered 200 on retry", flush=True)
        drained = self.wait_credited(block, len(generated))
        # Telegram's pace (one message a second per chat) leaves most in the outbox.
        texts = [r.body.get("text", "") for r in self.telegram.delivered]
        ledger = self.ledger.phase(
            block, generated, acked, len(unanswered), acked_not_logged, telegram_leads(texts)
        )
        stats = self.settled_db_stats()
        database = pgstats.per_lead(self.db_stats or stats, stats, len(generated))
        self.db_stats = stats
        outcome = PhaseResult(
            name, title, result, ledger, drained, backlog, cpu, wall_s, database
        )
        print(f"bench:   {report.phase_line(outcome)}", flush=True)
        return outcome

    def closed_loop(self, block: LeadBlock, leads_per_body: int, name: str) -> LoadResult:
        s = self.settings
        return run_wrk(
            self.url + WEBHOOK_PATH,
            first_lead=block.first,
            leads_per_body=leads_per_body,
            duration_s=s.duration_s,
            connections=s.connections,
            threads=s.wrk_threads,
            timeout_s=s.request_timeout_s,
            work_dir=self.work_dir,
            name=name,
        )

    def open_loop(self, block: LeadBlock, rate: float, name: str) -> LoadResult:
        s = self.settings
        return run_openloop(
            self.url + WEBHOOK_PATH,
            first_lead=block.first,
            leads_per_body=1,
            rate=rate,
            duration_s=s.duration_s,
            max_connections=s.openloop_connections,
            timeout_s=s.request_timeout_s,
            work_dir=self.work_dir,
            name=name,
        )

    def run(self) -> list[PhaseResult]:
        self.warm_up()
        single = self.phase(2, "single", "closed loop, 1 lead per webhook",
                            lambda block: self.closed_loop(block, 1, "single"))
        ten = self.phase(3, "ten", "closed loop, 10 leads per webhook",
                         lambda block: self.closed_loop(block, 10, "ten"))
        # Below capacity, latency is service time; above it, queueing. Both are shown.
        low_rate = max(1.0, round(single.ack_webhooks_per_s * self.settings.low_rate_fraction))
        low = self.phase(4, "fixed_rate_low",
                         f"open loop at {low_rate:g} webhooks/s "
                         f"({self.settings.low_rate_fraction:.0%} of single-lead capacity)",
                         lambda block: self.open_loop(block, low_rate, "fixed_rate_low"))
        fixed = self.phase(5, "fixed_rate",
                           f"open loop at {self.settings.rate:g} webhooks/s",
                           lambda block: self.open_loop(block, self.settings.rate, "fixed_rate"))
        self.watch.sample()
        return [single, ten, low, fixed]


def machine() -> dict[str, object]:
    wrk_version = subprocess.run([require_wrk(), "-v"], capture_output=True, text=True).stdout
    admin = sa.create_engine(PG_ADMIN_URL)
    with admin.connect() as conn:
        pg = conn.execute(sa.text("SHOW server_version")).scalar_one()
        autovacuum = conn.execute(sa.text("SHOW autovacuum")).scalar_one() == "on"
    admin.dispose()
    return {
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "postgresql": pg,
        "postgresql_autovacuum": autovacuum,
        "wrk": wrk_version.splitlines()[0] if wrk_version else "",
    }


def main() -> int:
    settings = BenchSettings.from_env()
    os.chdir(REPO)
    require_wrk()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(exist_ok=True)
    work_dir = RESULTS / stamp
    work_dir.mkdir()
    print(f"bench: {'quick' if settings.quick else 'full'} run, {settings.duration_s:g} s "
          f"phases, work files in {work_dir}", flush=True)
    facts = machine()
    started = time.time()
    print("bench: phase baseline: bare Falcon under edge/gunicorn_conf.py", flush=True)
    baseline = measure_baseline(settings, work_dir)
    sqlite_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    databases: dict[str, str] = {}
    ok = False
    try:
        for name in ("edge", "referral", "traffic", "notifier"):
            databases[name] = create_database(f"bench_{name}", sqlite_dir)
        if not databases["edge"].startswith("postgresql"):
            raise SystemExit("the bench runs on PostgreSQL: unset AMOROUTE_TEST_DB")
        with FakeTelegram() as telegram:
            with output_to(work_dir / "migrate.log"):
                running = start_stack(
                    databases,
                    work_dir,
                    TELEGRAM_API_URL=telegram.url,
                    TELEGRAM_BOT_TOKEN=BOT_TOKEN,
                    AMOCRM_DOMAIN="onaiagencykz",
                    WEBHOOK_SECRET="",
                    EDGE_WORKERS=settings.edge_workers,
                    EDGE_THREADS=settings.edge_threads,
                )
            bench = StackBench(
                settings, running, telegram, databases, work_dir,
                autovacuum=bool(facts["postgresql_autovacuum"]),
            )
            try:
                phases = bench.run()
                peaks = dict(bench.watch.peak_kib)
            finally:
                bench.close()
                running.stack.stop()
        result = report.build(settings, facts, baseline, phases, peaks, time.time() - started)
        if settings.profile and (work_dir / "profile").exists():
            result["profile"] = profile.report(work_dir / "profile", settings.profile)
        ok = True
    finally:
        for url in databases.values():
            drop_database(url)
        shutil.rmtree(sqlite_dir, ignore_errors=True)
    text = report.render(result)
    print("\n" + text)
    if settings.profile and result.get("profile"):
        phase = settings.profile_phase
        print(f"\nProfile ({settings.profile}, {phase} phase):\n{result['profile']}")
    payload = json.dumps(result, indent=2, default=str)
    (RESULTS / f"{stamp}.json").write_text(payload)
    (RESULTS / "latest.json").write_text(payload)
    print(f"\nwritten: bench/results/{stamp}.json, bench/results/latest.json")
    if ok and not settings.keep_logs and not settings.profile:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0 if result["zero_loss"] else 1


if __name__ == "__main__":
    sys.exit(main())
