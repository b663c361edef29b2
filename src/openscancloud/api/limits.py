"""Request limits that protect a public server from oversized or endless requests.

* `RequestLimits` (ASGI middleware): bodies of ordinary API calls are read up to a per-endpoint limit (413
  beyond it, checked on Content-Length first and on the bytes actually received), JSON bodies nested deeper
  than a limit are refused with 400 before any parser recurses, and OPTIONS is answered with the methods a path
  allows. Upload and worker-file links stream and enforce their own byte limits, so they pass through.
* `uvicorn_config`: a header-size limit and a header timeout — a connection that has not finished sending its
  request line and headers in time is closed — on uvicorn's httptools protocol (or h11), plus the trusted
  proxies whose X-Forwarded-For is believed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable, Callable

import h11
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from openscancloud.api.errors import error_response
from openscancloud.settings import Settings

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

STREAMING_PREFIXES = ("/upload/", "/worker-files/", "/download/")
WORKER_PREFIX = "/api/v1/worker/"
WORKER_BODY_BYTES = 1_000_000  # a job's report and log tail
PROBED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def json_depth(data: bytes) -> int:
    """Deepest nesting of arrays/objects in `data`, counted without parsing (strings are skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


class RequestLimits:
    """ASGI middleware: per-endpoint body limit, JSON depth, HEAD as GET, OPTIONS (see the module docstring)."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def _limit(self, path: str) -> int | None:
        if path.startswith(STREAMING_PREFIXES):
            return None
        if path.startswith(WORKER_PREFIX):
            return max(WORKER_BODY_BYTES, self.settings.max_json_body_bytes)
        return self.settings.max_json_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await self._options(scope, receive, send)
            return
        if scope["method"] == "HEAD" and not self._has_route(scope, "HEAD"):
            scope, send = _head_as_get(scope, send)
        limit = self._limit(scope["path"])
        if limit is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, 413, "body_too_large",
                               f"The request body may be at most {limit} bytes here.")
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                await self._refuse(scope, receive, send, 413, "body_too_large",
                                   f"The request body may be at most {limit} bytes here.")
                return
        if b"json" in request.headers.get("content-type", "").encode() and \
                json_depth(bytes(body)) > self.settings.max_json_depth:
            await self._refuse(scope, receive, send, 400, "json_too_deep",
                               f"The JSON body is nested more than {self.settings.max_json_depth} levels deep.")
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int, code: str,
                      message: str) -> None:
        response = error_response(Request(scope), status, code, message, headers={"Connection": "close"})
        await response(scope, receive, send)

    @staticmethod
    def _has_route(scope: Scope, method: str) -> bool:
        router = scope["app"].router if "app" in scope else None
        for route in getattr(router, "routes", []) if router is not None else []:
            match, _ = route.matches({**scope, "method": method})
            if match == Match.FULL:
                return True
        return False

    async def _options(self, scope: Scope, receive: Receive, send: Send) -> None:
        methods = {m for m in PROBED_METHODS if self._has_route(scope, m)}
        if "GET" in methods:
            methods.add("HEAD")
        if not methods:
            response = error_response(Request(scope), 404, "not_found", "Not Found")
        else:
            allow = ", ".join(sorted(methods | {"OPTIONS"}))
            response = Response(status_code=204, headers={"Allow": allow})
        await response(scope, receive, send)


def _head_as_get(scope: Scope, send: Send) -> tuple[Scope, Send]:
    """HEAD is GET without the body (RFC 9110): run the GET handler, send its status and headers only."""

    async def headers_only(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            if not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await send(message)

    return {**scope, "method": "GET"}, headers_only


class _HeaderTimer:
    """Mixin for a uvicorn HTTP protocol: a request head must arrive within `header_timeout` seconds of the
    connection opening (or of the previous response), else the connection is closed. The protocol says when it
    is waiting for a head (`_waiting_for_head`) and arms/disarms the timer as data arrives."""

    header_timeout: float
    _header_timer: asyncio.TimerHandle | None = None

    def _waiting_for_head(self) -> bool:
        raise NotImplementedError

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._header_timeout)  # type: ignore[attr-defined]

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self._waiting_for_head() and not self.transport.is_closing():  # type: ignore[attr-defined]
            self.transport.close()  # type: ignore[attr-defined]

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]


def guarded_h11(header_timeout: float) -> type:
    """uvicorn's h11 protocol with a header timeout: the request line and headers must arrive within
    `header_timeout` seconds of the connection opening (or of the previous response), else it is closed."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(_HeaderTimer, H11Protocol):
        def _waiting_for_head(self) -> bool:
            return self.conn.their_state is h11.IDLE

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._waiting_for_head():
                self._arm()  # still waiting for (the rest of) a request head
            else:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._disarm()  # idle keep-alive connections are closed by uvicorn's own keep-alive timeout

    GuardedH11Protocol.header_timeout = header_timeout
    return GuardedH11Protocol


def guarded_httptools(header_timeout: float, max_header_bytes: int) -> type:
    """uvicorn's httptools protocol (about twice the requests per second of h11) with the same guards: a request
    head must be complete within `max_header_bytes` and `header_timeout` seconds, else 400 / the connection is
    closed. httptools itself has no header limit, so the bytes of an unfinished head are counted here.

    A head starts with the connection and with each new message (`on_message_begin`, called on a message's first
    byte) and ends at `on_headers_complete`. It does not start when a response completes: a client may still be
    sending the body of a request the server has already answered (an early 4xx, a resumable upload cut short),
    and those body bytes are not a head. The read in which a message begins is counted whole, so a pipelined
    head is measured with at most one read of the previous body in front of it."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(_HeaderTimer, HttpToolsProtocol):
        _in_head = True
        _head_bytes = 0

        def _waiting_for_head(self) -> bool:
            return self._in_head

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._in_head and not self.transport.is_closing():
                self._head_bytes += len(data)
                if self._head_bytes > max_header_bytes:
                    self._disarm()
                    self.send_400_response("Request line and headers are too large.")
                    return
                self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head, self._head_bytes = True, 0

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._disarm()
            super().on_headers_complete()

    GuardedHttpToolsProtocol.header_timeout = header_timeout
    return GuardedHttpToolsProtocol


def uvicorn_config(app: Any, settings: Settings, host: str, port: int, **extra: Any) -> Any:
    """The uvicorn configuration of a public server: httptools (h11 when it is not installed) with header size
    and time limits, proxies trusted only when configured."""
    import uvicorn

    try:
        import httptools  # noqa: F401

        protocol = guarded_httptools(settings.header_timeout_seconds, settings.max_header_bytes)
    except ImportError:
        protocol = guarded_h11(settings.header_timeout_seconds)
    trusted = [p.strip() for p in settings.trusted_proxies.split(",") if p.strip()]
    return uvicorn.Config(
        app, host=host, port=port, http=protocol, h11_max_incomplete_event_size=settings.max_header_bytes,
        proxy_headers=bool(trusted), forwarded_allow_ips=trusted or None, server_header=False, **extra,
    )
