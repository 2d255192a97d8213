"""The web console's files at /ui: shipped inside the package (spectron/http/ui/), no CDN, no build.

Every view's URL (/ui/state?scope=..., /ui/audit, ...) answers index.html; app.js routes from there.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from starlette.exceptions import HTTPException

UI_DIR = files("spectron.http") / "ui"
UI_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# the console loads nothing from elsewhere: no CDN, no inline script, no framing
UI_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
        " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

ui_router = APIRouter(include_in_schema=False)


@ui_router.get("/ui")
@ui_router.get("/ui/{path:path}")
async def console(path: str = "") -> Response:
    """The web console: its assets by name, and index.html for every view's URL."""
    name = path.rsplit("/", 1)[-1]
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    asset = UI_DIR / name
    if suffix in UI_MEDIA_TYPES:
        if "/" in path or not asset.is_file():
            raise HTTPException(404)  # the app answers it as a not-found problem
        return FileResponse(str(asset), media_type=UI_MEDIA_TYPES[suffix], headers=UI_HEADERS)
    index = UI_DIR / "index.html"
    return FileResponse(str(index), media_type="text/html", headers=UI_HEADERS)
