"""Signed result download: `GET /download/<project_id>/result.zip?e&s`, streamed, with `Range` support
(single ranges: `bytes=a-b`, `bytes=a-`, `bytes=-n`). Valid until the retention period ends. With S3 storage
a GET on a valid link answers `307` to a short-lived presigned S3 URL (Range works there too); HEAD is answered
here."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from openscancloud.api.context import AppContext, get_ctx
from openscancloud.domain.errors import DomainError, Forbidden, Gone, NotFound
from openscancloud.storage.base import Storage, supports_presign

router = APIRouter(tags=["signed links"])
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class RangeNotSatisfiable(DomainError):
    status, code = 416, "range_not_satisfiable"


def ranged_file_response(request: Request, storage: Storage, project_id: str, size: int, filename: str) -> Response:
    headers = {"Accept-Ranges": "bytes", "Content-Disposition": f'attachment; filename="{filename}"'}
    start, end, status = 0, size - 1, 200
    header = request.headers.get("range")
    if header:
        m = _RANGE.fullmatch(header.strip())
        if not m or (not m.group(1) and not m.group(2)):
            raise RangeNotSatisfiable("Only single byte ranges like 'bytes=0-99' are supported.")
        if m.group(1):
            start = int(m.group(1))
            end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        else:
            start, end = max(size - int(m.group(2)), 0), size - 1
        if start >= size or end < start:
            raise RangeNotSatisfiable(f"The range is outside the file ({size} bytes).", size=size)
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="application/zip")
    return StreamingResponse(storage.read_result(project_id, start, end), status_code=status, headers=headers,
                             media_type="application/zip")


@router.api_route("/download/{project_id}/result.zip", methods=["GET", "HEAD"])
async def download_result(request: Request, project_id: str, g: int = 0, e: int = 0, s: str = "") -> Response:
    ctx = get_ctx(request)
    ctx.signer.verify("download", project_id, g, expires=e, signature=s)
    project = await run_in_threadpool(_project, ctx, project_id, g)
    size = await run_in_threadpool(ctx.storage.result_size, project_id)
    if project.data_deleted or size is None:
        raise Gone("The result was deleted at the end of the retention period.", code="result_deleted")
    filename = f"{project.name.removesuffix('.zip')}-result.zip"
    if request.method == "GET" and ctx.settings.s3_redirect_downloads and supports_presign(ctx.storage):
        # Our link was checked (signature, retention); the bytes come straight from S3 by a short-lived URL.
        url = await run_in_threadpool(ctx.storage.presign_result_get, project_id, filename,  # type: ignore[attr-defined]
                                      ctx.settings.s3_presign_seconds)
        return RedirectResponse(url, status_code=307)
    return ranged_file_response(request, ctx.storage, project_id, size, filename)


def _project(ctx: AppContext, project_id: str, generation: int) -> Any:
    """The project whose result this link may serve: same generation (not reprocessed since the link was made)
    and its token still active (links die with their token)."""
    with ctx.service.uow() as repo:
        project = repo.project_by_id(project_id)
        if project is None or project.status != "done" or project.upload_generation != generation:
            raise NotFound("There is no result for this link (the project was reset, reprocessed or deleted).")
        owner = repo.token_by_id(project.token_id)
        if owner is None or owner.status != "active":
            raise Forbidden("This download link is no longer valid: its token was revoked.", code="token_revoked")
        return project
