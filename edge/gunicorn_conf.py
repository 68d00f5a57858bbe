"""gunicorn settings for the edge: `gunicorn -c edge/gunicorn_conf.py 'edge.app:create_app()'`."""

import os
import shutil
import tempfile

from gunicorn.glogging import Logger

from edge.settings import Settings

# Metrics of every worker process, summed at each scrape (edge/observability.py).
# Set before any worker imports prometheus_client; cleared at every start.
_OWN_METRICS_DIR = ""
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _OWN_METRICS_DIR = tempfile.mkdtemp(prefix="amoroute-edge-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _OWN_METRICS_DIR

# The edge's settings, read (and validated) once in the master before any worker starts.
_settings = Settings()
_host = f"[{_settings.bind_host}]" if ":" in _settings.bind_host else _settings.bind_host
bind = f"{_host}:{_settings.edge_port}"
workers = int(os.environ.get("EDGE_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("EDGE_THREADS", "16"))
# Connections one worker holds at most (busy or kept alive). Without a cap, the first
# worker to wake takes every keep-alive connection a client or a proxy opens at
# once, and the other workers idle.
# PERF: spreads a burst of keep-alive connections over the workers; measured by make bench
worker_connections = int(os.environ.get("EDGE_WORKER_CONNECTIONS", str(threads + 4)))
# AmoCRM waits 2 s; a request that takes longer than this is already lost to it.
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = None
# No control socket: its default path ($HOME/.gunicorn) is shared by every gunicorn
# of the user and is not writable on a read-only root filesystem.
control_socket_disable = True
# No preload: gRPC channels must be created after fork, in each worker.
preload_app = False


def _secrets() -> list[str]:
    from edge.settings import Settings

    return Settings().secret_values()


class RedactingLogger(Logger):
    """gunicorn's own logs as the same JSON lines every process writes, with every secret
    replaced by ***: its error log writes the request line of a request that failed, and
    the webhook's path carries WEBHOOK_SECRET. setup() runs in the arbiter at start and
    on a configuration reload; the workers it forks inherit its handlers."""

    def setup(self, cfg):  # type: ignore[no-untyped-def]
        from amoroute.logging_setup import JsonFormatter, redact_handlers

        super().setup(cfg)
        secrets = _secrets()
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter("edge"))
            redact_handlers(log, secrets)


logger_class = RedactingLogger


def post_fork(server, worker):  # type: ignore[no-untyped-def]
    from amoroute.logging_setup import setup_logging
    from amoroute.tracing import setup_tracing

    setup_logging("edge", os.environ.get("LOG_LEVEL", "INFO"), _secrets())
    # In each worker, before it loads the app: the exporter's thread and the
    # instrumented Falcon app, channels and engine are this worker's own.
    setup_tracing("edge", Settings(), http_server=True)


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    from amoroute.tracing import shutdown

    shutdown()  # the spans still buffered


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    # The app is loaded: keep its objects out of every later full collection.
    from amoroute.heap import freeze_startup_objects

    freeze_startup_objects()


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):  # type: ignore[no-untyped-def]
    if _OWN_METRICS_DIR:
        shutil.rmtree(_OWN_METRICS_DIR, ignore_errors=True)
