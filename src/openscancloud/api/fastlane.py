"""A fast lane in front of the router for the two answers clients poll: `GET /getProjectInfo` and
`GET /api/v1/projects/{id}`.

Profiling showed that, once the database work was one statement, most of a poll's CPU went to the framework
around it: matching the path against every route, the middleware chain, dependency resolution and response
validation. These two GETs need none of it (their parameters are two strings, their answer is prepared bytes),
so this ASGI middleware answers them directly with the same `ProjectPoller` and the same error responses, and
hands every other request — including POSTs to `getProjectInfo` and the OpenAPI description, which still lists
both routes — to the application unchanged.
"""

from __future__ import annotations

import re
from typing import Any, Awaitable, Callable

from starlette.requests import Request

from openscancloud.api.auth import bearer
from openscancloud.api.errors import domain_error_response, unexpected_error_response
from openscancloud.api.legacy import check_basic_auth
from openscancloud.api.poll import Answer
from openscancloud.domain.errors import DomainError

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]
_PROJECT = re.compile(r"/api/v1/projects/([^/]+)")


class PollFastLane:
    def __init__(self, app: ASGIApp, ctx: Any) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            return await self.app(scope, receive, send)
        path = scope["path"]
        match = None if path == "/getProjectInfo" else _PROJECT.fullmatch(path)
        if match is None and path != "/getProjectInfo":
            return await self.app(scope, receive, send)
        request = Request(scope, receive)
        try:
            answer = await (self._legacy(request) if match is None else self._rest(request, match.group(1)))
        except DomainError as exc:
            return await domain_error_response(request, exc)(scope, receive, send)
        except Exception:
            return await unexpected_error_response(request)(scope, receive, send)
        await _send_answer(send, answer)

    async def _legacy(self, request: Request) -> Any:
        check_basic_auth(request, self.ctx)
        params = request.query_params
        return await self.ctx.poller.answer(request, params.get("token"), name=params.get("project"),
                                            seen=request.headers.get("if-none-match"))

    async def _rest(self, request: Request, project_id: str) -> Any:
        return await self.ctx.poller.answer(request, bearer(request), project_id=project_id, rest=True,
                                            seen=request.headers.get("if-none-match"),
                                            project_key=request.headers.get("x-project-key"))


async def _send_answer(send: Any, answer: Answer) -> None:
    """The ASGI messages of `poll.respond(answer)` (same status, headers and body), without a Response object."""
    headers = [(b"etag", answer.etag.encode()), (b"cache-control", b"no-cache")]
    if answer.body is None:
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    headers += [(b"content-length", str(len(answer.body)).encode()), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})
