"""Bearer-token authentication for REST v1 and the worker API."""

from __future__ import annotations

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from openscancloud.api.context import get_ctx
from openscancloud.domain.errors import Unauthorized
from openscancloud.domain.service import TokenView


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        raise Unauthorized("Send your token as 'Authorization: Bearer <token>'.")
    return header[7:].strip()


async def user_token(request: Request) -> TokenView:
    return await run_in_threadpool(get_ctx(request).service.authenticate, bearer(request),
                                   ("public", "private", "admin"))


async def worker_token(request: Request) -> TokenView:
    return await run_in_threadpool(get_ctx(request).service.authenticate, bearer(request), ("worker", "admin"))


async def admin_token(request: Request) -> TokenView:
    return await run_in_threadpool(get_ctx(request).service.authenticate, bearer(request), ("admin",))
