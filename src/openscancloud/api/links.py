"""Signed URLs. Layout (all parameters are server-generated; nothing user-supplied becomes a path):

* upload part:     /upload/<project_id>/<index>?g=<generation>&e=<expires>&s=<sig>
* download result: /download/<project_id>/result.zip?e=<expires>&s=<sig>
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


def _epoch(dt: Any) -> int:
    return int(calendar.timegm(dt.timetuple()))


def upload_links(base: str, signer: Signer, project: Any) -> list[str]:
    expires = _epoch(project.upload_expires_at)
    gen = project.upload_generation
    return [
        f"{base}/upload/{project.id}/{i}?g={gen}&e={expires}&s={signer.sign('upload', project.id, i, gen, expires=expires)}"
        for i in range(project.parts)
    ]


def download_link(base: str, signer: Signer, project: Any) -> str | None:
    if project.status != "done" or project.result_size is None or project.delete_after is None:
        return None
    expires = _epoch(project.delete_after)
    sig = signer.sign("download", project.id, expires=expires)
    return f"{base}/download/{project.id}/result.zip?e={expires}&s={sig}"


def worker_file_link(base: str, signer: Signer, job_id: str, attempt: int, what: str, lifetime: int) -> str:
    expires = int(signer.now()) + lifetime
    sig = signer.sign(f"worker-{what}", job_id, attempt, expires=expires)
    return f"{base}/worker-files/{job_id}/{attempt}/{what}.zip?e={expires}&s={sig}"
