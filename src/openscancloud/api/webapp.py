"""The browser app, served by the API process itself: `/` is the app's page, `/app/...` its built files
(JavaScript, CSS, the three.js viewer, the Swagger UI/ReDoc files for `/docs`). Nothing is fetched from
another origin, and a Content-Security-Policy of `'self'` says so to the browser.

The app is built from `web/` in the repository (`make install` runs `npm run build` when Node.js is there)
into `openscancloud/web_dist`; `OPENSCAN_WEB_DIR` points elsewhere. Without a build, `/` explains how to get
one instead of failing silently.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from openscancloud import __version__

# blob: for the viewer's screenshot download and three.js's texture decoding of the GLB's embedded PNG
APP_CSP = ("default-src 'self'; img-src 'self' blob: data:; connect-src 'self' blob: data:; "
           "worker-src 'self' blob:; style-src 'self'; script-src 'self'; object-src 'none'; "
           "base-uri 'self'; frame-ancestors 'self'; form-action 'self'")
# Swagger UI and ReDoc set inline styles; scripts still come only from this server
DOCS_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
            "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'self'")


def web_dir() -> Path:
    return Path(os.environ.get("OPENSCAN_WEB_DIR") or Path(__file__).resolve().parent.parent / "web_dist")


class SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        path = request.url.path
        if path in ("/docs", "/redoc"):
            response.headers.setdefault("Content-Security-Policy", DOCS_CSP)
        elif path == "/" or path.startswith("/app/"):
            response.headers.setdefault("Content-Security-Policy", APP_CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


def install(app: FastAPI, root: Path) -> None:
    app.add_middleware(SecurityHeaders)
    index = root / "index.html"
    if root.is_dir():
        app.mount("/app", StaticFiles(directory=root), name="app")

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> Response:
        if "text/html" not in request.headers.get("accept", "") and "json" in request.headers.get("accept", ""):
            return JSONResponse({"service": "OpenScan Cloud", "version": __version__, "docs": "/docs",
                                 "openapi": "/openapi.json", "status": "/status"})
        if not index.is_file():
            return HTMLResponse(
                "<!doctype html><title>OpenScan Cloud</title><h1>OpenScan Cloud</h1><p>The web app is not built "
                "on this server: run <code>make install</code> with Node.js available (the Makefile installs it "
                "from Debian when missing). The API works meanwhile: see <a href='/docs'>/docs</a>.</p>",
                status_code=503)
        return FileResponse(index, headers={"Cache-Control": "no-cache"})
