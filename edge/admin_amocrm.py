"""The AmoCRM account seen from the admin: re-enabling a webhook AmoCRM disabled
(POST /api/admin/amocrm/webhook/reenable), and the account's pipelines with their statuses
(GET /api/admin/amocrm/pipelines) and lead custom fields (GET /api/admin/amocrm/custom-fields),
so an operator picks the won status and the UTM fields by name instead of copying ids."""

import logging
from typing import Any

import falcon

from edge.amocrm_api import AmoCrmAuthError, AmoCrmClient, AmoCrmError
from edge.hook_health import HookEnabled, HookHealth, NoDestination
from edge.reconcile import Reconciler

log = logging.getLogger(__name__)

NOT_CONFIGURED = (
    "set AMOCRM_DOMAIN and AMOCRM_ACCESS_TOKEN, or connect AmoCRM by OAuth "
    "(AMOCRM_CLIENT_ID, ...), to use the AmoCRM API"
)


def _api(reconciler: Reconciler | None) -> AmoCrmClient:
    if reconciler is None:
        raise falcon.HTTPConflict(title="AmoCRM API not configured", description=NOT_CONFIGURED)
    return reconciler.api


def _bad_gateway(exc: AmoCrmError) -> falcon.HTTPError:
    title = "AmoCRM refused the access" if isinstance(exc, AmoCrmAuthError) else "AmoCRM failed"
    return falcon.HTTPBadGateway(title=title, description=str(exc))


class WebhookReenableResource:
    """POST /api/admin/amocrm/webhook/reenable: register the webhook again (`POST
    /api/v4/webhooks`) and reconcile from the moment AmoCRM disabled it."""

    def __init__(self, health: HookHealth) -> None:
        self.health = health

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        _api(self.health.reconciler)
        try:
            resp.media = self.health.reenable()
        except HookEnabled as exc:
            raise falcon.HTTPConflict(title="Webhook enabled", description=str(exc)) from None
        except NoDestination as exc:
            raise falcon.HTTPConflict(title="No webhook URL", description=str(exc)) from None
        except AmoCrmError as exc:
            raise _bad_gateway(exc) from None


class PipelinesResource:
    """GET /api/admin/amocrm/pipelines: every lead pipeline with its statuses."""

    def __init__(self, reconciler: Reconciler | None) -> None:
        self.reconciler = reconciler

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        api = _api(self.reconciler)
        try:
            pipelines = api.list_pipelines()
        except AmoCrmError as exc:
            raise _bad_gateway(exc) from None
        resp.media = {"pipelines": [_pipeline(p) for p in pipelines]}


class CustomFieldsResource:
    """GET /api/admin/amocrm/custom-fields: every custom field of leads."""

    def __init__(self, reconciler: Reconciler | None) -> None:
        self.reconciler = reconciler

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        api = _api(self.reconciler)
        try:
            fields = api.list_lead_custom_fields()
        except AmoCrmError as exc:
            raise _bad_gateway(exc) from None
        resp.media = {"custom_fields": [_field(f) for f in fields]}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _pipeline(raw: dict[str, Any]) -> dict[str, Any]:
    statuses = (raw.get("_embedded") or {}).get("statuses") or []
    return {
        "id": _int(raw.get("id")),
        "name": _str(raw.get("name")),
        "is_main": bool(raw.get("is_main")),
        "is_archive": bool(raw.get("is_archive")),
        "statuses": [
            {"id": _int(s.get("id")), "name": _str(s.get("name")), "type": _int(s.get("type"))}
            for s in sorted(
                (s for s in statuses if isinstance(s, dict)), key=lambda s: _int(s.get("sort"))
            )
        ],
    }


def _field(raw: dict[str, Any]) -> dict[str, Any]:
    enums = raw.get("enums") or []
    return {
        "id": _int(raw.get("id")),
        "name": _str(raw.get("name")),
        "code": raw.get("code") if isinstance(raw.get("code"), str) else None,
        "type": _str(raw.get("type")),
        "enums": [
            {"id": _int(e.get("id")), "value": _str(e.get("value"))}
            for e in enums
            if isinstance(e, dict)
        ],
    }
