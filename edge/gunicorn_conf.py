"""gunicorn settings for the edge: `gunicorn -c edge/gunicorn_conf.py 'edge.app:create_app()'`."""

import os

bind = f"0.0.0.0:{os.environ.get('EDGE_PORT', '8080')}"
workers = int(os.environ.get("EDGE_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("EDGE_THREADS", "16"))
# AmoCRM waits 2 s; a request that takes longer than this is already lost to it.
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = None
# No preload: gRPC channels must be created after fork, in each worker.
preload_app = False


def post_fork(server, worker):  # type: ignore[no-untyped-def]
    from amoroute.logs import setup_logging

    setup_logging("edge", os.environ.get("LOG_LEVEL", "INFO"))
