"""/healthz (the process answers) and /readyz (database and router reachable; details such as
the AmoCRM API access, which do not gate readiness)."""

import time

import falcon
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edge.access import public_resource
from edge.amocrm_connect import AmoCrmAccess
from edge.log_store import WebhookLogStore
from edge.reconcile import BLOCKED_CHECKPOINT


@public_resource
class LivenessResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


@public_resource
class ReadinessResource:
    def __init__(
        self, logs: WebhookLogStore, router: grpc.Channel, amocrm: AmoCrmAccess | None = None
    ) -> None:
        self.logs = logs
        self.amocrm = amocrm
        self.health = health_pb2_grpc.HealthStub(router)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        checks: dict[str, str] = {}
        try:
            self.logs.ping()
            checks["database"] = "ok"
        except Exception as exc:  # any failure means "not ready", with the reason
            checks["database"] = f"unreachable: {type(exc).__name__}"
        try:
            reply = self.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=0.5)
            checks["router"] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        except grpc.RpcError as exc:
            checks["router"] = f"unreachable: {exc.code().name if exc.code() else 'UNKNOWN'}"
        ready = checks["database"] == "ok" and checks["router"] == "SERVING"
        resp.status = falcon.HTTP_200 if ready else falcon.HTTP_503
        resp.media = {"ready": ready, "checks": checks}
        if self.amocrm is not None:
            # Webhooks still flow without the API: reported, not a reason to leave rotation.
            resp.media["details"] = {"amocrm": self._blocked() or self.amocrm.readiness_detail()}

    def _blocked(self) -> str | None:
        """What /readyz says while AmoCRM blocks the integration (any process met it)."""
        try:
            until = self.logs.checkpoint(BLOCKED_CHECKPOINT) or 0
        except Exception:  # the database check reports the cause
            return None
        if until <= time.time():
            return None
        return (
            "blocked: AmoCRM answered 403 after 429s (too many requests); no AmoCRM API call "
            f"until {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(until))} "
            "(AMOCRM_BLOCK_PAUSE_S), then lead fetch and reconciliation resume"
        )
