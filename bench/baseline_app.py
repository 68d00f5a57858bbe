"""The bare Falcon endpoint the edge is measured against: it reads the body and
answers 200 JSON, nothing else. Run under the edge's own gunicorn settings:

    gunicorn -c edge/gunicorn_conf.py 'bench.baseline_app:create_app()'
"""

import falcon


class BareWebhookResource:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = req.bounded_stream.read()
        resp.media = {"success": True, "received_bytes": len(body)}


class LivenessResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


def create_app() -> falcon.App:
    """The same webhook path as the edge, with none of its work behind it."""
    app = falcon.App()
    webhook = BareWebhookResource()
    app.add_route("/webhook/amocrm", webhook)
    app.add_route("/webhook/amocrm/", webhook)
    app.add_route("/healthz", LivenessResource())
    return app
