"""The polling path: `getProjectInfo`, `GET /api/v1/projects/{id}` (with ETag / 304) and the progress stream
`GET /api/v1/projects/{id}/events` (server-sent events).

Clients poll these every few seconds while a job runs, so they are built to be cheap (docs/benchmarks.md has
the profile): one statement reads token, project and latest job (`db.poll`), the change tag is computed from
that row before anything else, and a client that already has the answer gets a 304 without the answer being
built. On PostgreSQL even that read is skipped while no change notice has mentioned the project since this
process last read it: the snapshot is kept in memory (`api.poll_cache`, `db.changes`). The answer itself comes
from the same pure function as the general path (`domain.reporting.render_project_view`), signed links use a
pre-keyed HMAC, and the JSON is encoded once by pydantic-core (the encoder FastAPI uses for these routes, so the
bytes are the ones clients always got).

Anything unusual — unknown or revoked token, a project that is not the token's, a public token on REST (whose
access rules include the per-project key) — goes through the domain layer (`CloudService`), which has the
rules and the sentences; the fast read only serves the ordinary case.
"""

from __future__ import annotations

import asyncio
import hashlib
import pickle
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, AsyncIterator

import pydantic_core
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from openscancloud.api.context import AppContext
from openscancloud.api.links import base_url, download_link, fast_base_url, upload_links
from openscancloud.api.poll_cache import PollCache
from openscancloud.db.poll import PollReader, Snapshot
from openscancloud.domain.errors import DomainError, NotFound
from openscancloud.domain.eta import ETA_UNKNOWN, EtaInputs, estimate
from openscancloud.domain.lifecycle import ACCEPTS_UPLOADS, ACTIVE_JOB, TERMINAL
from openscancloud.domain.reporting import render_project_view
from openscancloud.domain.tokens import TokenStatus, hash_token
from openscancloud.notify.webhook import webhook_secret

USER_KINDS = ("public", "private", "admin")
ETA_INPUTS_TTL = 10.0  # seconds an ETA's inputs (stage model, worker counts) are reused by one process


@dataclass(frozen=True)
class Answer:
    """One rendered poll answer. `body` is None when the client's `If-None-Match` matched (→ 304)."""

    etag: str
    body: bytes | None
    status: str  # the project's status (the stream ends on a terminal one)


class ProjectPoller:
    """Builds poll answers; one per app (`AppContext.poller`)."""

    def __init__(self, ctx: AppContext, reader: PollReader) -> None:
        self.ctx = ctx
        self.reader = reader
        # for the rare blocking steps: the domain layer's refusal path and storage offsets while uploading
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="poll")
        self._eta_cache: dict[str, tuple[float, EtaInputs]] = {}
        self.cache: PollCache | None = None  # polls from memory, where the database sends change notices
        if ctx.settings.poll_change_notices:
            cache = PollCache()
            feed = reader.change_feed(on_change=cache.forget, on_reset=cache.clear, on_queue=cache.forget_queued)
            if feed is not None:
                cache.feed, self.cache = feed, cache

    def close(self) -> None:
        if self.cache is not None:
            self.cache.feed.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.reader.close()

    async def _blocking(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def answer(self, request: Request, secret: str | None, *, name: str | None = None,
                     project_id: str | None = None, rest: bool = False, seen: str | None = None,
                     project_key: str | None = None) -> Answer:
        """The answer for the token `secret` and its project (by legacy name or REST id); raises the domain
        layer's error when the token may not see it. `seen`: the client's If-None-Match (→ no body if equal)."""
        base = fast_base_url(request.scope, self.ctx.settings) or base_url(request, self.ctx.settings)
        token_hash = hash_token(secret or "")
        key = (token_hash, name, project_id, base, rest)
        cache = self.cache
        known = None if cache is None else cache.lookup(key)
        offsets: tuple[int, ...] = ()
        if known is not None:  # nothing about this project changed since this process last read it
            snap, etag = known.snap, known.etag
            project = snap.project
        else:
            mark = None if cache is None else cache.mark()
            snap, ordinary = await self._snapshot(secret, token_hash, name, project_id, rest, project_key)
            project = snap.project
            if snap.parts is not None and project.status in ACCEPTS_UPLOADS:
                offsets = await self._blocking(self._offsets, project, snap.parts)  # partial uploads: storage only
            etag = _etag(snap, base, offsets)
            if cache is not None and ordinary and project.status not in ACCEPTS_UPLOADS:
                cache.store(key, mark, etag, snap)
        if seen is not None and _matches(etag, seen):
            return Answer(etag, None, project.status)  # 304: nothing more to read or build
        eta = ETA_UNKNOWN
        if snap.job is not None and project.status in ACTIVE_JOB:
            inputs = await self._eta_inputs(snap.job.quality)
            eta = estimate(inputs, snap.job, project.photos, self.ctx.service.clock(), ahead=snap.queue_ahead)
        return Answer(etag, self._render(snap, base, offsets, eta, owner_view=rest), project.status)

    async def _eta_inputs(self, quality: str) -> EtaInputs:
        """The measured stage model and worker counts behind every ETA of one quality, read at most every
        `ETA_INPUTS_TTL` seconds per process: they move slowly, and every poll of an active project needs them."""
        now = time.monotonic()
        cached = self._eta_cache.get(quality)
        if cached is not None and now - cached[0] < ETA_INPUTS_TTL:
            return cached[1]
        inputs = await self._blocking(self.ctx.service.eta_inputs, quality)
        self._eta_cache[quality] = (now, inputs)
        return inputs

    def forget_eta_inputs(self) -> None:
        """Called when a job finishes in this process: the next poll re-reads the stage speeds (other API processes
        see the change within `ETA_INPUTS_TTL`)."""
        self._eta_cache.clear()

    async def _snapshot(self, secret: str | None, token_hash: str, name: str | None, project_id: str | None,
                        rest: bool, project_key: str | None = None) -> tuple[Snapshot, bool]:
        """The snapshot, and whether it was the ordinary case (an active user token reading its own project, no
        per-project key involved): only those answers may be revalidated from memory later."""
        snap = None
        if secret:
            snap = await self.reader.snapshot(token_hash, name=name, project_id=project_id,
                                              parts_limit=self.ctx.settings.poll_parts_limit)
        ordinary = (snap is not None and snap.token_status == TokenStatus.ACTIVE and snap.token_kind in USER_KINDS
                    and not (rest and snap.token_kind == "public"))
        if ordinary:
            return snap, True  # type: ignore[return-value]
        # The domain layer decides (and explains a refusal); what it allows is then read like any other.
        allowed = await self._blocking(self._authorize, secret, name, project_id, project_key)
        snap = await self.reader.snapshot(token_hash, project_id=allowed.id,
                                          parts_limit=self.ctx.settings.poll_parts_limit)
        if snap is None:  # the project vanished between the two reads
            raise NotFound("No project with this id.")
        return snap, False

    def _authorize(self, secret: str | None, name: str | None, project_id: str | None,
                   project_key: str | None) -> Any:
        service = self.ctx.service
        return service.get_project(service.authenticate(secret, USER_KINDS), name, project_id, project_key)

    def _offsets(self, project: Any, parts_rows: Any) -> tuple[int, ...]:
        """Bytes received so far of each incomplete part (resumable uploads live in storage only)."""
        done = {r.index for r in parts_rows}
        return tuple(self.ctx.storage.part_offset(project.id, i)[0] for i in range(project.parts) if i not in done)

    def _render(self, snap: Snapshot, base: str, offsets: tuple[int, ...], eta: tuple[float | None, str | None],
                owner_view: bool = False) -> bytes:
        project, job = snap.project, snap.job
        info = render_project_view(project, job, eta)
        if owner_view:  # REST: the caller proved it holds the project's key or private token (as legacy.project_info)
            if project.project_key:
                info["project_key"] = project.project_key
            if project.webhook_url:
                info["webhook_secret"] = webhook_secret(self.ctx.signer.key, project.id)
        signer = self.ctx.signer
        info["dlink"] = download_link(base, signer, project)
        uploading = project.status in ACCEPTS_UPLOADS
        if snap.parts is not None:
            info["ulink"] = upload_links(base, signer, project) if uploading else []
            info["parts"] = _parts(project.parts, snap.parts, offsets)
        else:  # bounded: the answer of a project with thousands of parts must not grow with them
            info["ulink"] = []
            info["parts"] = []
            info["parts_complete"] = snap.parts_done
            info["parts_listing"] = f"{base}/api/v1/projects/{project.id}/parts"
        return pydantic_core.to_json(info)

    # --- the progress stream --------------------------------------------------------------------------------
    async def events(self, request: Request, secret: str, project_id: str,
                     project_key: str | None = None) -> StreamingResponse:
        """`text/event-stream` of `status` events (data = the JSON of `GET /api/v1/projects/{id}`), sent at once
        and on every change, a `: keep-alive` comment after `events_keepalive_seconds` of silence; it ends after
        a terminal state. Access is checked before the stream starts (a refusal is an ordinary JSON error)."""
        first = await self.answer(request, secret, project_id=project_id, rest=True, project_key=project_key)
        settings = self.ctx.settings

        async def stream() -> AsyncIterator[bytes]:
            answer, last_tag = first, None
            last_sent = time.monotonic()
            while True:
                if answer.etag != last_tag and answer.body is not None:
                    yield b"event: status\ndata: " + answer.body + b"\n\n"
                    last_tag, last_sent = answer.etag, time.monotonic()
                    if answer.status in TERMINAL:
                        return
                elif time.monotonic() - last_sent >= settings.events_keepalive_seconds:
                    yield b": keep-alive\n\n"
                    last_sent = time.monotonic()
                await asyncio.sleep(settings.events_interval_seconds)
                if await request.is_disconnected():
                    return
                try:
                    # If-None-Match = the tag already sent: an unchanged project costs a read, not a rendering
                    answer = await self.answer(request, secret, project_id=project_id, rest=True, seen=last_tag,
                                               project_key=project_key)
                except DomainError as exc:  # token revoked or project deleted meanwhile
                    yield b"event: error\ndata: " + pydantic_core.to_json(
                        {"status": exc.status, "code": exc.code, "detail": exc.message}) + b"\n\n"
                    return

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def respond(answer: Answer, *, status_code: int = 200) -> Response:
    """The HTTP response of a poll answer: 200 with the JSON and its ETag, or 304 with the ETag only."""
    headers = {"ETag": answer.etag, "Cache-Control": "no-cache"}
    if answer.body is None:
        return Response(status_code=304, headers=headers)
    return Response(answer.body, status_code=status_code, media_type="application/json", headers=headers)


def _parts(count: int, rows: Any, offsets: tuple[int, ...]) -> list[dict[str, Any]]:
    done = {r.index: r for r in rows}
    pending = iter(offsets)
    result = []
    for i in range(count):
        row = done.get(i)
        if row is not None:
            result.append({"index": i, "size": row.size, "complete": True, "sha256": row.sha256})
        else:
            result.append({"index": i, "size": next(pending, 0), "complete": False, "sha256": None})
    return result


def _etag(snap: Snapshot, base: str, offsets: tuple[int, ...]) -> str:
    """A weak tag: it changes with anything stored about the project, its job or its parts, not with the ETA
    estimate alone (that drifts with the clock; a revalidated answer keeps the estimate it had)."""
    # pickle: a deterministic byte string of plain values (str, int, float, datetime, None), several times faster
    # than repr; the same in every API process, so a tag stays valid behind a load balancer.
    digest = hashlib.blake2b(pickle.dumps((snap.version_key(), base, offsets), 4), digest_size=12).hexdigest()
    return f'W/"{digest}"'


def _matches(etag: str, header: str) -> bool:
    """If-None-Match comparison (weak, as RFC 9110 asks for it: a W/ prefix does not matter; * matches)."""
    opaque = etag.removeprefix("W/")
    return any(tag == "*" or tag.removeprefix("W/") == opaque for tag in (t.strip() for t in header.split(",")))


__all__ = ["ProjectPoller", "Answer", "respond"]
