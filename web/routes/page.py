"""The dashboard page and its static files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response

from web.auth import split_host
from web.context import error

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def _load_static() -> dict[str, tuple[bytes, str]]:
    types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
    out = {}
    for path in sorted(STATIC_DIR.iterdir()):
        if path.suffix in types:
            out[path.name] = (path.read_bytes(), types[path.suffix])
    return out


def router(page_config: dict[str, Any], *, estop_port: int) -> APIRouter:
    """GET / (rendered once with `page_config`) and GET /static/{name}."""
    static = _load_static()
    version = hashlib.sha256(b"".join(body for body, _ in static.values())).hexdigest()[:10]
    # The page's config is fixed for the app's lifetime, so the page is rendered once, not per request.
    # "</" is escaped so no config value can close the <script> element.
    page = (
        (STATIC_DIR / "index.html")
        .read_text(encoding="utf-8")
        .replace("__CONFIG__", json.dumps(page_config).replace("</", "<\\/"))
        .replace("__VERSION__", version)
        .encode()
    )
    r = APIRouter()

    @r.get("/", include_in_schema=False)
    async def index(request: Request) -> Response:
        connect = "'self'"
        if estop_port:
            host = split_host(request.headers.get("host", ""))[0]
            connect += f" {request.url.scheme}://{host}:{estop_port}"
        return Response(
            page,
            media_type="text/html; charset=utf-8",
            headers={
                "Cache-Control": "no-cache",
                "Content-Security-Policy": f"default-src 'self'; connect-src {connect}; img-src 'self' data:; "
                "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
                "X-Content-Type-Options": "nosniff",
                "X-Frame-Options": "DENY",
                "Referrer-Policy": "no-referrer",
            },
        )

    @r.get("/static/{name}", include_in_schema=False)
    async def static_file(name: str) -> Response:
        if name not in static:
            return error(404, f"no static file {name!r}")
        body, media_type = static[name]
        # Asset URLs carry ?v=<content hash>, so browsers may keep them for a day without asking again.
        return Response(body, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})

    return r
