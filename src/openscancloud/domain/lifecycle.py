"""Project lifecycle: created → uploading → queued → processing → done | failed | cancelled | expired.
`reset` brings any state back to created (with fresh upload links)."""

from __future__ import annotations

from enum import StrEnum

from openscancloud.domain.errors import Conflict


class ProjectStatus(StrEnum):
    CREATED = "created"
    UPLOADING = "uploading"
    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


S = ProjectStatus
TERMINAL = {S.DONE, S.FAILED, S.CANCELLED, S.EXPIRED}
ACCEPTS_UPLOADS = {S.CREATED, S.UPLOADING}
ACTIVE_JOB = {S.QUEUED, S.PROCESSING}
REPROCESSABLE = {S.DONE, S.FAILED, S.CANCELLED}  # run again from the photos kept on the server

_ALLOWED: dict[ProjectStatus, set[ProjectStatus]] = {
    S.CREATED: {S.UPLOADING, S.QUEUED, S.EXPIRED, S.CANCELLED},
    S.UPLOADING: {S.QUEUED, S.EXPIRED, S.CANCELLED},
    S.QUEUED: {S.PROCESSING, S.CANCELLED, S.FAILED, S.DONE},
    S.PROCESSING: {S.DONE, S.FAILED, S.CANCELLED, S.QUEUED},  # back to queued when a lease expires
    S.DONE: {S.QUEUED},  # reprocess
    S.FAILED: {S.QUEUED},  # reprocess
    S.CANCELLED: {S.QUEUED},  # reprocess
    S.EXPIRED: set(),
}


def can_transition(current: str, new: str) -> bool:
    if new == S.CREATED:  # reset
        return True
    return ProjectStatus(new) in _ALLOWED[ProjectStatus(current)]


def check_transition(current: str, new: str) -> None:
    if not can_transition(current, new):
        raise Conflict(f"A project that is '{current}' cannot become '{new}'.", code="invalid_state", status=409)


def is_finished_alias(status: str) -> bool:
    return status in {"done", "finished", "complete", "processing done"}
