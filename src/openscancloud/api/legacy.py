"""The OpenScan Cloud legacy protocol, exactly as the OpenScan3 firmware and the desktop uploader scripts speak
it: GET with query parameters (POST with form or JSON fields works too), behind an optional HTTP Basic gate
(`openscan`/`free` by default). Answers are small JSON objects; errors are `{"status": "error", ...}` with a
fitting 4xx status.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.concurrency import run_in_threadpool

from openscancloud import __version__
from openscancloud.api.context import AppContext, client_ip, get_ctx
from openscancloud.api.links import base_url, download_link, upload_links
from openscancloud.api.poll import respond
from openscancloud.domain.errors import DomainError, InvalidInput, Unavailable
from openscancloud.domain.lifecycle import ACCEPTS_UPLOADS
from openscancloud.domain.service import TokenView
from openscancloud.domain.tokens import hash_token
from openscancloud.notify.webhook import webhook_secret

router = APIRouter(tags=["legacy protocol"])
LEGACY = ["GET", "POST"]


class BasicAuthFailed(DomainError):
    status, code = 401, "wrong_basic_auth"


async def legacy_params(request: Request) -> dict[str, str]:
    """Query parameters, overlaid with POST form or JSON fields of the same names."""
    params: dict[str, str] = dict(request.query_params)
    if request.method == "POST":
        ctype = request.headers.get("content-type", "")
        if "json" in ctype:
            try:
                body = await request.json()
            except (ValueError, RecursionError):
                raise InvalidInput("The request body is not valid JSON.") from None
            if isinstance(body, dict):
                params.update({k: str(v) for k, v in body.items() if v is not None and not isinstance(v, (list, dict))})
        elif "form" in ctype:
            form = await request.form()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def check_basic_auth(request: Request, ctx: AppContext) -> None:
    s = ctx.settings
    if not s.basic_auth:
        return
    header = request.headers.get("authorization", "")
    user = password = None
    if header.lower().startswith("basic "):
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            pass
    ok = (
        user is not None
        and secrets.compare_digest(user.encode(), s.basic_auth_user.encode())
        and secrets.compare_digest((password or "").encode(), s.basic_auth_password.encode())
    )
    if not ok:
        raise BasicAuthFailed(
            "Wrong or missing HTTP Basic credentials for the OpenScan Cloud API.",
        )


async def _prepare(request: Request) -> tuple[AppContext, dict[str, str]]:
    ctx = get_ctx(request)
    check_basic_auth(request, ctx)
    return ctx, await legacy_params(request)


async def _token(ctx: AppContext, params: dict[str, str]) -> TokenView:
    return await run_in_threadpool(ctx.service.authenticate, params.get("token"), ("public", "private", "admin"))


def project_info(ctx: AppContext, request: Request, project: Any, *, owner_view: bool = False) -> dict[str, Any]:
    """The getProjectInfo answer (also used by REST v1). `owner_view` (REST, where the caller proved it holds
    the project's key or private token) adds the secrets that belong to the owner: `project_key` and
    `webhook_secret`."""
    base = base_url(request, ctx.settings)
    info = ctx.service.project_view(project)
    if owner_view:
        if project.project_key:
            info["project_key"] = project.project_key
        if project.webhook_url:
            info["webhook_secret"] = webhook_secret(ctx.signer.key, project.id)
    info["dlink"] = download_link(base, ctx.signer, project)
    info["ulink"] = upload_links(base, ctx.signer, project) if project.status in ACCEPTS_UPLOADS else []
    info["parts"] = ctx.service.parts_info(project)
    return info


@router.api_route("/getTokenInfo", methods=LEGACY)
async def get_token_info(request: Request) -> dict[str, Any]:
    ctx, params = await _prepare(request)
    token = await _token(ctx, params)
    return await run_in_threadpool(ctx.service.token_info, token)


@router.api_route("/createProject", methods=LEGACY)
async def create_project(request: Request) -> dict[str, Any]:
    ctx, params = await _prepare(request)
    token = await _token(ctx, params)
    project, charged = await run_in_threadpool(
        ctx.service.create_project, token, params.get("project"), params.get("photos"), params.get("parts"),
        params.get("filesize"), quality=params.get("quality") or None, webhook_url=params.get("webhook") or None,
        client_ip=client_ip(request),
        masks=params.get("masks"), texture_size=params.get("texture_size"), target_faces=params.get("target_faces"),
        formats=params.get("formats"),
    )
    base = base_url(request, ctx.settings)
    return {
        "status": "created",
        "ulink": upload_links(base, ctx.signer, project),
        "credit": charged,
        "project": project.name,
        "id": project.id,
        "part_limit": ctx.settings.part_limit_bytes,
        "upload_expires_at": project.upload_expires_at.isoformat(timespec="seconds") + "Z",
    }


@router.api_route("/startProject", methods=LEGACY)
async def start_project(request: Request) -> dict[str, Any]:
    ctx, params = await _prepare(request)
    token = await _token(ctx, params)
    project = await run_in_threadpool(ctx.service.start_project, token, params.get("project"))
    return {"status": "started", "project": project.name, "id": project.id}


@router.api_route("/getProjectInfo", methods=LEGACY)
async def get_project_info(request: Request) -> Response:
    """The most frequent call (every client polls it): served by the polling path (`api.poll`), which also
    answers 304 to a matching If-None-Match."""
    ctx, params = await _prepare(request)
    answer = await ctx.poller.answer(request, params.get("token"), name=params.get("project"),
                                     seen=request.headers.get("if-none-match"))
    return respond(answer)


@router.api_route("/resetProject", methods=LEGACY)
async def reset_project(request: Request) -> dict[str, Any]:
    ctx, params = await _prepare(request)
    token = await _token(ctx, params)
    project, refunded = await run_in_threadpool(ctx.service.reset_project, token, params.get("project"))
    base = base_url(request, ctx.settings)
    credit = await run_in_threadpool(ctx.service.credit_of, token.id)
    return {"status": "created", "ulink": upload_links(base, ctx.signer, project), "refunded": refunded,
            "credit": credit, "project": project.name}


@router.api_route("/getQueueEstimate", methods=LEGACY)
async def get_queue_estimate(request: Request) -> dict[str, Any]:
    ctx, params = await _prepare(request)
    token = await _token(ctx, params)
    return await run_in_threadpool(ctx.service.queue_estimate, token)


@router.api_route("/requestToken", methods=LEGACY)
async def request_token(request: Request) -> dict[str, Any]:
    """Ask for a private token. When the server can send mail and knows its public URL, the token is mailed
    with a confirmation link built from that URL (never from the request's Host header). Otherwise the request
    is recorded for the operator to approve (`openscan-cloud tokens requests` / `tokens approve ID`)."""
    ctx, params = await _prepare(request)
    issue_now = ctx.notifier.mailer.enabled and bool(ctx.settings.public_url)
    row, token = await run_in_threadpool(
        lambda: ctx.service.request_token(params.get("mail", ""), params.get("forename", ""),
                                          params.get("lastname", ""), client_ip(request), issue_now=issue_now)
    )
    if token is None:
        return {"status": "requested",
                "message": "Your request was recorded. The operator of this server will check it and send you "
                           "a token by e-mail."}
    h = hash_token(token)
    confirm = f"{ctx.settings.public_url.rstrip('/')}/confirmToken?h={h}&s={ctx.signer.sign('confirm', h, expires=0)}"
    try:
        await run_in_threadpool(ctx.notifier.send_token_mail, row.email, row.forename or "", token, confirm)
    except Exception:
        raise Unavailable("The e-mail with your token could not be sent; please try again later.",
                          code="email_failed") from None
    return {"status": "requested", "message": f"A token was sent to {row.email}."}


@router.get("/confirmToken")
async def confirm_token(request: Request, h: str = "", s: str = "") -> dict[str, Any]:
    ctx = get_ctx(request)
    ctx.signer.verify("confirm", h, expires=0, signature=s, now=0)
    await run_in_threadpool(ctx.service.confirm_token_hash, h)
    return {"status": "confirmed", "message": "Your token is active now."}


@router.get("/status")
async def status(request: Request) -> dict[str, Any]:
    ctx = get_ctx(request)
    info = await run_in_threadpool(ctx.service.server_status)
    return {"status": "ok", "version": __version__, **info}


__all__ = ["router", "project_info", "check_basic_auth"]
