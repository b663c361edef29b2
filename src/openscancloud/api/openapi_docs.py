"""The OpenAPI description and the `/docs` (Swagger UI) and `/redoc` pages, working without internet.

* The legacy endpoints read their query parameters by hand (the firmware sends GET or POST, form or JSON), so
  FastAPI cannot see them; they are declared here so that "Try it out" shows and sends them, together with
  the HTTP Basic gate.
* REST declares its Bearer scheme, so the Authorize button sets the token for every REST call.
* A legacy route answers GET and POST; each method gets its own operation id (no duplicates).
* The Swagger UI and ReDoc files come from the web app's build (copied from npm packages), never a CDN.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse

TOKEN = ("token", True, "Your token.")
PROJECT = ("project", True, "Your project name, [A-Za-z0-9._-]{1,128} (the firmware adds .zip).")
LEGACY_PARAMS: dict[str, list[tuple[str, bool, str]]] = {
    "/getTokenInfo": [TOKEN],
    "/createProject": [
        TOKEN, PROJECT,
        ("photos", True, "Number of photos in the zip."),
        ("parts", True, "Number of upload parts (each at most the part limit)."),
        ("filesize", True, "Size of the whole zip in bytes."),
        ("quality", False, "preview | standard | high (default: the server's)."),
        ("masks", False, "auto (detect a static background) | off | user (NAME_mask.png beside each photo)."),
        ("texture_size", False, "Texture side in pixels, 256-16384 (default: the quality's)."),
        ("target_faces", False, "Triangle budget, 1000-5000000 (default: the quality's)."),
        ("formats", False, "Comma-separated subset of glb,obj,ply,stl,usdz (default: all)."),
        ("webhook", False, "http(s) URL that gets a JSON POST when the project is done or failed."),
    ],
    "/startProject": [TOKEN, PROJECT],
    "/getProjectInfo": [TOKEN, PROJECT],
    "/resetProject": [TOKEN, PROJECT],
    "/getQueueEstimate": [TOKEN],
    "/requestToken": [
        ("mail", True, "Your e-mail address: the token is sent there."),
        ("forename", True, "Your forename."),
        ("lastname", True, "Your last name."),
    ],
}
BEARER_TAGS = {"v1", "admin", "worker"}
HTTP_METHODS = {"get", "post", "put", "head", "delete", "patch", "options"}
ASSETS = "/app/vendor"


def custom_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    with warnings.catch_warnings():  # FastAPI warns about the GET/POST twins whose ids are renamed below
        warnings.filterwarnings("ignore", message="Duplicate Operation ID")
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "REST v1: your token (admin routes: an admin token; worker routes: a worker token)."},
        "basic": {"type": "http", "scheme": "basic",
                  "description": "The legacy protocol's HTTP Basic gate (default openscan / free)."},
    }
    seen: set[str] = set()
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            tags = set(operation.get("tags") or [])
            if path in LEGACY_PARAMS:
                operation["security"] = [{"basic": []}]
                operation["parameters"] = [
                    {"name": name, "in": "query", "required": required, "description": text,
                     "schema": {"type": "string"}}
                    for name, required, text in LEGACY_PARAMS[path]
                ]
            elif tags & BEARER_TAGS and not path.startswith(("/api/v1/status", "/api/v1/shared")):
                operation["security"] = [{"bearer": []}]
            op_id = operation.get("operationId") or f"{method}_{path}"
            if len([m for m in item if m in HTTP_METHODS]) > 1:  # one route serving several methods
                op_id = re.sub(r"_(get|post|put|head|delete|patch)$", "", op_id) + f"_{method}"
            seen.add(op_id)
            operation["operationId"] = op_id
    app.openapi_schema = schema
    return schema


def install(app: FastAPI, web_dir: Path) -> None:
    """`/docs` and `/redoc` from local files; a clear sentence when the web app was not built."""
    app.openapi = lambda: custom_openapi(app)  # type: ignore[method-assign]
    vendor = web_dir / "vendor"

    def missing() -> HTMLResponse:
        return HTMLResponse(
            "<!doctype html><title>API documentation</title><p>The API documentation pages are not built on this "
            "server (the web app build is missing: run <code>make install</code> with Node.js available). The "
            "description itself is at <a href='/openapi.json'>/openapi.json</a>.</p>", status_code=503)

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        if not (vendor / "swagger-ui-bundle.js").is_file():
            return missing()
        return HTMLResponse(_page(f"{app.title} — API", [f"{ASSETS}/swagger-ui.css"],
                                  [f"{ASSETS}/swagger-ui-bundle.js", "/app/docs-init.js"], '<div id="swagger-ui"></div>'))

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        if not (vendor / "redoc.standalone.js").is_file():
            return missing()
        return HTMLResponse(_page(f"{app.title} — API reference", [],
                                  [f"{ASSETS}/redoc.standalone.js", "/app/redoc-init.js"], '<div id="redoc"></div>'))


def _page(title: str, styles: list[str], scripts: list[str], body: str) -> str:
    """A page whose scripts are files of this server only (no inline script: the CSP forbids them)."""
    links = "".join(f'<link rel="stylesheet" href="{s}">' for s in styles)
    tags = "".join(f'<script src="{s}"></script>' for s in scripts)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="icon" href="/app/favicon.svg">{links}</head><body>{body}{tags}</body></html>')
