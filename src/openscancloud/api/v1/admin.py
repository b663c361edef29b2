"""Operator views over HTTP (admin token): the processing nodes with their hardware, whether they are online,
the job each one is running and when it was last heard from. The same listing is `openscan-cloud workers`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from openscancloud.api.auth import admin_token
from openscancloud.api.context import get_ctx
from openscancloud.domain.service import TokenView

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


@router.get("/workers")
async def workers(request: Request, hours: float = Query(24.0, ge=0, le=24 * 365,
                                                         description="also list nodes offline for up to this long"),
                  token: TokenView = Depends(admin_token)) -> dict[str, Any]:
    rows = await run_in_threadpool(get_ctx(request).service.worker_listing, hours)
    return {"workers": rows, "online": sum(1 for r in rows if r["online"])}
