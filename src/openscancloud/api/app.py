"""`create_app(settings)`: the FastAPI application factory. It wires settings → database (migrated to the
newest schema) → storage → domain service / job queue → HTTP routers, and starts the periodic maintenance
task of this process. No module-level state: several processes can serve the same database and data dir."""

from __future__ import annotations

import asyncio
import calendar
import contextlib
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI

from openscancloud import __version__
from openscancloud.api import downloads, errors, legacy, openapi_docs, results, uploads, webapp, worker_api
from openscancloud.api.context import AppContext
from openscancloud.api.fastlane import PollFastLane
from openscancloud.api.poll import ProjectPoller
from openscancloud.api.limits import RequestLimits
from openscancloud.api.v1 import admin as v1_admin
from openscancloud.api.v1 import projects as v1_projects
from openscancloud.db.database import Database
from openscancloud.db.poll import make_reader
from openscancloud.db.repository import unit_of_work
from openscancloud.domain.service import CloudService
from openscancloud.domain.signing import Signer
from openscancloud.jobs.maintenance import Maintenance
from openscancloud.jobs.queue import JobQueue
from openscancloud.notify.notifier import Notifier
from openscancloud.settings import Settings
from openscancloud.storage import make_storage


class OpenScanCloudApp(FastAPI):
    """FastAPI with the polling fast lane (`api.fastlane`) in front of its middleware chain and router: the two
    polled GETs are answered before any of it runs; everything else takes the usual way."""

    fast_lane: PollFastLane | None = None

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if self.fast_lane is not None:
            await self.fast_lane(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def build_context(settings: Settings) -> AppContext:
    """Everything except HTTP; also used by the admin CLI (`tokens ...`)."""
    settings.ensure_data_dir()
    db = Database(settings.db_url)
    db.upgrade()
    storage = make_storage(settings)
    secret = settings.signing_key()
    notifier = Notifier(settings, secret)
    uow = unit_of_work(db)
    service = CloudService(settings=settings, uow=uow, storage=storage, secret=secret, on_event=notifier)
    queue = JobQueue(settings=settings, uow=uow, storage=storage, on_event=notifier)
    ctx = AppContext(
        settings=settings, db=db, storage=storage, service=service, queue=queue,
        signer=Signer(secret, clock=lambda: calendar.timegm(service.clock().timetuple())),
        notifier=notifier, maintenance=Maintenance(service, queue, exclusive=lambda: db.exclusive("maintenance")),
    )
    ctx.poller = ProjectPoller(ctx, make_reader(settings.db_url, settings.poll_read_connections))
    return ctx


def create_app(settings: Settings, *, maintenance: bool = True) -> FastAPI:
    ctx = build_context(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = None
        if maintenance and settings.maintenance_interval_seconds > 0:
            task = asyncio.create_task(ctx.maintenance.run_forever(settings.maintenance_interval_seconds))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            ctx.poller.close()
            ctx.db.dispose()

    app = OpenScanCloudApp(
        title="OpenScan Cloud",
        version=__version__,
        description="Photos in, textured 3D model out. Legacy OpenScan Cloud protocol + REST API v1.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.fast_lane = PollFastLane(super(OpenScanCloudApp, app).__call__, ctx)
    app.add_middleware(RequestLimits, settings=settings)
    errors.install(app)
    app.include_router(legacy.router)
    app.include_router(uploads.router)
    app.include_router(downloads.router)
    app.include_router(results.router)
    app.include_router(worker_api.router)
    app.include_router(worker_api.files_router)
    app.include_router(v1_projects.router)
    app.include_router(v1_admin.router)
    root = webapp.web_dir()
    openapi_docs.install(app, root)
    webapp.install(app, root)
    return app


def app_from_environment() -> FastAPI:
    """The app with settings from the `OPENSCAN_*` environment, for several API processes on one port:
    `uvicorn --factory openscancloud.api.app:app_from_environment --workers 2` (no built-in processing worker;
    run `openscan-cloud worker` beside it)."""
    return create_app(Settings())
