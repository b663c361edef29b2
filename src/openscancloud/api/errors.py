"""Error answers. REST v1 and the worker API speak `application/problem+json` (RFC 9457); the legacy
protocol and the signed links answer a small JSON object `{"status": "error", "error": code, "message"}`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from openscancloud.domain.errors import DomainError

PROBLEM = "application/problem+json"
log = logging.getLogger("openscancloud.api")


def _is_v1(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def error_response(request: Request, status: int, code: str, message: str, extra: dict | None = None,
                   headers: dict | None = None) -> JSONResponse:
    extra = dict(extra or {})
    if _is_v1(request):
        body = {"type": f"https://openscan.cloud/problems/{code}", "title": code.replace("_", " "),
                "status": status, "detail": message, "code": code, **extra}
        return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)
    body = {"status": "error", "error": code, "message": message, **extra}
    return JSONResponse(body, status_code=status, headers=headers)


def domain_error_response(request: Request, exc: DomainError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="OpenScan Cloud"'} if exc.code == "wrong_basic_auth" else None
    return error_response(request, exc.status, exc.code, exc.message, exc.extra, headers=headers)


def unexpected_error_response(request: Request) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(request, 500, "internal_error", "Something went wrong on the server; please try again later.")


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError):  # type: ignore[no-untyped-def]
        return domain_error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):  # type: ignore[no-untyped-def]
        parts = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body", "query"))
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        return error_response(request, 422, "invalid_input", "Invalid request: " + "; ".join(parts))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):  # type: ignore[no-untyped-def]
        return unexpected_error_response(request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):  # type: ignore[no-untyped-def]
        code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        return error_response(request, exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))
