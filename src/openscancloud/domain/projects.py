"""Project use cases: create (charge), upload parts, start (join + check the zip + queue), reset, cancel,
delete. Slow file work happens outside transactions."""

from __future__ import annotations

import hmac
import math
import secrets
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from openscancloud.domain import credit as creditrules
from openscancloud.domain.accounts import TokenView
from openscancloud.domain.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PaymentRequired,
    RateLimited,
    TooLarge,
)
from openscancloud.domain.lifecycle import ACCEPTS_UPLOADS, ACTIVE_JOB, REPROCESSABLE, ProjectStatus, check_transition
from openscancloud.domain.names import validate_project_name
from openscancloud.domain.options import ProjectOptions, parse_options
from openscancloud.domain.tokens import TokenKind, TokenStatus, priority_for
from openscancloud.domain.webhooks import check_webhook_url
from openscancloud.domain.zipcheck import ZipLimits, check_zip
from openscancloud.storage.base import PartMismatch

MAX_PARTS = 10_000
MIN_AVERAGE_PART_BYTES = 8192  # clients may cut smaller parts than the limit, but not arbitrarily small ones
UNKNOWN_PROJECT = "No project with this id (a project made with the public token also needs its X-Project-Key)."


def max_parts_for(size: int, part_limit: int) -> int:
    """How many parts a zip of `size` bytes may be cut into: near the fewest the part limit allows, or parts of
    at least 8 KiB on average (what small-chunk uploaders send) — never one part per byte."""
    fewest = math.ceil(size / part_limit)
    return max(1, min(MAX_PARTS, size, max(fewest + fewest // 10 + 1, math.ceil(size / MIN_AVERAGE_PART_BYTES))))


def _stale(started: datetime | None, now: datetime, seconds: float) -> bool:
    return started is None or started < now - timedelta(seconds=seconds)


class Projects:
    """Mixin of `CloudService` (uses its `settings`, `uow`, `storage`, `clock`)."""

    def create_project(
        self,
        token: TokenView,
        name: str | None,
        photos: Any,
        parts: Any,
        filesize: Any,
        *,
        quality: str | None = None,
        webhook_url: str | None = None,
        client_ip: str | None = None,
        masks: Any = None,
        texture_size: Any = None,
        target_faces: Any = None,
        formats: Any = None,
    ) -> tuple[Any, float]:
        """Create a project and charge it (private tokens). The public token is charged when the project is
        started (so declared-but-never-uploaded projects cannot use up everybody's daily allowance) and is
        limited per client: creates per minute, projects open for upload, their declared bytes."""
        name = validate_project_name(name)
        photos_n = _positive_int("photos", photos)
        parts_n = _positive_int("parts", parts)
        size = _positive_int("filesize", filesize)
        options = parse_options(quality=quality, masks=masks, texture_size=texture_size, target_faces=target_faces,
                                formats=formats, default_quality=self.settings.quality)
        if webhook_url:
            check_webhook_url(webhook_url, allow_private=self.settings.webhook_allow_private)
        if photos_n > token.limit_photos:
            raise TooLarge(
                f"{photos_n} photos are more than this token allows ({token.limit_photos}).", code="too_many_photos"
            )
        if size > token.limit_filesize:
            raise TooLarge(
                f"The upload of {size} bytes is larger than this token allows ({token.limit_filesize} bytes).",
                code="file_too_large",
            )
        limit = self.settings.part_limit_bytes
        min_parts, max_parts = math.ceil(size / limit), max_parts_for(size, limit)
        if parts_n < min_parts or parts_n > max_parts:
            raise InvalidInput(
                f"{parts_n} parts do not fit {size} bytes: with a part limit of {limit} bytes use between "
                f"{min_parts} and {max_parts} parts.",
                code="invalid_parts",
            )
        needed = creditrules.bytes_to_gb(size)
        public = token.kind == TokenKind.PUBLIC
        now = self.clock()
        with self.uow() as repo:
            row = repo.token_by_id(token.id, lock=True)  # serialises charges (and quota counts) of one token
            if repo.project_by_name(token.id, name) is not None:
                raise Conflict(f"A project named {name!r} already exists for this token.", code="duplicate_name")
            if public:
                self._check_public_quota(repo, token, client_ip or "unknown", size, now)
            available = self._available(repo, row)
            if not creditrules.has_credit_for(available, needed):
                raise PaymentRequired(
                    f"Not enough credit: this upload needs {needed:.3f} GB, the token has {available:.3f} GB left.",
                    credit=available,
                )
            project = repo.add_project(
                id=uuid.uuid4().hex,
                token_id=token.id,
                name=name,
                status=str(ProjectStatus.CREATED),
                photos=photos_n,
                parts=parts_n,
                filesize=size,
                quality=options.quality,
                options=options.extras_json(),
                charged_gb=0.0 if public else needed,
                keep_for_research=public,
                webhook_url=webhook_url,
                upload_expires_at=now + timedelta(seconds=self.settings.upload_link_seconds),
                project_key=secrets.token_urlsafe(24) if public else None,
                client_ip=(client_ip or "unknown")[:64],
            )
            if not public:
                repo.add_ledger(token.id, "charge", -needed, f"upload of {size} bytes", project.id)
            return project, needed

    def _check_public_quota(self, repo: Any, token: TokenView, client_ip: str, size: int, now: datetime) -> None:
        s = self.settings
        created, open_count, open_bytes = repo.client_usage(token.id, client_ip, now - timedelta(minutes=1))
        if created >= s.public_creates_per_minute:
            raise RateLimited(f"Too many projects created from your address in the last minute (at most "
                              f"{s.public_creates_per_minute}); please wait a minute.", code="too_many_creates")
        if open_count >= s.public_open_projects_per_client:
            raise RateLimited(f"Your address already has {open_count} projects waiting for uploads (at most "
                              f"{s.public_open_projects_per_client}); start or let them expire first.",
                              code="too_many_open_projects")
        if open_bytes + size > s.public_open_bytes_per_client:
            raise RateLimited(f"Your address has {open_bytes} bytes of uploads announced and not started; with "
                              f"{size} more that passes the limit of {s.public_open_bytes_per_client} bytes.",
                              code="too_many_open_bytes")

    def get_project(self, token: TokenView, name: str | None = None, project_id: str | None = None,
                    project_key: str | None = None) -> Any:
        with self.uow() as repo:
            return self._owned(repo, token, name, project_id, project_key=project_key)

    def _owned(self, repo: Any, token: TokenView, name: str | None, project_id: str | None, lock: bool = False,
               project_key: str | None = None) -> Any:
        """The project a caller may act on. By id (REST): a public-token project also needs its key, and a
        missing or wrong key looks exactly like an unknown id. By name (legacy protocol): the token's own
        namespace, as the firmware expects."""
        if project_id is not None:
            project = repo.project_by_id(project_id, lock=lock)
            if project is None:
                raise NotFound(UNKNOWN_PROJECT)
            if project.project_key is not None:
                if project.token_id != token.id or not hmac.compare_digest(
                        project.project_key.encode(), (project_key or "").encode("utf-8", "replace")):
                    raise NotFound(UNKNOWN_PROJECT)
                return project
            if project.token_id != token.id:
                # IDs are unguessable (uuid4); a clear 403 tells a user who mixed up tokens what is wrong
                raise Forbidden("This project belongs to another token.", code="not_your_project")
            return project
        name = validate_project_name(name)
        project = repo.project_by_name(token.id, name, lock=lock)
        if project is None:
            raise NotFound(f"This token has no project named {name!r}.", code="unknown_project")
        return project

    def list_projects(self, token: TokenView) -> list[Any]:
        """The token's projects. Nothing for the shared public token: its projects belong to many strangers."""
        if token.kind == TokenKind.PUBLIC:
            return []
        with self.uow() as repo:
            return list(repo.projects_of(token.id))

    def project_for_upload(self, project_id: str, generation: int, index: int) -> Any:
        """Checks before accepting bytes for a part (the link itself is already verified)."""
        with self.uow() as repo:
            project = repo.project_by_id(project_id)
            self._check_link_target(repo, project, generation, index)
            return project

    def _check_link_target(self, repo: Any, project: Any, generation: int, index: int) -> None:
        if project is None or project.upload_generation != generation:
            raise Forbidden("This upload link is no longer valid (the project was reset or deleted).",
                            code="stale_link")
        owner = repo.token_by_id(project.token_id)
        if owner is None or owner.status != TokenStatus.ACTIVE:
            raise Forbidden("This upload link is no longer valid: its token was revoked.", code="token_revoked")
        if project.status == ProjectStatus.EXPIRED:
            raise Conflict("This project expired before it was started; reset it to get new upload links.",
                           code="expired")
        if project.status not in ACCEPTS_UPLOADS:
            raise Conflict(
                f"This project is '{project.status}' and accepts no more uploads (reset it first).",
                code="not_uploading",
            )
        if not _stale(project.starting_at, self.clock(), self.settings.start_timeout_seconds):
            raise Conflict("This project is being started; it accepts no more uploads.", code="starting")
        if not 0 <= index < project.parts:
            raise NotFound(f"Part {index} does not exist: the project has {project.parts} parts.")

    def begin_part_upload(self, project_id: str, generation: int, index: int, writer: str,
                          takeover: bool = False) -> int:
        """Become the one writer of a part and return how many bytes it may have: the part limit, and never more
        than the declared filesize minus the other parts.

        A whole-part upload (`takeover`) always becomes the writer — typically the client's retry after a
        broken connection or a crashed server — and the older upload, if still running, is refused at its next
        step. A resumable `Content-Range` append appends to one shared partial file, so it gets 409 `part_busy`
        while another writer is active (until that one has been silent for `part_writer_stale_seconds`)."""
        now = self.clock()
        with self.uow() as repo:
            project = repo.project_by_id(project_id, lock=True)
            self._check_link_target(repo, project, generation, index)
            stale = now - timedelta(seconds=self.settings.part_writer_stale_seconds)
            if not repo.claim_part_writer(project_id, index, writer, now, stale, takeover):
                raise Conflict(f"Part {index} is being uploaded by another request right now; wait for it to "
                               "finish or fail, then try again.", code="part_busy")
            others = sum(p.size for p in repo.parts_of(project_id) if p.index != index)
            return max(0, min(self.settings.part_limit_bytes, project.filesize - others))

    def touch_part_upload(self, project_id: str, index: int, writer: str) -> bool:
        """Keep the writer claim fresh while bytes flow; False if another writer took over a stale claim."""
        with self.uow() as repo:
            return repo.touch_part_writer(project_id, index, writer, self.clock())

    def end_part_upload(self, project_id: str, index: int, writer: str) -> None:
        with self.uow() as repo:
            repo.release_part_writer(project_id, index, writer)

    def record_part(self, project_id: str, generation: int, index: int, size: int, sha256: str,
                    writer: str | None = None) -> None:
        """Record a complete part. `writer`: the upload's claim, which must still be its own (a stalled upload
        whose claim another request took over is not recorded)."""
        with self.uow() as repo:
            project = repo.project_by_id(project_id, lock=True)
            if project is None or project.upload_generation != generation or project.status not in ACCEPTS_UPLOADS:
                raise Conflict("The project changed while this part was uploading; the part was not kept.",
                               code="not_uploading")
            if writer is not None and not repo.touch_part_writer(project_id, index, writer, self.clock()):
                raise Conflict("Another upload of this part took over; this one was not kept.", code="part_busy")
            others = sum(p.size for p in repo.parts_of(project_id) if p.index != index)
            if others + size > project.filesize:
                raise TooLarge(f"With this part the upload would be {others + size} bytes, more than the "
                               f"{project.filesize} bytes declared when the project was created.",
                               code="larger_than_declared")
            repo.save_part(project_id, index, size, sha256)
            if project.status == ProjectStatus.CREATED:
                project.status = str(ProjectStatus.UPLOADING)

    def presign_part(self, token: TokenView, project_id: str, index: int,
                     project_key: str | None = None) -> tuple[str, datetime]:
        """A presigned S3 PUT URL for one part (object storage only). It expires with the project's upload
        links, so the 4 h rule holds for direct uploads too."""
        presign = getattr(self.storage, "presign_part_put", None)
        if presign is None:
            raise Conflict("This server keeps uploads on its own disk: use the part's upload link (ulink).",
                           code="presign_unavailable")
        with self.uow() as repo:
            project = self._owned(repo, token, None, project_id, project_key=project_key)
            self._check_uploadable(project, index)
            generation, expires = project.upload_generation, project.upload_expires_at
        seconds = int((expires - self.clock()).total_seconds())
        if seconds <= 0:
            raise Conflict("The upload links of this project expired; reset it.", code="expired")
        return presign(project_id, index, generation, min(seconds, 7 * 24 * 3600)), expires

    def adopt_presigned_part(self, token: TokenView, project_id: str, index: int,
                             project_key: str | None = None) -> Any:
        """After a presigned PUT: check the object (size limit), compute its sha256, record the part."""
        adopt = getattr(self.storage, "adopt_presigned_part", None)
        if adopt is None:
            raise Conflict("This server keeps uploads on its own disk: use the part's upload link (ulink).",
                           code="presign_unavailable")
        with self.uow() as repo:
            project = self._owned(repo, token, None, project_id, project_key=project_key)
            self._check_uploadable(project, index)
            generation = project.upload_generation
            others = sum(p.size for p in repo.parts_of(project_id) if p.index != index)
            allowance = max(0, min(self.settings.part_limit_bytes, project.filesize - others))
        try:
            part = adopt(project_id, index, generation, allowance)
        except Exception as exc:
            if type(exc).__name__ == "PartTooLarge":
                raise TooLarge(f"This part may be at most {allowance} bytes (the part limit, and what is left of "
                               "the declared filesize); the uploaded object was deleted.",
                               code="part_too_large") from None
            raise
        if part is None:
            raise Conflict(f"Part {index} was not uploaded to the presigned URL (or was already adopted).",
                           code="part_not_uploaded")
        self.record_part(project_id, generation, index, part.size, part.sha256)
        return part

    def _check_uploadable(self, project: Any, index: int) -> None:
        if project.status not in ACCEPTS_UPLOADS:
            raise Conflict(f"This project is '{project.status}' and accepts no more uploads (reset it first).",
                           code="not_uploading")
        if not 0 <= index < project.parts:
            raise NotFound(f"Part {index} does not exist: the project has {project.parts} parts.")

    def parts_info(self, project: Any, offset: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Every part (or parts offset .. offset+limit-1): size received, complete, sha256."""
        with self.uow() as repo:
            done = {p.index: p for p in repo.parts_of(project.id)}
        result = []
        end = project.parts if limit is None else min(project.parts, offset + limit)
        for i in range(offset, end):
            if i in done:
                result.append({"index": i, "size": done[i].size, "complete": True, "sha256": done[i].sha256})
            else:
                offset = 0
                if project.status in ACCEPTS_UPLOADS:
                    offset, _ = self.storage.part_offset(project.id, i)
                result.append({"index": i, "size": offset, "complete": False, "sha256": None})
        return result

    def start_project(self, token: TokenView, name: str | None = None, project_id: str | None = None,
                      project_key: str | None = None) -> Any:
        """Join the parts, check the zip, queue the job. Exactly one request does this: it marks the project
        `starting` first, and every other start (or reset, cancel, delete, upload) meanwhile answers 409 and
        touches nothing — so a lost race can never delete the winner's input."""
        now = self.clock()
        with self.uow() as repo:
            project = self._owned(repo, token, name, project_id, lock=True, project_key=project_key)
            self._check_not_starting(project, now)
            self._check_startable(repo, project)
            stale = now - timedelta(seconds=self.settings.part_writer_stale_seconds)
            if repo.part_writers_active(project.id, stale):
                raise Conflict("A part of this project is still being uploaded; start it when the upload has "
                               "finished.", code="upload_in_progress")
            expected = [(p.size, p.sha256) for p in repo.parts_of(project.id)]
            project.starting_at = now
            pid, nparts = project.id, project.parts
        try:
            # Slow part, outside any transaction: join the parts (each checked against what was recorded for
            # it) and look inside the zip.
            try:
                self.storage.assemble_input(pid, nparts, expected)
            except PartMismatch as exc:
                raise Conflict(f"Part {exc.index} on the server is not the part that was recorded; upload it "
                               "again.", code="part_mismatch", part=exc.index) from None
            try:
                with self.storage.local_input(pid) as local:
                    summary = check_zip(
                        Path(local),
                        ZipLimits(self.settings.zip_max_entries, self.settings.zip_max_uncompressed_bytes,
                                  self.settings.zip_max_ratio),
                        token.limit_photos,
                    )
                project = self._queue(token, pid, summary.images)
            except Exception:
                self.storage.delete_input(pid)
                raise
        except BaseException:
            with self.uow() as repo:
                row = repo.project_by_id(pid, lock=True)
                if row is not None:
                    row.starting_at = None
            raise
        self.storage.delete_parts(pid)
        return project

    def _check_not_starting(self, project: Any, now: datetime) -> None:
        if not _stale(project.starting_at, now, self.settings.start_timeout_seconds):
            raise Conflict("This project is being started right now; try again in a moment.", code="starting")

    def _queue(self, token: TokenView, pid: str, images: int) -> Any:
        """Second half of `start_project`: settle credit and insert the job (one transaction)."""
        now = self.clock()
        with self.uow() as repo:
            project = repo.project_by_id(pid, lock=True)
            self._check_startable(repo, project)
            check_transition(project.status, ProjectStatus.QUEUED)
            row = repo.token_by_id(token.id, lock=True)
            needed = creditrules.bytes_to_gb(project.filesize)
            if project.charged_gb + 1e-9 < needed:  # e.g. after a reset gave the credit back
                missing = round(needed - project.charged_gb, 9)
                available = self._available(repo, row)
                if not creditrules.has_credit_for(available, missing):
                    raise PaymentRequired(
                        f"Not enough credit to start: {missing:.3f} GB needed, {available:.3f} GB left.",
                        credit=available,
                    )
                repo.add_ledger(token.id, "charge", -missing, "charge at start", pid)
                project.charged_gb = needed
            project.status = str(ProjectStatus.QUEUED)
            project.photos = images
            project.queued_at = now
            project.error = None
            project.starting_at = None
            repo.add_job(
                id=uuid.uuid4().hex,
                project_id=pid,
                status="queued",
                priority=priority_for(token.kind),
                quality=project.quality,
                attempt=0,
                max_attempts=self.settings.max_attempts,
                queued_at=now,
            )
            repo.delete_parts(pid)
            return project

    def _check_startable(self, repo: Any, project: Any) -> None:
        if project.status in ACTIVE_JOB:
            raise Conflict("This project is already started.", code="already_started")
        if project.status not in ACCEPTS_UPLOADS:
            raise Conflict(
                f"This project is '{project.status}' and cannot be started again (reset it first).",
                code="invalid_state",
            )
        have = {p.index: p.size for p in repo.parts_of(project.id)}
        missing = [i for i in range(project.parts) if i not in have]
        if missing:
            raise Conflict(
                f"Parts {', '.join(map(str, missing))} are missing; upload them before starting.",
                code="missing_parts",
                missing_parts=missing,
            )
        total = sum(have.values())
        if total != project.filesize:
            raise Conflict(
                f"The parts add up to {total} bytes but the project was created with filesize {project.filesize}.",
                code="size_mismatch",
                received=total,
            )

    def _refund_unused(self, repo: Any, project: Any, reason: str) -> float:
        amount = round(project.charged_gb or 0.0, 9)
        if amount > 0:
            repo.add_ledger(project.token_id, "refund", amount, reason, project.id)
        project.charged_gb = 0.0
        return amount

    def _stop_job(self, repo: Any, project: Any, now: datetime) -> None:
        job = repo.latest_job(project.id)
        if job is not None and job.status in ("queued", "running"):
            job.cancel_requested = True
            job.status = "cancelled"
            job.finished_at = now

    def reset_project(self, token: TokenView, name: str | None = None, project_id: str | None = None,
                      project_key: str | None = None) -> tuple[Any, float]:
        now = self.clock()
        with self.uow() as repo:
            project = self._owned(repo, token, name, project_id, lock=True, project_key=project_key)
            self._check_not_starting(project, now)
            used = project.status == ProjectStatus.DONE or (
                project.status == ProjectStatus.FAILED and (self._last_failure_was_user(repo, project))
            )
            self._stop_job(repo, project, now)
            refunded = 0.0 if used else self._refund_unused(repo, project, "reset")
            if used:
                project.charged_gb = 0.0
            repo.delete_parts(project.id)
            project.status = str(ProjectStatus.CREATED)
            project.upload_generation += 1
            project.starting_at = None
            project.upload_expires_at = now + timedelta(seconds=self.settings.upload_link_seconds)
            project.error = None
            project.queued_at = project.started_at = project.finished_at = None
            project.result_size = project.result_sha256 = None
            project.delete_after = None
        self.storage.delete_project(project.id)
        return project, refunded

    def reprocess_project(self, token: TokenView, project_id: str, options: ProjectOptions,
                          project_key: str | None = None) -> Any:
        """Run a finished, failed or cancelled project again with (other) options, from the photos the server
        still holds: no new upload. A new run costs the upload's credit again (the work is the same as the first
        run); a server-side failure refunds it as usual. The previous result is replaced."""
        now = self.clock()
        with self.uow() as repo:
            project = self._owned(repo, token, None, project_id, lock=True, project_key=project_key)
            if project.status not in REPROCESSABLE:
                raise Conflict(f"This project is '{project.status}'; only a done, failed or cancelled project can be "
                               "processed again.", code="invalid_state")
            if project.data_deleted or self.storage.input_size(project.id) is None:
                raise Conflict("The photos of this project are no longer on the server; upload them again "
                               "(reset the project).", code="input_gone")
            row = repo.token_by_id(token.id, lock=True)
            needed = creditrules.bytes_to_gb(project.filesize)
            available = self._available(repo, row)
            if not creditrules.has_credit_for(available, needed):
                raise PaymentRequired(
                    f"Not enough credit to process again: {needed:.3f} GB needed, {available:.3f} GB left.",
                    credit=available,
                )
            repo.add_ledger(token.id, "charge", -needed, "processing again with other options", project.id)
            project.charged_gb = needed
            project.quality = options.quality
            project.options = options.extras_json()
            project.status = str(ProjectStatus.QUEUED)
            project.queued_at, project.started_at, project.finished_at = now, None, None
            project.error = None
            project.result_size = project.result_sha256 = None
            project.delete_after = None
            project.upload_generation += 1  # links to the old result never serve the new one
            repo.add_job(
                id=uuid.uuid4().hex, project_id=project.id, status="queued", priority=priority_for(token.kind),
                quality=options.quality, attempt=0, max_attempts=self.settings.max_attempts, queued_at=now,
            )
        self.storage.delete_result(project.id)
        return project

    def _last_failure_was_user(self, repo: Any, project: Any) -> bool:
        job = repo.latest_job(project.id)
        return bool(job and job.user_error)

    def cancel_project(self, token: TokenView, name: str | None = None, project_id: str | None = None,
                       project_key: str | None = None) -> Any:
        now = self.clock()
        with self.uow() as repo:
            project = self._owned(repo, token, name, project_id, lock=True, project_key=project_key)
            self._check_not_starting(project, now)
            if project.status not in (*ACCEPTS_UPLOADS, *ACTIVE_JOB):
                raise Conflict(f"This project is '{project.status}'; there is nothing to cancel.", code="invalid_state")
            self._stop_job(repo, project, now)
            self._refund_unused(repo, project, "cancelled")
            project.status = str(ProjectStatus.CANCELLED)
            project.finished_at = now
            project.delete_after = now + timedelta(days=self.settings.retention_days)
            repo.delete_parts(project.id)
        self.storage.delete_parts(project.id)
        return project

    def delete_project(self, token: TokenView, project_id: str, project_key: str | None = None) -> None:
        now = self.clock()
        with self.uow() as repo:
            project = self._owned(repo, token, None, project_id, lock=True, project_key=project_key)
            self._check_not_starting(project, now)
            if project.status in (*ACCEPTS_UPLOADS, *ACTIVE_JOB):
                self._stop_job(repo, project, now)
                self._refund_unused(repo, project, "deleted")
            repo.delete_project(project)
        self.storage.delete_project(project_id)


def _positive_int(name: str, value: Any) -> int:
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        raise InvalidInput(f"Parameter '{name}' must be a whole number (got {value!r}).", code=f"invalid_{name}") from None
    if n < 1:
        raise InvalidInput(f"Parameter '{name}' must be at least 1.", code=f"invalid_{name}")
    return n


