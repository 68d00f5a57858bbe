"""GET /api/admin/openapi.json: the admin API described as an OpenAPI 3.1 document.

Public: the document describes the API and holds no data, so client generators and fuzzers
can load it without a token; every operation it describes needs one."""

import json
from pathlib import Path

import falcon
import yaml

from edge.access import public_resource

DOCUMENT = Path(__file__).with_name("admin_openapi.yaml")


def load_document() -> dict:
    with DOCUMENT.open(encoding="utf-8") as file:
        return yaml.safe_load(file)


@public_resource
class OpenApiResource:
    def __init__(self, version: str) -> None:
        document = load_document()
        document["info"]["version"] = version
        self.body = json.dumps(document).encode()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self.body
