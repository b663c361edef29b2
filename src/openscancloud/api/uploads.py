"""Signed part-upload links: `POST`/`PUT /upload/<project_id>/<index>?g&e&s` and `HEAD` for resuming.

* plain body (Content-Length or chunked, or the multipart envelope) → the whole part, written to a temp file
  and renamed when complete; re-sending replaces it;
* `Content-Range: bytes START-END/TOTAL` → appended to a partial file; START must equal the bytes already
  received (0 restarts), else 409 `{"offset": n}`; complete when END+1 == TOTAL;
* 413 past the part limit (reading stops), 410 expired link, 403 bad signature;
* answers `{"part", "size", "sha256"}` (complete) or `{"offset"}` (202, more to come).
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from openscancloud.api.bodies import file_bytes
from openscancloud.api.context import get_ctx
from openscancloud.domain.errors import InvalidInput, TooLarge
from openscancloud.storage.base import OffsetMismatch, PartTooLarge

router = APIRouter(tags=["signed links"])
_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


def _verify(request: Request, project_id: str, index: int, g: int, e: int, s: str) -> None:
    get_ctx(request).signer.verify("upload", project_id, index, g, expires=e, signature=s)


def _gone_client() -> Response:
    return JSONResponse({"status": "error", "error": "client_disconnected",
                         "message": "The upload broke off before the part was complete."}, status_code=400)


def _too_large(limit: int) -> TooLarge:
    return TooLarge(f"An upload part may be at most {limit} bytes; split the zip into more parts.",
                    code="part_too_large")


@router.head("/upload/{project_id}/{index}")
async def upload_status(request: Request, project_id: str, index: int, g: int = 0, e: int = 0, s: str = "") -> Response:
    ctx = get_ctx(request)
    _verify(request, project_id, index, g, e, s)
    await run_in_threadpool(ctx.service.project_for_upload, project_id, g, index)
    offset, complete = await run_in_threadpool(ctx.storage.part_offset, project_id, index)
    return Response(status_code=200, headers={"Upload-Offset": str(offset),
                                              "Upload-Complete": "?1" if complete else "?0"})


@router.api_route("/upload/{project_id}/{index}", methods=["POST", "PUT"])
async def upload_part(request: Request, project_id: str, index: int, g: int = 0, e: int = 0, s: str = "") -> Response:
    ctx = get_ctx(request)
    _verify(request, project_id, index, g, e, s)
    await run_in_threadpool(ctx.service.project_for_upload, project_id, g, index)
    limit = ctx.settings.part_limit_bytes
    declared = request.headers.get("content-length")
    content_range = request.headers.get("content-range")
    if content_range:
        m = _RANGE.fullmatch(content_range.strip())
        if not m:
            raise InvalidInput("Content-Range must look like 'bytes START-END/TOTAL'.", code="bad_range")
        start, end, total = map(int, m.groups())
        if end < start or end >= total:
            raise InvalidInput("Content-Range END must be ≥ START and < TOTAL.", code="bad_range")
        if total > limit:
            raise _too_large(limit)
        try:
            offset, part = await ctx.storage.append_part(project_id, index, start, total, request.stream(), limit)
        except OffsetMismatch as exc:
            return JSONResponse({"status": "error", "error": "offset_mismatch", "offset": exc.offset,
                                 "message": f"This part continues at byte {exc.offset}."}, status_code=409)
        except PartTooLarge:
            raise _too_large(limit) from None
        except ClientDisconnect:  # the bytes that arrived stay in the partial part: HEAD tells the offset
            return _gone_client()
        if part is None:
            return JSONResponse({"part": index, "offset": offset, "complete": False}, status_code=202)
    else:
        if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:  # multipart overhead allowance
            raise _too_large(limit)
        try:
            part = await ctx.storage.put_part(
                project_id, index, file_bytes(request.stream(), request.headers.get("content-type", "")), limit
            )
        except PartTooLarge:
            raise _too_large(limit) from None
        except ClientDisconnect:  # nothing was kept: a broken plain upload never counts as a part
            return _gone_client()
        offset = part.size
    await run_in_threadpool(ctx.service.record_part, project_id, g, index, part.size, part.sha256)
    return JSONResponse({"part": index, "size": part.size, "sha256": part.sha256, "offset": offset,
                         "complete": True})

