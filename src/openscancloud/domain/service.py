"""The OpenScan Cloud use cases, shared by the legacy protocol and REST v1 (so every rule exists once).

`CloudService` combines three parts: `Accounts` (tokens, credit), `Projects` (create/upload/start/reset/...)
and `Reporting` (project view, queue estimate, status). Each method is one short transaction through the
`UnitOfWork`; methods raise `DomainError`s carrying a sentence a person understands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from openscancloud.domain.accounts import Accounts, TokenView
from openscancloud.domain.ports import UnitOfWork
from openscancloud.domain.options import QUALITIES
from openscancloud.domain.projects import Projects
from openscancloud.domain.reporting import Reporting
from openscancloud.domain.sharing import Sharing
from openscancloud.settings import Settings
from openscancloud.storage.base import Storage

__all__ = ["CloudService", "Event", "TokenView", "QUALITIES"]


@dataclass
class Event:
    """Something to tell the outside world after a transaction committed (email, webhook)."""

    kind: str  # project_done | project_failed
    project: dict[str, Any]
    email: str | None
    webhook_url: str | None


@dataclass
class CloudService(Accounts, Projects, Reporting, Sharing):
    settings: Settings
    uow: UnitOfWork
    storage: Storage
    secret: bytes
    clock: Callable[[], datetime] = field(default=None)  # type: ignore[assignment]
    on_event: Callable[[Event], None] = field(default=lambda event: None)

    def __post_init__(self) -> None:
        if self.clock is None:
            from openscancloud.db.models import utcnow

            self.clock = utcnow
