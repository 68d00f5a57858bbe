"""The command line every gRPC service shares: `python -m <svc> [serve|migrate]`."""

import argparse
import logging
from collections.abc import Callable
from typing import Any

from amoroute.grpc_server import RunningServer, serve_until_signalled
from amoroute.heap import freeze_startup_objects
from amoroute.logging_setup import setup_logging
from amoroute.metrics import serve_metrics
from amoroute.tracing import setup_tracing, shutdown


def run_service(
    name: str,
    settings: Any,
    upgrade_database: Callable[[Any], None] | None,
    build: Callable[[Any], RunningServer],
    describe: Callable[[Any], list[str]] | None = None,
) -> None:
    """Parse argv and either upgrade the service's database or serve until SIGTERM."""
    parser = argparse.ArgumentParser(prog=f"python -m {name}")
    commands = ["serve", "migrate"] if upgrade_database else ["serve"]
    parser.add_argument("command", nargs="?", default="serve", choices=commands)
    args = parser.parse_args()
    setup_logging(name, settings.log_level, settings.secret_values())
    log = logging.getLogger(name)
    if args.command == "migrate":
        assert upgrade_database is not None
        upgrade_database(settings)
        log.info("database upgraded")
        return
    for line in describe(settings) if describe else []:
        log.warning(line)
    # Before build: its server, channels and engines are the ones traced.
    setup_tracing(name.removesuffix("_svc"), settings)
    serve_metrics(settings.metrics_port, settings.bind_host)
    running = build(settings)
    freeze_startup_objects()
    serve_until_signalled(running, name)
    shutdown()
