"""POST /api/admin/reconcile: one reconciliation pass (edge/reconcile.py) on demand: the
events pass (or the leads pass, RECONCILE_SOURCE=leads) and what it found and fixed."""

import falcon

from edge.reconcile import Reconciler


class ReconcileResource:
    """POST /api/admin/reconcile: one reconciliation pass now, and its report."""

    def __init__(self, reconciler: Reconciler | None) -> None:
        self.reconciler = reconciler

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.reconciler is None:
            raise falcon.HTTPConflict(
                title="AmoCRM API not configured",
                description=(
                    "set AMOCRM_DOMAIN and AMOCRM_ACCESS_TOKEN, or connect AmoCRM by OAuth "
                    "(AMOCRM_CLIENT_ID, ...), to reconcile"
                ),
            )
        report = self.reconciler.run_once()
        resp.media = report.to_json()
