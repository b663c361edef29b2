"""Share links: a read-only view of one finished project (viewer, preview, files) for people without a token.

A link names a share row (random id) and carries an HMAC of it, so it can be neither guessed nor forged; the
owner revokes it by marking the row, which every request checks. Reprocessing or deleting the project ends
what a link shows together with the project.
"""

from __future__ import annotations

import uuid
from typing import Any

from openscancloud.domain.accounts import TokenView
from openscancloud.domain.errors import Conflict, NotFound
from openscancloud.domain.lifecycle import ProjectStatus

MAX_SHARES_PER_PROJECT = 20


class Sharing:
    """Mixin of `CloudService` (uses its `uow`, `clock` and `Projects._owned`)."""

    def create_share(self, token: TokenView, project_id: str, project_key: str | None = None) -> Any:
        with self.uow() as repo:
            project = self._owned(repo, token, None, project_id, lock=True, project_key=project_key)
            if project.status != ProjectStatus.DONE or project.data_deleted:
                raise Conflict("Only a finished project with its model still on the server can be shared.",
                               code="not_shareable")
            active = [s for s in repo.shares_of(project.id) if s.revoked_at is None]
            if len(active) >= MAX_SHARES_PER_PROJECT:
                raise Conflict(f"This project already has {len(active)} active share links; revoke one first.",
                               code="too_many_shares")
            return repo.add_share(id=uuid.uuid4().hex, project_id=project.id)

    def list_shares(self, token: TokenView, project_id: str, project_key: str | None = None) -> list[Any]:
        with self.uow() as repo:
            project = self._owned(repo, token, None, project_id, project_key=project_key)
            return list(repo.shares_of(project.id))

    def revoke_share(self, token: TokenView, project_id: str, share_id: str,
                     project_key: str | None = None) -> Any:
        with self.uow() as repo:
            project = self._owned(repo, token, None, project_id, project_key=project_key)
            share = repo.share_by_id(share_id)
            if share is None or share.project_id != project.id:
                raise NotFound("This project has no share link with this id.", code="unknown_share")
            if share.revoked_at is None:
                share.revoked_at = self.clock()
            return share

    def shared_project(self, share_id: str) -> Any:
        """The project a (signature-checked) share link shows; 404 once revoked or no longer viewable."""
        with self.uow() as repo:
            share = repo.share_by_id(share_id)
            if share is None or share.revoked_at is not None:
                raise NotFound("This share link was revoked or never existed.", code="share_revoked")
            project = repo.project_by_id(share.project_id)
            if project is None or project.status != ProjectStatus.DONE or project.data_deleted:
                raise NotFound("The shared model is no longer available (it was reprocessed or deleted).",
                               code="share_unavailable")
            return project
