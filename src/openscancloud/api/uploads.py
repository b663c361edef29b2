"""Signed part-upload links: `POST`/`PUT /upload/<project_id>/<index>?g&e&s` and `HEAD` for resuming.

* plain body (Content-Length or chunked, or the multipart envelope) → the whole part, written to a temp file
  and renamed when complete; re-sending replaces it;
* `Content-Range: bytes START-END/TOTAL` → appended to a partial file; START must equal the bytes already
  received (0 restarts), else 409 `{"offset": n}`; complete when END+1 == TOTAL;
* 413 as soon as the part would pass the part limit or what is left of the declared filesize (reading stops),
  410 expired link, 403 bad signature or revoked token, 409 `part_busy` while another request writes the part;
* answers `{"part", "size", "sha256"}` (complete) or `{"offset"}` (202, more to come).

One writer per part: the request first claims the part in the database (`begin_part_upload`; a whole-part upload
takes the claim over, a `Content-Range` append waits its turn), keeps the claim fresh while bytes flow, checks it
once more when the body has ended and releases it at the end; only the holder records the part. Joining the
parts at start compares every part with its record, the last line of defence.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from openscancloud.api.bodies import file_bytes
from openscancloud.api.context import AppContext, get_ctx
from openscancloud.domain.errors import Conflict, InvalidInput, TooLarge
from openscancloud.storage.base import OffsetMismatch, PartTooLarge

router = APIRouter(tags=["signed links"])
_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


def _verify(request: Request, project_id: str, index: int, g: int, e: int, s: str) -> None:
    get_ctx(request).signer.verify("upload", project_id, index, g, expires=e, signature=s)


def _gone_client() -> Response:
    return JSONResponse({"status": "error", "error": "client_disconnected",
                         "message": "The upload broke off before the part was complete."}, status_code=400)


def _too_large(limit: int, part_limit: int) -> TooLarge:
    """413 with the reason that applies: the server's part limit, or what is left of the declared filesize."""
    if limit >= part_limit:
        return TooLarge(f"An upload part may be at most {limit} bytes; split the zip into more parts.",
                        code="part_too_large")
    return TooLarge(f"This part may be at most {limit} bytes: that is what is left of the filesize declared when "
                    "the project was created.", code="part_too_large")


async def _claimed(ctx: AppContext, project_id: str, index: int, writer: str,
                   chunks: AsyncIterator[bytes], bound: int, hit: dict[str, bool]) -> AsyncIterator[bytes]:
    """Pass the body on while refreshing this request's claim on the part (checked before a chunk is passed on,
    and once more at the end); stop (PartTooLarge) past `bound`."""
    touch_every = ctx.settings.part_writer_stale_seconds / 3
    seen, last = 0, time.monotonic()

    async def still_mine() -> None:
        if not await run_in_threadpool(ctx.service.touch_part_upload, project_id, index, writer):
            raise Conflict("Another upload of this part took over; this one was not kept.", code="part_busy")

    async for chunk in chunks:
        seen += len(chunk)
        if seen > bound:
            hit["bound"] = True
            raise PartTooLarge()
        if time.monotonic() - last > touch_every:
            last = time.monotonic()
            await still_mine()
        yield chunk
    await still_mine()


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
    writer = uuid.uuid4().hex
    takeover = not request.headers.get("content-range")  # a whole part replaces; appends take turns
    allowance = await run_in_threadpool(ctx.service.begin_part_upload, project_id, g, index, writer, takeover)
    try:
        return await _receive(request, ctx, project_id, index, g, writer, allowance)
    except FileNotFoundError:  # reset/cancel/delete removed the project's files while this part was arriving
        raise Conflict("The project was reset, cancelled or deleted while this part was uploading; the part was "
                       "not kept.", code="not_uploading") from None
    finally:
        await run_in_threadpool(ctx.service.end_part_upload, project_id, index, writer)


async def _receive(request: Request, ctx: AppContext, project_id: str, index: int, g: int, writer: str,
                   limit: int) -> Response:
    declared = request.headers.get("content-length")
    content_range = request.headers.get("content-range")
    hit = {"bound": False}
    if content_range:
        m = _RANGE.fullmatch(content_range.strip())
        if not m:
            raise InvalidInput("Content-Range must look like 'bytes START-END/TOTAL'.", code="bad_range")
        start, end, total = map(int, m.groups())
        if end < start or end >= total:
            raise InvalidInput("Content-Range END must be ≥ START and < TOTAL.", code="bad_range")
        if total > limit:
            raise _too_large(limit, ctx.settings.part_limit_bytes)
        length = end - start + 1
        if declared and declared.isdigit() and int(declared) != length:
            raise InvalidInput(f"Content-Range announces {length} bytes but the body has {declared}.",
                               code="bad_range")
        body = _claimed(ctx, project_id, index, writer, request.stream(), length, hit)
        try:
            offset, part = await ctx.storage.append_part(project_id, index, start, total, body, limit)
        except OffsetMismatch as exc:
            return JSONResponse({"status": "error", "error": "offset_mismatch", "offset": exc.offset,
                                 "message": f"This part continues at byte {exc.offset}."}, status_code=409)
        except PartTooLarge:
            if hit["bound"]:
                raise InvalidInput(f"The body is longer than the {length} bytes Content-Range announces.",
                                   code="bad_range") from None
            raise _too_large(limit, ctx.settings.part_limit_bytes) from None
        except ClientDisconnect:  # the bytes that arrived stay in the partial part: HEAD tells the offset
            return _gone_client()
        if offset != end + 1 and part is None:
            return JSONResponse({"status": "error", "error": "bad_range", "offset": offset,
                                 "message": f"The body ended at byte {offset} of the part, but Content-Range "
                                            f"announced {end + 1}; continue at {offset}."}, status_code=422)
        if part is None:
            return JSONResponse({"part": index, "offset": offset, "complete": False}, status_code=202)
    else:
        if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:  # multipart overhead allowance
            raise _too_large(limit, ctx.settings.part_limit_bytes)
        body = _claimed(ctx, project_id, index, writer,
                        file_bytes(request.stream(), request.headers.get("content-type", "")), limit, hit)
        try:
            part = await ctx.storage.put_part(project_id, index, body, limit)
        except PartTooLarge:
            raise _too_large(limit, ctx.settings.part_limit_bytes) from None
        except ClientDisconnect:  # nothing was kept: a broken plain upload never counts as a part
            return _gone_client()
        offset = part.size
    await run_in_threadpool(ctx.service.record_part, project_id, g, index, part.size, part.sha256, writer)
    return JSONResponse({"part": index, "size": part.size, "sha256": part.sha256, "offset": offset,
                         "complete": True})
