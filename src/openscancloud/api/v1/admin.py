"""Operator views over HTTP (admin token), used by the web app's admin page: the processing nodes (hardware,
online, current job, last contact — also `openscan-cloud workers`), tokens (create, revoke, top up), the
credit ledger, the queue, and token requests with their approval (also `openscan-cloud tokens requests` /
`tokens approve ID`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

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


class TokenIn(BaseModel):
    kind: str = Field(default="private", description="private | worker | admin")
    forename: str | None = Field(default=None, max_length=200)
    surname: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    label: str | None = Field(default=None, max_length=200)
    credit_gb: float | None = Field(default=None, ge=0)
    limit_photos: int | None = Field(default=None, ge=1)
    limit_filesize: int | None = Field(default=None, ge=1)


class CreditIn(BaseModel):
    amount_gb: float = Field(gt=0, le=1_000_000)
    reason: str = Field(default="top-up by an administrator", max_length=300)


def token_row(ctx: Any, row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "kind": row.kind, "status": row.status, "hint": row.hint, "label": row.label,
        "forename": row.forename, "surname": row.surname, "email": row.email,
        "credit_gb": round(ctx.service.credit_of(row.id), 6), "limit_photos": row.limit_photos,
        "limit_filesize": row.limit_filesize, "created_at": row.created_at.isoformat(timespec="seconds") + "Z",
    }


@router.get("/tokens")
async def tokens(request: Request, token: TokenView = Depends(admin_token)) -> dict[str, Any]:
    """Every token (hints only: secrets are never stored) with its credit."""
    ctx = get_ctx(request)
    return {"tokens": await run_in_threadpool(lambda: [token_row(ctx, r) for r in ctx.service.list_tokens()])}


@router.post("/tokens", status_code=201)
async def create_token(body: TokenIn, request: Request, token: TokenView = Depends(admin_token)) -> dict[str, Any]:
    """Create a token; its secret is in this answer only."""
    from openscancloud.domain.errors import InvalidInput
    from openscancloud.domain.tokens import TokenKind

    if body.kind not in ("private", "worker", "admin"):
        raise InvalidInput("kind must be private, worker or admin (there is one public token).", code="invalid_kind")
    if body.kind == "private" and not (body.forename and body.surname and body.email):
        raise InvalidInput("A private token needs a forename, a surname and an e-mail address.", code="invalid_owner")
    ctx = get_ctx(request)
    secret, view = await run_in_threadpool(lambda: ctx.service.create_token(
        TokenKind(body.kind), forename=body.forename, surname=body.surname, email=body.email, label=body.label,
        credit_gb=body.credit_gb, limit_photos=body.limit_photos, limit_filesize=body.limit_filesize))
    row = await run_in_threadpool(ctx.service.find_token, str(view.id))
    return {"token": secret, **await run_in_threadpool(token_row, ctx, row)}


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(token_id: int, request: Request, token: TokenView = Depends(admin_token)) -> dict[str, Any]:
    ctx = get_ctx(request)
    await run_in_threadpool(ctx.service.revoke_token, token_id)
    row = await run_in_threadpool(ctx.service.find_token, str(token_id))
    return await run_in_threadpool(token_row, ctx, row)


@router.post("/tokens/{token_id}/credit")
async def add_credit(token_id: int, body: CreditIn, request: Request,
                     token: TokenView = Depends(admin_token)) -> dict[str, Any]:
    """Top up a private token's credit (GB); the entry appears in the ledger."""
    ctx = get_ctx(request)
    await run_in_threadpool(ctx.service.topup, token_id, body.amount_gb, body.reason)
    row = await run_in_threadpool(ctx.service.find_token, str(token_id))
    return await run_in_threadpool(token_row, ctx, row)


@router.get("/ledger")
async def ledger(request: Request, token_id: int | None = Query(None), limit: int = Query(200, ge=1, le=5000),
                 token: TokenView = Depends(admin_token)) -> dict[str, Any]:
    """The newest credit movements (grants, top-ups, charges, refunds)."""
    ctx = get_ctx(request)

    def read() -> list[dict[str, Any]]:
        with ctx.service.uow() as repo:
            rows = list(repo.ledger(token_id=token_id))[-limit:]
            return [{"id": e.id, "token_id": e.token_id, "project_id": e.project_id, "kind": e.kind,
                     "amount_gb": round(e.amount_gb, 9), "reason": e.reason,
                     "created_at": e.created_at.isoformat(timespec="seconds") + "Z"} for e in reversed(rows)]

    return {"entries": await run_in_threadpool(read)}


@router.get("/queue")
async def queue(request: Request, token: TokenView = Depends(admin_token)) -> dict[str, Any]:
    """Jobs waiting and running, in the order workers take them."""
    ctx = get_ctx(request)

    def read() -> dict[str, Any]:
        with ctx.service.uow() as repo:
            def job(j: Any) -> dict[str, Any]:
                project = repo.project_by_id(j.project_id)
                return {"job_id": j.id, "project_id": j.project_id, "project": project.name if project else None,
                        "status": j.status, "quality": j.quality, "priority": j.priority, "attempt": j.attempt,
                        "stage": j.stage, "progress": round((j.progress or 0) * 100, 1), "worker_id": j.worker_id,
                        "queued_at": j.queued_at.isoformat(timespec="seconds") + "Z"}
            return {"running": [job(j) for j in repo.running_jobs()], "queued": [job(j) for j in repo.queued_jobs()]}

    return await run_in_threadpool(read)
