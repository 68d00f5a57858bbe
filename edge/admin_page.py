"""The admin web UI's page (/admin/); its scripts and styles are served from STATIC_DIR."""

import html
from pathlib import Path

import falcon

from edge.access import public_resource

STATIC_DIR = Path(__file__).with_name("static")
UI_PREFIX = "/admin"


@public_resource
class AdminPageResource:
    """GET /admin/: the UI's page (its scripts and styles are under /admin/static/)."""

    def __init__(self, enabled: bool, time_zone: str = "") -> None:
        self.enabled = enabled
        # The server's default time zone (ADMIN_TIME_ZONE) goes to the scripts in a meta tag.
        self.page = (
            (STATIC_DIR / "index.html")
            .read_text(encoding="utf-8")
            .replace(
                '<meta name="amoroute-time-zone" content="">',
                f'<meta name="amoroute-time-zone" content="{html.escape(time_zone)}">',
            )
            .encode("utf-8")
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.enabled:
            resp.status = falcon.HTTP_503
            resp.content_type = falcon.MEDIA_TEXT
            resp.text = (
                "The admin UI is disabled: set ADMIN_TOKEN or ADMIN_TOKENS on the edge to "
                "enable it.\n"
            )
            return
        resp.content_type = falcon.MEDIA_HTML
        resp.cache_control = ["no-cache"]
        resp.data = self.page

    def on_get_bare(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPPermanentRedirect(f"{UI_PREFIX}/")
