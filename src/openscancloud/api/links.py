"""Signed URLs. Layout (all parameters are server-generated; nothing user-supplied becomes a path):

* upload part:     /upload/<project_id>/<index>?g=<generation>&e=<expires>&s=<sig>
* download result: /download/<project_id>/result.zip?g=<generation>&e=<expires>&s=<sig>
* worker input:    /worker-files/<job_id>/<attempt>/input.zip?e=..&s=..
* worker result:   /worker-files/<job_id>/<attempt>/result.zip?e=..&s=..
"""

from __future__ import annotations

import calendar
from typing import Any

from fastapi import Request

from openscancloud.domain.signing import Signer
from openscancloud.settings import Settings


def base_url(request: Request, settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def fast_base_url(scope: dict, settings: Settings) -> str | None:
    """`base_url` straight from the ASGI scope for the usual case (a Host header), without building URL objects
    (the polling path computes it on every request); None → use `base_url`. Same string as Starlette's
    `request.base_url` without the trailing slash."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    for name, value in scope["headers"]:
        if name == b"host":
            return f"{scope['scheme']}://{value.decode('latin-1')}{scope.get('root_path', '')}".rstrip("/")
    return None


def _epoch(dt: Any) -> int:
    return int(calendar.timegm(dt.timetuple()))


def upload_links(base: str, signer: Signer, project: Any, offset: int = 0, limit: int | None = None) -> list[str]:
    """The signed upload link of every part (or of parts offset .. offset+limit-1)."""
    expires = _epoch(project.upload_expires_at)
    gen = project.upload_generation
    end = project.parts if limit is None else min(project.parts, offset + limit)
    return [
        f"{base}/upload/{project.id}/{i}?g={gen}&e={expires}&s={signer.sign('upload', project.id, i, gen, expires=expires)}"
        for i in range(offset, end)
    ]


def download_link(base: str, signer: Signer, project: Any) -> str | None:
    if project.status != "done" or project.result_size is None or project.delete_after is None:
        return None
    expires = _epoch(project.delete_after)
    gen = project.upload_generation  # a reset (reprocessing) bumps it: old links never serve the newer result
    sig = signer.sign("download", project.id, gen, expires=expires)
    return f"{base}/download/{project.id}/result.zip?g={gen}&e={expires}&s={sig}"


def worker_file_link(base: str, signer: Signer, job_id: str, attempt: int, what: str, lifetime: int) -> str:
    expires = int(signer.now()) + lifetime
    sig = signer.sign(f"worker-{what}", job_id, attempt, expires=expires)
    return f"{base}/worker-files/{job_id}/{attempt}/{what}.zip?e={expires}&s={sig}"
