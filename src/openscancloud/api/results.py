"""Single files out of a finished project's result zip, so that a browser can show the model and offer each
format on its own (GLB, STL, USDZ, PLY, the preview image), plus `model-obj.zip` (OBJ + MTL + texture).

Two ways in, both usable as a plain `<a href>` or by a 3D viewer (no Authorization header needed):
* the owner's signed file links: `/download/<project_id>/files/<name>?e&s` (listed by
  `GET /api/v1/projects/{id}/files`, valid until the retention period ends);
* share links: `/api/v1/shared/<share_id>/...?s=<sig>` — read-only, no token, checked against revocation on
  every request.
"""

from __future__ import annotations

import calendar
import hmac
import io
import mimetypes
import re
import zipfile
from typing import Any, Iterator

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from openscancloud.api.context import AppContext, get_ctx
from openscancloud.api.links import base_url
from openscancloud.domain.errors import Forbidden, Gone, NotFound
from openscancloud.domain.signing import Signer

router = APIRouter(tags=["result files"])

OBJ_BUNDLE = "model-obj.zip"
_OBJ_PARTS = re.compile(r"(model\.(obj|mtl)|[^/]+\.(png|jpe?g))", re.IGNORECASE)
# what a viewer or a phone wants by name; everything else (sparse/, report.json) stays in result.zip
LISTED = ("model.glb", "model.usdz", "model.stl", "dense.ply", "preview.png", "report.json")
KINDS = {"model.glb": "glb", "model.usdz": "usdz", "model.stl": "stl", "dense.ply": "ply", "preview.png": "preview",
         "report.json": "report", OBJ_BUNDLE: "obj"}
mimetypes.add_type("model/gltf-binary", ".glb")
mimetypes.add_type("model/vnd.usdz+zip", ".usdz")
mimetypes.add_type("model/stl", ".stl")


def _epoch(dt: Any) -> int:
    return int(calendar.timegm(dt.timetuple()))


def file_link(base: str, signer: Signer, project: Any, name: str) -> str | None:
    if project.status != "done" or project.delete_after is None:
        return None
    expires = _epoch(project.delete_after)
    return f"{base}/download/{project.id}/files/{name}?e={expires}&s={signer.sign('file', project.id, name, expires=expires)}"


def share_signature(signer: Signer, share_id: str, project_id: str) -> str:
    return signer.sign("share", share_id, project_id, expires=0)


def share_url(base: str, signer: Signer, share: Any) -> str:
    """The address people open: the web app's viewer route with the share id and its signature."""
    return f"{base}/#/share/{share.id}/{share_signature(signer, share.id, share.project_id)}"


def result_members(ctx: AppContext, project: Any) -> list[dict[str, Any]]:
    """The per-file downloads a finished project offers (only files that exist), with sizes."""
    with ctx.storage.open_result(project.id) as fh, zipfile.ZipFile(fh) as zf:
        infos = {i.filename: i.file_size for i in zf.infolist() if not i.is_dir()}
    files = [{"name": n, "kind": KINDS[n], "size": infos[n]} for n in LISTED if n in infos]
    obj = [n for n in infos if _OBJ_PARTS.fullmatch(n) and n != "preview.png"]
    if "model.obj" in infos:
        files.insert(1, {"name": OBJ_BUNDLE, "kind": "obj", "size": sum(infos[n] for n in obj)})
    return files


def member_response(ctx: AppContext, project: Any, name: str, *, download: bool) -> Response:
    """Stream one member of the result zip (or build the OBJ bundle)."""
    if name == OBJ_BUNDLE:
        data = _obj_bundle(ctx, project)
        return Response(data, media_type="application/zip",
                        headers=_headers(f"{project.name}-obj.zip", True, len(data)))
    fh = ctx.storage.open_result(project.id)
    try:
        zf = zipfile.ZipFile(fh)
        info = zf.getinfo(name) if name in LISTED else None
    except KeyError:
        info = None
    if info is None:
        fh.close()
        raise NotFound(f"The result has no file named {name!r}.", code="unknown_file")

    def chunks() -> Iterator[bytes]:
        try:
            with zf.open(info) as member:
                while block := member.read(1 << 20):
                    yield block
        finally:
            fh.close()

    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
    filename = f"{project.name}-{name}" if download else name
    return StreamingResponse(chunks(), media_type=media, headers=_headers(filename, download, info.file_size))


def _headers(filename: str, download: bool, size: int) -> dict[str, str]:
    disposition = "attachment" if download else "inline"
    return {"Content-Disposition": f'{disposition}; filename="{filename}"', "Content-Length": str(size),
            "Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"}


def _obj_bundle(ctx: AppContext, project: Any) -> bytes:
    out = io.BytesIO()
    with ctx.storage.open_result(project.id) as fh, zipfile.ZipFile(fh) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        names = [n for n in src.namelist() if _OBJ_PARTS.fullmatch(n) and n != "preview.png"]
        if "model.obj" not in names:
            raise NotFound("This result has no OBJ model (it was not among the chosen formats).", code="unknown_file")
        for n in names:
            dst.writestr(n, src.read(n))
    return out.getvalue()


def _done_project(ctx: AppContext, project_id: str) -> Any:
    with ctx.service.uow() as repo:
        project = repo.project_by_id(project_id)
        if project is None or project.status != "done":
            raise NotFound("There is no result for this link (the project was reprocessed, reset or deleted).")
        if project.data_deleted or ctx.storage.result_size(project.id) is None:
            raise Gone("The result was deleted at the end of the retention period.", code="result_deleted")
        return project


@router.get("/download/{project_id}/files/{name}")
async def signed_file(request: Request, project_id: str, name: str, e: int = 0, s: str = "",
                      inline: bool = False) -> Response:
    """One file of a result by the owner's signed link (`inline=true` for viewers: no attachment header)."""
    ctx = get_ctx(request)
    ctx.signer.verify("file", project_id, name, expires=e, signature=s)
    project = await run_in_threadpool(_done_project, ctx, project_id)
    return await run_in_threadpool(member_response, ctx, project, name, download=not inline)


def _shared(ctx: AppContext, share_id: str, s: str) -> Any:
    project = ctx.service.shared_project(share_id)
    expected = share_signature(ctx.signer, share_id, project.id)
    if not hmac.compare_digest(expected.encode(), (s or "").encode("utf-8", "replace")):
        raise Forbidden("This share link is not valid (its signature does not match).", code="bad_signature")
    if ctx.storage.result_size(project.id) is None:
        raise Gone("The shared model was deleted at the end of the retention period.", code="result_deleted")
    return project


@router.get("/api/v1/shared/{share_id}")
async def shared_project(request: Request, share_id: str, s: str = "") -> dict[str, Any]:
    """What a share link shows: the project's name, size figures and its files — no token needed."""
    ctx = get_ctx(request)

    def view() -> dict[str, Any]:
        project = _shared(ctx, share_id, s)
        base = base_url(request, ctx.settings)
        files = result_members(ctx, project)
        for f in files:
            f["url"] = f"{base}/api/v1/shared/{share_id}/files/{f['name']}?s={s}"
        report = ctx.service.project_view(project).get("report") or {}
        engine = report.get("engine") or {}
        return {"name": project.name, "photos": project.photos, "finished_at": project.finished_at.isoformat() + "Z",
                "mesh": engine.get("mesh"), "files": files}

    return await run_in_threadpool(view)


@router.get("/api/v1/shared/{share_id}/files/{name}")
async def shared_file(request: Request, share_id: str, name: str, s: str = "", inline: bool = False) -> Response:
    ctx = get_ctx(request)
    project = await run_in_threadpool(_shared, ctx, share_id, s)
    return await run_in_threadpool(member_response, ctx, project, name, download=not inline)
