"""The real edge app with two ways to fail a request on purpose, for tests that look at
what an unhandled error writes: `X-Fail: resource` raises inside Falcon (as a bug in a
resource would), `X-Fail: wsgi` raises out of the WSGI callable (gunicorn's own error
log then reports the request). Both messages quote the request's path.

gunicorn -c edge/gunicorn_conf.py 'tests.support.failing_edge:create_app()'"""

from collections.abc import Callable, Iterable
from typing import Any

import falcon

from edge.app import create_app as create_edge_app


class FailOnRequest:
    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.get_header("X-Fail") == "resource":
            raise RuntimeError(f"failed on purpose at {req.path}")


def create_app() -> Callable[..., Iterable[bytes]]:
    app = create_edge_app()
    app.add_middleware(FailOnRequest())

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("HTTP_X_FAIL") == "wsgi":
            raise RuntimeError(f"failed on purpose at {environ['PATH_INFO']}")
        return app(environ, start_response)

    return wsgi
