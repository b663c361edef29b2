"""Projects, token info and queue as REST resources. The rules are the same `CloudService` calls the legacy
protocol uses; only the HTTP shape differs."""

from __future__ import annotations

import time
import zipfile
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from openscancloud import __version__
from openscancloud.api.auth import bearer, user_token
from openscancloud.api.context import AppContext, client_ip, get_ctx
from openscancloud.api.downloads import ranged_file_response
from openscancloud.api.legacy import project_info
from openscancloud.api.links import base_url, upload_links
from openscancloud.api.poll import respond
from openscancloud.api.results import file_link, result_members, share_signature, share_url
from openscancloud.domain.errors import Conflict, NotFound
from openscancloud.domain.lifecycle import ACCEPTS_UPLOADS
from openscancloud.domain.options import parse_options
from openscancloud.domain.service import TokenView

router = APIRouter(prefix="/api/v1", tags=["v1"])

# Projects created with the shared public token are reached only with their key (see docs/security.md).
ProjectKey = Header(default=None, alias="X-Project-Key",
                    description="The project's key (projects made with the public token only)")


class ProjectIn(BaseModel):
    name: str | None = Field(default=None, description="Your label, [A-Za-z0-9._-]{1,128}; default: generated")
    photos: int = Field(ge=1)
    filesize: int = Field(ge=1, description="Size of the whole zip in bytes")
    parts: int = Field(ge=1, description="Number of upload parts (each at most the part limit)")
    quality: str | None = Field(default=None, description="preview | standard | high")
    webhook_url: str | None = Field(default=None, description="POSTed JSON when the project is done or failed")
    masks: str | None = Field(default=None, description="auto (detect a static background) | off | user "
                                                       "(NAME_mask.png beside each photo in the zip)")
    texture_size: int | None = Field(default=None, description="texture side in px (256–16384); null: preset")
    target_faces: int | None = Field(default=None, description="triangle budget (1,000–5,000,000); null: preset")
    formats: list[str] | None = Field(default=None, description="subset of glb, obj, ply, stl, usdz; null: all")


class OptionsIn(BaseModel):
    """Processing options for a new run of the same photos (missing fields: the defaults, not the old run's)."""

    quality: str | None = Field(default=None, description="preview | standard | high")
    masks: str | None = Field(default=None, description="auto | off | user")
    texture_size: int | None = Field(default=None, description="texture side in px (256–16384); null: preset")
    target_faces: int | None = Field(default=None, description="triangle budget (1,000–5,000,000); null: preset")
    formats: list[str] | None = Field(default=None, description="subset of glb, obj, ply, stl, usdz; null: all")


@router.get("/status")
async def status(request: Request) -> dict[str, Any]:
    info = await run_in_threadpool(get_ctx(request).service.server_status)
    return {"status": "ok", "version": __version__, **info}


@router.get("/public-token")
async def public_token(request: Request) -> dict[str, Any]:
    """The shared public token this server offers to anyone (no sign-up), with its limits. Projects made with it
    may be kept for research; 404 when the operator offers none."""
    ctx = get_ctx(request)
    if ctx.settings.public_daily_credit_gb <= 0:
        raise NotFound("This server offers no public token; ask its operator for one.", code="no_public_token")
    token = await run_in_threadpool(ctx.service.public_token)
    return {"token": token, "daily_credit_gb": ctx.settings.public_daily_credit_gb,
            "limit_photos": ctx.settings.public_limit_photos, "limit_filesize": ctx.settings.public_limit_filesize}


@router.get("/token")
async def token_info(request: Request, token: TokenView = Depends(user_token)) -> dict[str, Any]:
    return await run_in_threadpool(get_ctx(request).service.token_info, token)


@router.get("/queue")
async def queue(request: Request, token: TokenView = Depends(user_token)) -> dict[str, Any]:
    return await run_in_threadpool(get_ctx(request).service.queue_estimate, token)


@router.post("/projects", status_code=201)
async def create_project(body: ProjectIn, request: Request, token: TokenView = Depends(user_token)) -> dict[str, Any]:
    ctx = get_ctx(request)
    name = body.name or f"project-{int(time.time() * 1000)}"
    project, _ = await run_in_threadpool(
        lambda: ctx.service.create_project(token, name, body.photos, body.parts, body.filesize,
                                           quality=body.quality, webhook_url=body.webhook_url,
                                           client_ip=client_ip(request), masks=body.masks,
                                           texture_size=body.texture_size, target_faces=body.target_faces,
                                           formats=body.formats)
    )
    return await run_in_threadpool(lambda: project_info(ctx, request, project, owner_view=True))


@router.get("/projects")
async def list_projects(request: Request, token: TokenView = Depends(user_token)) -> dict[str, Any]:
    """The token's projects. Empty for the shared public token: its projects belong to many strangers, and
    each is reached by its id and `X-Project-Key` only."""
    ctx = get_ctx(request)
    projects = await run_in_threadpool(ctx.service.list_projects, token)
    return {"projects": [await run_in_threadpool(ctx.service.project_view, p) for p in projects]}


@router.get("/projects/{project_id}", response_model=None,
            responses={200: {"description": "The project (with an ETag)"}, 304: {"description": "Unchanged"}})
async def get_project(project_id: str, request: Request, key: str | None = ProjectKey) -> Response:
    """The project's status. Carries an `ETag`; send it back as `If-None-Match` and an unchanged project
    answers 304 without a body (the ETA estimate alone does not count as a change)."""
    answer = await get_ctx(request).poller.answer(request, bearer(request), project_id=project_id, rest=True,
                                                  seen=request.headers.get("if-none-match"), project_key=key)
    return respond(answer)


@router.get("/projects/{project_id}/events", response_model=None,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "`status` events whose data is the JSON of GET /projects/{id}"}})
async def project_events(project_id: str, request: Request,
                         key: str | None = ProjectKey) -> StreamingResponse:
    """Progress push (server-sent events): an event `status` with the project's JSON at once and whenever it
    changes, a `: keep-alive` comment every 15 s, and the end of the stream after a terminal state (done,
    failed, cancelled, expired). Browsers read it with `fetch()` streaming (the Authorization header is
    needed, which EventSource cannot send)."""
    return await get_ctx(request).poller.events(request, bearer(request), project_id, project_key=key)


@router.get("/projects/{project_id}/parts")
async def list_parts(project_id: str, request: Request, offset: int = Query(0, ge=0),
                     limit: int = Query(1000, ge=1, le=1000),
                     token: TokenView = Depends(user_token), key: str | None = ProjectKey) -> dict[str, Any]:
    """The parts of a project page by page, each with its upload link while the project accepts uploads —
    for projects with more parts than the polled answer lists (`poll_parts_limit`)."""
    ctx = get_ctx(request)

    def page() -> dict[str, Any]:
        with ctx.service.uow():
            project = ctx.service.get_project(token, project_id=project_id, project_key=key)
            parts = ctx.service.parts_info(project, offset=offset, limit=limit)
            links = upload_links(base_url(request, ctx.settings), ctx.signer, project, offset=offset, limit=limit) \
                if project.status in ACCEPTS_UPLOADS else [None] * len(parts)
        return {"parts_total": project.parts, "offset": offset, "limit": limit,
                "parts": [{**p, "ulink": link} for p, link in zip(parts, links)]}

    return await run_in_threadpool(page)


async def _act(request: Request, token: TokenView, project_id: str, key: str | None, action: str) -> dict[str, Any]:
    ctx = get_ctx(request)
    fn = getattr(ctx.service, f"{action}_project")
    result = await run_in_threadpool(lambda: fn(token, project_id=project_id, project_key=key))
    project = result[0] if isinstance(result, tuple) else result
    return await run_in_threadpool(lambda: project_info(ctx, request, project, owner_view=True))


@router.post("/projects/{project_id}/start", status_code=202)
async def start(project_id: str, request: Request, token: TokenView = Depends(user_token),
                key: str | None = ProjectKey) -> dict[str, Any]:
    return await _act(request, token, project_id, key, "start")


@router.post("/projects/{project_id}/cancel")
async def cancel(project_id: str, request: Request, token: TokenView = Depends(user_token),
                 key: str | None = ProjectKey) -> dict[str, Any]:
    return await _act(request, token, project_id, key, "cancel")


@router.post("/projects/{project_id}/reset")
async def reset(project_id: str, request: Request, token: TokenView = Depends(user_token),
                key: str | None = ProjectKey) -> dict[str, Any]:
    return await _act(request, token, project_id, key, "reset")


@router.post("/projects/{project_id}/reprocess", status_code=202)
async def reprocess(project_id: str, body: OptionsIn, request: Request,
                    token: TokenView = Depends(user_token), key: str | None = ProjectKey) -> dict[str, Any]:
    """Process a done, failed or cancelled project again with these options, from the photos the server kept
    (no new upload). Costs the upload's credit again; the previous result is replaced."""
    ctx = get_ctx(request)
    options = parse_options(quality=body.quality, masks=body.masks, texture_size=body.texture_size,
                            target_faces=body.target_faces, formats=body.formats,
                            default_quality=ctx.settings.quality)
    project = await run_in_threadpool(ctx.service.reprocess_project, token, project_id, options, key)
    return await run_in_threadpool(lambda: project_info(ctx, request, project, owner_view=True))


@router.get("/projects/{project_id}/shares")
async def list_shares(project_id: str, request: Request, token: TokenView = Depends(user_token),
                      key: str | None = ProjectKey) -> dict[str, Any]:
    ctx = get_ctx(request)
    shares = await run_in_threadpool(ctx.service.list_shares, token, project_id, key)
    base = base_url(request, ctx.settings)
    return {"shares": [_share_view(base, ctx, s) for s in shares]}


@router.post("/projects/{project_id}/shares", status_code=201)
async def create_share(project_id: str, request: Request, token: TokenView = Depends(user_token),
                       key: str | None = ProjectKey) -> dict[str, Any]:
    """A read-only link to this finished project's viewer and files that works without a token (revocable)."""
    ctx = get_ctx(request)
    share = await run_in_threadpool(ctx.service.create_share, token, project_id, key)
    return _share_view(base_url(request, ctx.settings), ctx, share)


@router.post("/projects/{project_id}/shares/{share_id}/revoke")
async def revoke_share(project_id: str, share_id: str, request: Request,
                       token: TokenView = Depends(user_token), key: str | None = ProjectKey) -> dict[str, Any]:
    ctx = get_ctx(request)
    share = await run_in_threadpool(ctx.service.revoke_share, token, project_id, share_id, key)
    return _share_view(base_url(request, ctx.settings), ctx, share)


def _share_view(base: str, ctx: AppContext, share: Any) -> dict[str, Any]:
    return {"id": share.id, "url": share_url(base, ctx.signer, share),
            "api": f"{base}/api/v1/shared/{share.id}?s={share_signature(ctx.signer, share.id, share.project_id)}",
            "created_at": share.created_at.isoformat(timespec="seconds") + "Z",
            "revoked": share.revoked_at is not None}


@router.delete("/projects/{project_id}", status_code=204)
async def delete(project_id: str, request: Request, token: TokenView = Depends(user_token),
                 key: str | None = ProjectKey) -> Response:
    ctx = get_ctx(request)
    await run_in_threadpool(ctx.service.delete_project, token, project_id, key)
    return Response(status_code=204)


@router.post("/projects/{project_id}/parts/{index}/presign")
async def presign_part(project_id: str, index: int, request: Request,
                       token: TokenView = Depends(user_token), key: str | None = ProjectKey) -> dict[str, Any]:
    """S3 storage only: a presigned URL to PUT part `index` straight into the bucket (expires with the
    project's upload links). Afterwards call `.../parts/{index}/complete`. 409 `presign_unavailable` on
    servers with local storage — use the `ulink` then."""
    ctx = get_ctx(request)
    url, expires = await run_in_threadpool(ctx.service.presign_part, token, project_id, index, key)
    return {"part": index, "method": "PUT", "url": url, "expires_at": expires.isoformat(timespec="seconds") + "Z"}


@router.post("/projects/{project_id}/parts/{index}/complete")
async def complete_part(project_id: str, index: int, request: Request,
                        token: TokenView = Depends(user_token), key: str | None = ProjectKey) -> dict[str, Any]:
    """Record a part uploaded by presigned PUT (size checked, sha256 computed by the server)."""
    ctx = get_ctx(request)
    part = await run_in_threadpool(ctx.service.adopt_presigned_part, token, project_id, index, key)
    return {"part": index, "size": part.size, "sha256": part.sha256, "complete": True}


def _result_project(ctx: AppContext, token: TokenView, project_id: str, key: str | None) -> Any:
    project = ctx.service.get_project(token, project_id=project_id, project_key=key)
    if project.status != "done" or ctx.storage.result_size(project.id) is None:
        raise NotFound(f"This project has no result (it is '{project.status}').", code="no_result")
    return project


@router.get("/projects/{project_id}/files")
async def result_files(project_id: str, request: Request, token: TokenView = Depends(user_token),
                       key: str | None = ProjectKey) -> dict[str, Any]:
    ctx = get_ctx(request)

    def listing() -> dict[str, Any]:
        project = _result_project(ctx, token, project_id, key)
        try:
            with ctx.storage.open_result(project.id) as fh, zipfile.ZipFile(fh) as zf:
                files = [{"name": i.filename, "size": i.file_size} for i in zf.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError):
            raise Conflict("The result of this project is not a readable zip archive, so its files cannot be "
                           "listed; download it as a whole.", code="result_not_zip") from None
        info = project_info(ctx, request, project)
        base = base_url(request, ctx.settings)
        downloads = result_members(ctx, project)
        for d in downloads:
            d["url"] = file_link(base, ctx.signer, project, d["name"])
        return {"files": files, "downloads": downloads, "dlink": info["dlink"], "size": project.result_size}

    return await run_in_threadpool(listing)


@router.api_route("/projects/{project_id}/result", methods=["GET", "HEAD"])
async def result(project_id: str, request: Request, token: TokenView = Depends(user_token),
                 key: str | None = ProjectKey) -> Response:
    ctx = get_ctx(request)
    project = await run_in_threadpool(_result_project, ctx, token, project_id, key)
    size = await run_in_threadpool(ctx.storage.result_size, project.id) or 0
    return ranged_file_response(request, ctx.storage, project.id, size, f"{project.name.removesuffix('.zip')}-result.zip")
