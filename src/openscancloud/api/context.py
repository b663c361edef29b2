"""Everything a request handler needs, built once per app by `create_app` and stored on `app.state`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request

from openscancloud.db.database import Database
from openscancloud.domain.service import CloudService
from openscancloud.domain.signing import Signer
from openscancloud.jobs.maintenance import Maintenance
from openscancloud.jobs.queue import JobQueue
from openscancloud.notify.notifier import Notifier
from openscancloud.settings import Settings
from openscancloud.storage.base import Storage


@dataclass
class AppContext:
    settings: Settings
    db: Database
    storage: Storage
    service: CloudService
    queue: JobQueue
    signer: Signer
    notifier: Notifier
    maintenance: Maintenance
    poller: Any = None  # api.poll.ProjectPoller (built by create_app's build_context)


def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
