"""Serves the web page: `index.html` at `/`, its script and style sheet under `/static/`.

The files are package data, read once through importlib.resources, so the page works from a
wheel or a zip as well as from a source tree. The adapter has no internet connection, so the
page loads nothing from elsewhere; the Content-Security-Policy makes the browser hold the page to
that (and keeps injected markup from running scripts).
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import Response

ASSETS = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate every time: after an update of the adapter the browser must not keep an old script.
    "Cache-Control": "no-cache",
}


def read_asset(name: str) -> bytes:
    return files(__package__).joinpath(name).read_bytes()


def mount_web(app: FastAPI) -> None:
    """Add `GET /` (the page) and `GET /static/{name}` (its assets) to `app`."""
    page = read_asset("index.html")
    assets = {name: (read_asset(name), media_type) for name, media_type in ASSETS.items()}

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=HEADERS)

    # One route per file rather than a path parameter: nothing but these two names can be asked for.
    for name, (body, media_type) in assets.items():
        app.add_api_route(f"/static/{name}", _static(body, media_type), methods=["GET"], include_in_schema=False)


def _static(body: bytes, media_type: str):  # type: ignore[no-untyped-def]
    async def asset() -> Response:
        return Response(body, media_type=media_type, headers=HEADERS)

    return asset
