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
from openscancloud.api.poll import respond
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
            response = await (self._legacy(request) if match is None else self._rest(request, match.group(1)))
        except DomainError as exc:
            response = domain_error_response(request, exc)
        except Exception:
            response = unexpected_error_response(request)
        await response(scope, receive, send)

    async def _legacy(self, request: Request) -> Any:
        check_basic_auth(request, self.ctx)
        params = request.query_params
        answer = await self.ctx.poller.answer(request, params.get("token"), name=params.get("project"),
                                              seen=request.headers.get("if-none-match"))
        return respond(answer)

    async def _rest(self, request: Request, project_id: str) -> Any:
        answer = await self.ctx.poller.answer(request, bearer(request), project_id=project_id, rest=True,
                                              seen=request.headers.get("if-none-match"))
        return respond(answer)
