"""Operator views over HTTP (admin token): the processing nodes with their hardware, whether they are online,
the job each one is running and when it was last heard from (also `openscan-cloud workers`); token requests
and their approval (also `openscan-cloud tokens requests` / `tokens approve ID`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from openscancloud.api.auth import admin_token
from openscancloud.api.context import get_ctx
from openscancloud.api.token_requests import approve_and_deliver, request_view
from openscancloud.domain.service import TokenView

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


@router.get("/workers")
async def workers(request: Request, hours: float = Query(24.0, ge=0, le=24 * 365,
                                                         description="also list nodes offline for up to this long"),
                  token: TokenView = Depends(admin_token)) -> dict[str, Any]:
    rows = await run_in_threadpool(get_ctx(request).service.worker_listing, hours)
    return {"workers": rows, "online": sum(1 for r in rows if r["online"])}


@router.get("/token-requests")
async def token_requests(request: Request, token: TokenView = Depends(admin_token)) -> dict[str, Any]:
    rows = await run_in_threadpool(get_ctx(request).service.token_requests)
    return {"requests": [request_view(r) for r in rows]}


@router.post("/token-requests/{request_id}/approve")
async def approve_token_request(request_id: int, request: Request,
                                token: TokenView = Depends(admin_token)) -> dict[str, Any]:
    """Create the requester's private token and mail it (SMTP configured); otherwise the answer carries the
    token for the operator to pass on."""
    return await run_in_threadpool(approve_and_deliver, get_ctx(request), request_id)
