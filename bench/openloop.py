"""Open-loop load generator: POSTs AmoCRM webhooks at fixed intervals whatever the
answers, and measures each answer from the moment its request was *scheduled*, so
a slow server cannot hide its latency by slowing the sender (coordinated omission).

    python -m bench.openloop --url http://127.0.0.1:8080/webhook/amocrm --rate 500 \
        --duration-s 60 --first-lead 400000000 --out openloop.json

Request i carries lead ids first_lead + i * leads_per_body + (0..leads_per_body-1).
Raw asyncio streams and HTTP/1.1 keep-alive; at most --max-connections requests are
in flight, and one that finds them all busy waits (the wait counts in its latency).
A request not answered --timeout-s after its scheduled time counts as unanswered.
"""

import argparse
import asyncio
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench.leads import CONTENT_TYPE, USER_AGENT, webhook_body

AMOCRM_LIMIT_S = 2.0
# gunicorn closes a keep-alive connection idle for `keepalive` (5 s in edge/gunicorn_conf.py).
IDLE_REUSE_S = 4.0


class HttpError(Exception):
    """The server's answer is not HTTP/1.1 this client understands."""


@dataclass
class Answer:
    status: int  # 0: no answer
    latency_s: float  # scheduled time -> end of the answer (inf without one)
    sent: bool  # the request reached a socket
    error: str  # why there is no answer
    log_ids: list[int]
    answered_at: float = 0.0  # event-loop time the answer ended


class NoAnswer(ConnectionError):
    """The connection failed before a byte of the answer came back."""


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reused = False  # taken from the idle pool rather than opened for this request
        self.idle_since = 0.0

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send one request; returns (status, body, the connection can be reused)."""
        try:
            self.writer.write(request)
            await self.writer.drain()
            status_line = await self.reader.readline()
        except OSError as exc:
            raise NoAnswer(str(exc)) from exc
        if not status_line:
            raise NoAnswer("connection closed before the answer")
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise HttpError(f"bad status line {status_line!r}")
        status = int(parts[1])
        length, reusable = 0, parts[0] == b"HTTP/1.1"
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                reusable = value != b"close"
            elif name == b"transfer-encoding" and value != b"identity":
                raise HttpError("chunked answers are not supported")
        body = await self.reader.readexactly(length)
        return status, body, reusable

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Keep-alive connections to one host, at most `size` in use at once."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port = host, port
        self.slots = asyncio.Semaphore(size)
        self.idle: list[Connection] = []
        self.opened = 0

    async def connection(self) -> Connection:
        """An idle connection the server has not timed out yet, or a new one."""
        now = asyncio.get_running_loop().time()
        while self.idle:
            conn = self.idle.pop()
            if now - conn.idle_since < IDLE_REUSE_S:
                conn.reused = True
                return conn
            conn.close()
        return await self.fresh()

    async def fresh(self) -> Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.opened += 1
        return Connection(reader, writer)

    def put_back(self, conn: Connection) -> None:
        conn.idle_since = asyncio.get_running_loop().time()
        self.idle.append(conn)


class OpenLoop:
    def __init__(self, args: argparse.Namespace) -> None:
        url = urlsplit(args.url)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 80
        self.path = url.path or "/"
        self.args = args
        self.pool = Pool(self.host, self.port, args.max_connections)

    def request(self, index: int) -> bytes:
        per_body = self.args.leads_per_body
        first = self.args.first_lead + index * per_body
        body = webhook_body(list(range(first, first + per_body)))
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: {CONTENT_TYPE}\r\nUser-Agent: {USER_AGENT}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    async def send(self, request: bytes, scheduled: float) -> Answer:
        loop = asyncio.get_running_loop()
        conn: Connection | None = None
        sent = False
        try:
            async with asyncio.timeout_at(scheduled + self.args.timeout_s):
                async with self.pool.slots:
                    conn = await self.pool.connection()
                    sent = True
                    try:
                        status, body, reusable = await conn.exchange(request)
                    except NoAnswer:
                        if not conn.reused:
                            raise
                        # The server closed it while idle, before reading this request.
                        conn.close()
                        conn = await self.pool.fresh()
                        status, body, reusable = await conn.exchange(request)
                    if reusable:
                        self.pool.put_back(conn)
                    else:
                        conn.close()
                    conn = None
        except TimeoutError:
            return Answer(0, math.inf, sent, "timeout", [])
        except (OSError, asyncio.IncompleteReadError, HttpError, ValueError) as exc:
            # NoAnswer is an OSError too.
            return Answer(0, math.inf, sent, type(exc).__name__, [])
        finally:
            if conn is not None:
                conn.close()
        answered_at = loop.time()
        log_ids: list[int] = []
        if status == 200:
            try:
                log_ids = [int(i) for i in json.loads(body).get("log_ids", [])]
            except (ValueError, AttributeError):
                pass
        return Answer(status, answered_at - scheduled, True, "", log_ids, answered_at)

    async def run(self) -> dict[str, object]:
        loop = asyncio.get_running_loop()
        rate, total = self.args.rate, max(1, round(self.args.rate * self.args.duration_s))
        # Built before the clock starts: encoding a body (~70 us) is CPU the machine
        # under test would otherwise lose while it is measured.
        requests = [self.request(index) for index in range(total)]
        start = loop.time() + 0.1
        wall_start = time.time() + (start - loop.time())
        max_lag = 0.0
        tasks: list[asyncio.Task[Answer]] = []
        for index in range(total):
            scheduled = start + index / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                max_lag = max(max_lag, -delay)
            tasks.append(asyncio.create_task(self.send(requests[index], scheduled)))
        sending_s = loop.time() - start
        answers = await asyncio.gather(*tasks)
        answering_s = max((a.answered_at for a in answers if a.status), default=start) - start
        for conn in self.pool.idle:
            conn.close()
        return summarise(
            answers, self.args, wall_start, sending_s, answering_s, max_lag, self.pool.opened
        )


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(math.ceil(fraction * len(sorted_values)), 1)
    return sorted_values[rank - 1]


def _ms(seconds: float) -> float | None:
    return None if math.isinf(seconds) else round(seconds * 1000, 2)


def summarise(
    answers: list[Answer],
    args: argparse.Namespace,
    started_at: float,
    sending_s: float,
    answering_s: float,
    max_lag_s: float,
    connections_opened: int,
) -> dict[str, object]:
    """Counts and latency percentiles; an unanswered request counts as infinitely
    slow (a percentile that falls on one is reported as null)."""
    latencies = sorted(a.latency_s for a in answers)
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}
    for a in answers:
        if a.status and a.status != 200:
            statuses[str(a.status)] = statuses.get(str(a.status), 0) + 1
        if a.error:
            errors[a.error] = errors.get(a.error, 0) + 1
    answered = [a.latency_s for a in answers if a.status]
    return {
        "rate": args.rate,
        "scheduled": len(answers),
        "started_at": started_at,
        "sending_s": round(sending_s, 3),
        "answering_s": round(answering_s, 3),
        "answered": len(answered),
        "answered_200": sum(a.status == 200 for a in answers),
        "never_sent": sum(not a.sent for a in answers),
        "within_2s": sum(a.status == 200 and a.latency_s <= AMOCRM_LIMIT_S for a in answers),
        "statuses": statuses,
        "errors": errors,
        "latency_ms": {
            "mean": _ms(sum(answered) / len(answered)) if answered else None,
            "p50": _ms(percentile(latencies, 0.50)),
            "p95": _ms(percentile(latencies, 0.95)),
            "p99": _ms(percentile(latencies, 0.99)),
            "max": _ms(max(answered)) if answered else None,
        },
        "max_schedule_lag_ms": round(max_lag_s * 1000, 2),
        "max_connections": args.max_connections,
        "connections_opened": connections_opened,
        "log_ids": [i for a in answers for i in a.log_ids],
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.openloop", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration-s", type=float, required=True)
    parser.add_argument("--first-lead", type=int, required=True)
    parser.add_argument("--leads-per-body", type=int, default=1)
    parser.add_argument("--max-connections", type=int, default=256)
    parser.add_argument("--timeout-s", type=float, default=30.0)
    parser.add_argument("--out", type=Path, required=True)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    result = asyncio.run(OpenLoop(args).run())
    args.out.write_text(json.dumps(result))
    print(
        f"openloop: {result['scheduled']} scheduled at {args.rate}/s, "
        f"{result['answered_200']} answered 200, latency ms {result['latency_ms']}, "
        f"schedule lag max {result['max_schedule_lag_ms']} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
