"""The HTTP API processing nodes pull work from (`/api/v1/worker/...`, Bearer worker token), plus the signed
links a worker uses to fetch the input zip and to upload the result zip. Workers only ever make outgoing
requests, so they run fine behind NAT."""

from __future__ import annotations

from typing import Any, Iterator

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from openscancloud.api.auth import worker_token
from openscancloud.api.context import get_ctx
from openscancloud.api.links import base_url, worker_file_link
from openscancloud.domain.errors import TooLarge
from openscancloud.domain.service import TokenView
from openscancloud.storage.base import PartTooLarge, supports_presign

router = APIRouter(prefix="/api/v1/worker", tags=["worker"])
files_router = APIRouter(tags=["signed links"])
RESULT_LIMIT = 50_000_000_000
FILE_LINK_SECONDS = 24 * 3600


class RegisterIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    cpus: int = Field(default=0, ge=0, le=1_000_000)
    ram_mb: int = Field(default=0, ge=0, le=2**31 - 1)
    gpu: str | None = Field(default=None, max_length=200)


class ClaimIn(BaseModel):
    worker_id: str


class HeartbeatIn(BaseModel):
    attempt: int
    worker_id: str | None = Field(default=None, max_length=64)
    stage: str | None = Field(default=None, max_length=200)
    progress: float | None = Field(default=None, ge=0, le=1)
    message: str | None = Field(default=None, max_length=20_000)
    log_tail: str | None = Field(default=None, max_length=200_000)


class CompleteIn(BaseModel):
    attempt: int
    report: dict[str, Any] | None = None


class FailIn(BaseModel):
    attempt: int
    message: str = "Processing failed."
    user_error: bool = False


def _holder(token: TokenView) -> int | None:
    """Worker tokens may only touch the jobs their own workers hold; the admin token may touch any."""
    return None if token.kind == "admin" else token.id


@router.post("/register")
async def register(body: RegisterIn, request: Request, token: TokenView = Depends(worker_token)) -> dict[str, str]:
    ctx = get_ctx(request)
    worker_id = await run_in_threadpool(ctx.queue.register, token.id, body.name, body.cpus, body.ram_mb, body.gpu)
    return {"worker_id": worker_id}


@router.post("/claim", responses={204: {"description": "no job waiting"}})
async def claim(body: ClaimIn, request: Request, token: TokenView = Depends(worker_token)) -> Response:
    ctx = get_ctx(request)
    job = await run_in_threadpool(ctx.queue.claim, token.id, body.worker_id)
    if job is None:
        return Response(status_code=204)
    base = base_url(request, ctx.settings)
    return JSONResponse({
        "job_id": job.job_id,
        "project_id": job.project_id,
        "attempt": job.attempt,
        "lease_seconds": job.lease_seconds,
        "heartbeat_seconds": max(1, min(5, job.lease_seconds // 4)),
        "quality": job.quality,
        "options": job.options,
        "input_size": job.input_size,
        "input_url": worker_file_link(base, ctx.signer, job.job_id, job.attempt, "input", FILE_LINK_SECONDS),
        "result_url": worker_file_link(base, ctx.signer, job.job_id, job.attempt, "result", FILE_LINK_SECONDS),
    })


@router.post("/jobs/{job_id}/heartbeat")
async def heartbeat(job_id: str, body: HeartbeatIn, request: Request,
                    token: TokenView = Depends(worker_token)) -> dict[str, bool]:
    ctx = get_ctx(request)
    cancel = await run_in_threadpool(
        lambda: ctx.queue.heartbeat(_holder(token), body.worker_id, job_id, body.attempt, stage=body.stage,
                                    progress=body.progress, message=body.message, log_tail=body.log_tail)
    )
    return {"cancel": cancel}


@router.post("/jobs/{job_id}/complete")
async def complete(job_id: str, body: CompleteIn, request: Request,
                   token: TokenView = Depends(worker_token)) -> dict[str, str]:
    ctx = get_ctx(request)
    await run_in_threadpool(ctx.queue.complete, job_id, body.attempt, body.report, _holder(token))
    ctx.poller.forget_eta_inputs()  # a finished job changes the measured stage speeds: this process sees it at once
    return {"status": "done"}


@router.post("/jobs/{job_id}/fail")
async def fail(job_id: str, body: FailIn, request: Request, token: TokenView = Depends(worker_token)) -> dict[str, str]:
    ctx = get_ctx(request)
    await run_in_threadpool(ctx.queue.fail, job_id, body.attempt, body.message, body.user_error, _holder(token))
    return {"status": "failed"}


@files_router.get("/worker-files/{job_id}/{attempt}/input.zip")
async def input_zip(request: Request, job_id: str, attempt: int, e: int = 0, s: str = "") -> Response:
    ctx = get_ctx(request)
    ctx.signer.verify("worker-input", job_id, attempt, expires=e, signature=s)
    project_id = await run_in_threadpool(ctx.queue.input_for, job_id, attempt)
    if supports_presign(ctx.storage):  # the worker fetches the bytes from S3 directly
        url = await run_in_threadpool(ctx.storage.presign_input_get, project_id,  # type: ignore[attr-defined]
                                      ctx.settings.s3_presign_seconds)
        return RedirectResponse(url, status_code=307)
    size = await run_in_threadpool(ctx.storage.input_size, project_id)

    def chunks() -> Iterator[bytes]:
        with ctx.storage.open_input(project_id) as fh:
            while block := fh.read(1 << 20):
                yield block

    return StreamingResponse(chunks(), media_type="application/zip",
                             headers={"Content-Length": str(size)} if size is not None else None)


@files_router.api_route("/worker-files/{job_id}/{attempt}/result.zip", methods=["PUT", "POST"])
async def result_zip(request: Request, job_id: str, attempt: int, e: int = 0, s: str = "") -> dict[str, Any]:
    ctx = get_ctx(request)
    ctx.signer.verify("worker-result", job_id, attempt, expires=e, signature=s)
    project_id = await run_in_threadpool(ctx.queue.check_result_upload, job_id, attempt)
    try:
        stored = await ctx.storage.put_result(project_id, request.stream(), RESULT_LIMIT)
    except PartTooLarge:
        raise TooLarge("The result zip is too large.") from None
    return {"size": stored.size, "sha256": stored.sha256}
