"""`Client`: the OpenScan Cloud SDK — token info, create, upload (resumable), start, wait, download.

By default it speaks the legacy OpenScan Cloud protocol (GET with query parameters and HTTP Basic
`openscan`/`free`), the one the scanner firmware uses, so it works against this server and the original service
alike; `api="v1"` uses the REST API instead (see `apis.py`). It is a separate program from the server: it only
speaks HTTP.

    with Client("http://127.0.0.1:8000", token) as client:
        client.upload("photos/")          # zip, check limits, create, upload parts (resumable)
        client.start()
        client.wait()
        client.download("results/")
"""

from __future__ import annotations

import re
import threading
import time
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urljoin

import httpx

from openscancloud.client.apis import LegacyApi, ServerApi, V1Api
from openscancloud.client.archive import PhotoSet, UploadPlan, build_zip, part_count, plan_parts, scan_source
from openscancloud.client.config import DEFAULT_BASIC_AUTH, ClientPaths
from openscancloud.client.errors import (
    ClientError,
    ConnectionFailed,
    InputError,
    LimitExceeded,
    LinkExpired,
    NotEnoughCredit,
    ProjectExists,
    ProjectFailed,
    ProjectNotFound,
    ProjectNotReady,
    UploadCancelled,
    WaitTimeout,
)
from openscancloud.client.models import (
    ProcessingOptions,
    CreatedProject,
    DownloadProgress,
    ProjectInfo,
    QueueEstimate,
    ServerStatus,
    TokenInfo,
    UploadProgress,
    UploadResult,
)
from openscancloud.client.state import ProjectKeys, ProjectRecord, StateStore, normalise_server
from openscancloud.client.transport import RetryPolicy, error_from_response
from openscancloud.client.uploader import DEFAULT_CHUNK_SIZE, PartUploader

DEFAULT_PART_SIZE = 200_000_000
PROJECT_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
#: Statuses in which the project still accepts parts.
UPLOADABLE_STATUSES = frozenset({"created", "uploading"})

ProgressCallback = Callable[[UploadProgress], None]


def default_project_name(source: Path) -> str:
    """`<folder or zip name>-<milliseconds>`, like the firmware's `<name>-<ms>`, restricted to safe characters."""
    stem = source.stem if source.suffix.lower() == ".zip" else source.name
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._")[:100] or "photos"
    return f"{safe}-{int(time.time() * 1000)}"


def check_project_name(name: str) -> str:
    if not PROJECT_NAME.match(name):
        raise InputError(
            f"The project name {name!r} is not allowed: use 1–128 letters, digits, dots, dashes or underscores."
        )
    return name


def check_limits(photos: PhotoSet, size: int, info: TokenInfo) -> None:
    """Refuse before uploading anything what the server would refuse after: too many photos, too big, no credit."""
    if info.limit_photos and photos.photo_count > info.limit_photos:
        raise LimitExceeded(
            f"This set has {photos.photo_count} photos but your token allows at most {info.limit_photos}."
        )
    if info.limit_filesize and size > info.limit_filesize:
        raise LimitExceeded(
            f"The upload is {size / 1e6:,.1f} MB but your token allows at most {info.limit_filesize / 1e6:,.1f} MB."
        )
    if size / 1e9 > info.credit_gb + 1e-9:
        raise NotEnoughCredit(
            f"The upload needs {size / 1e9:.3f} GB of credit but your token has {info.credit_gb:.3f} GB left."
        )


class Client:
    """One server + one token. Methods that take `project=None` use the project of the last upload/create."""

    def __init__(
        self,
        server: str,
        token: str,
        *,
        basic_auth: tuple[str, str] | None = DEFAULT_BASIC_AUTH,
        part_size: int = DEFAULT_PART_SIZE,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
        paths: ClientPaths | None = None,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        api: str = "legacy",
    ) -> None:
        if not server:
            raise InputError("No server given: pass --server URL or set OPENSCAN_SERVER.")
        if not token:
            raise InputError("No token given: pass --token TOKEN or set OPENSCAN_TOKEN.")
        self.server = normalise_server(server)
        self.token = token
        self.basic_auth = basic_auth
        self.part_size = part_size
        self.chunk_size = chunk_size
        self.retry = retry or RetryPolicy()
        self.paths = paths or ClientPaths.default()
        self.store = StateStore(self.paths.state_dir)
        self.project: str | None = None
        self._sleep = sleep
        self._owns_http = http is None
        self.http = http or httpx.Client(
            timeout=httpx.Timeout(timeout, connect=10.0),
            follow_redirects=True,
            headers={"User-Agent": "openscan-cloud-client/0.1"},
        )
        # cancel / delete / reprocess exist only in REST v1, which takes the same token
        self.rest = V1Api(self.http, self.server, token, self.retry, sleep, keys=ProjectKeys(self.paths.state_dir))
        if api == "legacy":
            self.api: ServerApi = LegacyApi(self.http, self.server, token, basic_auth, self.retry, sleep)
        elif api == "v1":
            self.api = self.rest
        else:
            raise InputError(f"Unknown API {api!r}: use 'legacy' or 'v1'.")

    # -- lifecycle --------------------------------------------------------------------------------------------

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- legacy endpoints -------------------------------------------------------------------------------------

    def _absolute(self, link: str) -> str:
        return urljoin(self.server + "/", link)

    def _name(self, project: str | None) -> str:
        name = project or self.project
        if not name:
            raise InputError("No project given, and no project was uploaded or created with this client yet.")
        return name

    def status(self) -> ServerStatus:
        """`/status`: is the server up, its version, queue length and workers online (no token needed)."""
        return ServerStatus.from_json(self.api.status())

    def token_info(self) -> TokenInfo:
        return TokenInfo.from_json(self.api.token_info())

    def queue_estimate(self) -> QueueEstimate:
        return QueueEstimate.from_json(self.api.queue_estimate())

    def create_project(self, project: str, *, photos: int, parts: int, filesize: int,
                       options: ProcessingOptions | None = None) -> CreatedProject:
        """Create a project; `options` (quality, masks, texture size, face budget, formats) are checked by the
        server before any byte is uploaded."""
        check_project_name(project)
        data = self.api.create(project, photos, parts, filesize, options.to_json() if options else None)
        links = data.get("ulink") or []
        if isinstance(links, str):
            links = [links]
        if len(links) != parts:
            raise ClientError(f"The server returned {len(links)} upload links for {parts} parts.")
        self.project = project
        credit = data.get("credit")
        return CreatedProject(project, [self._absolute(u) for u in links],
                              None if credit is None else float(credit), data)

    def project_info(self, project: str | None = None) -> ProjectInfo:
        name = self._name(project)
        info = ProjectInfo.from_json(name, self.api.info(name))
        if info.status not in UPLOADABLE_STATUSES:  # keep this machine's project list current
            self._update_record(name, status=info.status, progress=info.progress, stage=info.stage, error=info.error)
        return replace(
            info,
            ulinks=[self._absolute(u) for u in info.ulinks],
            dlink=self._absolute(info.dlink) if info.dlink else None,
        )

    def start(self, project: str | None = None) -> dict:
        name = self._name(project)
        data = self.api.start(name)
        record = self.store.load(self.server, self.token, name)
        if record is not None:
            record.status = "started"
            self.store.save(record)
            if record.zip_is_cache:  # the server holds the zip now; free the disk space
                Path(record.zip_path).unlink(missing_ok=True)
        return data

    def reset(self, project: str | None = None) -> dict:
        """Cancel processing, delete uploaded parts and results; the project returns to `created`."""
        name = self._name(project)
        data = self.api.reset(name)
        self._update_record(name, status="created")
        return data

    def cancel(self, project: str | None = None) -> ProjectInfo:
        """Stop processing (or the upload); unused credit is returned."""
        name = self._name(project)
        data = self.rest.cancel(name)
        self._update_record(name, status="cancelled")
        return ProjectInfo.from_json(name, data)

    def delete(self, project: str | None = None) -> None:
        """Delete the project and everything of it on the server (photos, result)."""
        name = self._name(project)
        self.rest.delete(name)
        self.forget(name)

    def reprocess(self, project: str | None = None, options: ProcessingOptions | None = None) -> ProjectInfo:
        """Process a done, failed or cancelled project again with other options from the photos the server
        kept: nothing is uploaded again."""
        name = self._name(project)
        data = self.rest.reprocess(name, (options or ProcessingOptions()).to_json())
        self._update_record(name, status="queued")
        return ProjectInfo.from_json(name, data)

    def logs(self, project: str | None = None) -> str:
        """The last lines the worker reported for the project's latest run (empty before it started)."""
        return str(self.project_info(project).raw.get("log_tail") or "")

    def _update_record(self, name: str, **changes: Any) -> None:
        record = self.store.load(self.server, self.token, name)
        if record is not None:
            for key, value in changes.items():
                setattr(record, key, value)
            self.store.save(record)

    # -- upload -----------------------------------------------------------------------------------------------

    def upload(
        self,
        source: str | Path,
        project: str | None = None,
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        options: ProcessingOptions | None = None,
    ) -> UploadResult:
        """Upload a folder of images or a zip as `project` (default: continue an unfinished upload of the same
        source, or a new name). Safe to call again after any failure or a killed process: it continues.
        `options` apply when the project is created (a continued upload keeps the options it was created with)."""
        report = progress or (lambda _p: None)
        report(UploadProgress("scanning", 0, 0))
        photos = scan_source(source)
        if project:
            check_project_name(project)
            record = self.store.load(self.server, self.token, project)
            if record is not None and record.source != str(photos.source):
                raise ProjectExists(
                    f"The project {project} was uploaded from {record.source} on this machine, not from "
                    f"{photos.source}; choose another project name."
                )
        else:
            record = self.store.unfinished_for_source(self.server, self.token, photos.source)
        name = project or (record.project if record else default_project_name(photos.source))
        self.project = name

        remote: ProjectInfo | None = None
        if record is not None or project:
            try:
                remote = self.project_info(name)
            except ProjectNotFound:
                remote = None
        if remote is not None and record is not None and remote.status not in UPLOADABLE_STATUSES:
            # Uploaded and started by an earlier run on this machine: nothing to send (and no zip to rebuild).
            return UploadResult(name, record.photos, record.size, record.sha256, len(record.parts), True,
                                len(record.parts), server_status=remote.status)
        token_info: TokenInfo | None = None
        if remote is None:  # a new upload: refuse early, before zipping gigabytes (the images are a lower bound)
            token_info = self.token_info()
            check_limits(photos, photos.total_bytes, token_info)
        part_size = self.part_size
        if token_info is not None and token_info.part_limit:
            part_size = min(part_size, token_info.part_limit)  # never larger than the server accepts
        plan = self._plan(photos, name, record, report, part_size)
        if remote is None:
            check_limits(photos, plan.size, token_info or self.token_info())
            record = ProjectRecord.from_plan(
                server=self.server, token=self.token, project=name, source=photos.source, plan=plan,
                photos=photos.photo_count, zip_is_cache=not photos.is_zip,
            )
            self.store.save(record)
            try:
                created = self.create_project(name, photos=photos.photo_count, parts=len(plan.parts),
                                              filesize=plan.size, options=options)
            except ProjectExists:
                # A retried createProject may have succeeded the first time; continue only if it is ours.
                remote = self.project_info(name)
            else:
                remote = ProjectInfo(name, "created", 0.0, None, None, None, None, created.ulinks,
                                     photos.photo_count, [], created.raw)
                record.status = "created"
                self.store.save(record)
                return self._upload_parts(plan, remote, record, photos, resumed=False, report=report, cancel=cancel)
        if record is None:
            record = ProjectRecord.from_plan(
                server=self.server, token=self.token, project=name, source=photos.source, plan=plan,
                photos=photos.photo_count, zip_is_cache=not photos.is_zip,
            )
        self._check_same_upload(remote, plan)
        if remote.status not in UPLOADABLE_STATUSES:
            # Already uploaded and started (e.g. killed after start): nothing to send.
            record.status = remote.status
            self.store.save(record)
            return UploadResult(name, photos.photo_count, plan.size, plan.sha256, len(plan.parts), True,
                                len(plan.parts), server_status=remote.status)
        return self._upload_parts(plan, remote, record, photos, resumed=True, report=report, cancel=cancel)

    def _plan(
        self, photos: PhotoSet, name: str, record: ProjectRecord | None, report: ProgressCallback, part_size: int
    ) -> UploadPlan:
        """The zip and its parts: reused from the local record when still valid, else built and hashed."""
        if record is not None:
            plan = record.plan()
            if plan.zip_path.is_file() and plan.zip_path.stat().st_size == plan.size:
                return plan
        if photos.is_zip:
            zip_path = photos.source
        else:
            zip_path = self.paths.cache_dir / "uploads" / f"{name}.zip"
            build_zip(photos, zip_path,
                      progress=lambda done, total: report(UploadProgress("zipping", done, total)))
        part_size = record.part_size if record is not None else part_size
        plan = plan_parts(zip_path, part_size,
                          progress=lambda done, total: report(UploadProgress("hashing", done, total)))
        if record is not None and plan.sha256 != record.sha256:
            raise ProjectExists(
                f"The photos in {photos.source} changed since the upload of {name} began; "
                "upload them as a new project (choose another name)."
            )
        return plan

    def _check_same_upload(self, remote: ProjectInfo, plan: UploadPlan) -> None:
        filesize = remote.raw.get("filesize")
        parts_expected = remote.raw.get("parts_total") or len(remote.parts) or len(remote.ulinks) or None
        mismatch = (filesize is not None and int(filesize) != plan.size) or (
            parts_expected is not None and int(parts_expected) != len(plan.parts)
        )
        if mismatch:
            raise ProjectExists(
                f"A different project named {remote.name} already exists on the server; choose another name."
            )

    def _upload_parts(
        self,
        plan: UploadPlan,
        remote: ProjectInfo,
        record: ProjectRecord,
        photos: PhotoSet,
        *,
        resumed: bool,
        report: ProgressCallback,
        cancel: threading.Event | None,
    ) -> UploadResult:
        links = list(remote.ulinks)
        if len(links) != len(plan.parts):
            raise ClientError(
                f"The server has {len(links)} upload links for {remote.name} but the upload has {len(plan.parts)} "
                "parts; reset the project or upload under a new name."
            )
        record.status = "uploading"
        self.store.save(record)
        held = {p.index: p for p in remote.parts}
        total = plan.size
        done_before = 0  # bytes of the parts already finished
        skipped = 0
        retry_note = {"text": ""}

        def on_retry(message: str) -> None:
            retry_note["text"] = message
            report(UploadProgress("retrying", done_before, total, message=message))

        uploader = PartUploader(self.http, retry=self.retry, chunk_size=self.chunk_size, cancel=cancel,
                                sleep=self._sleep, on_retry=on_retry)
        for spec in plan.parts:
            have = held.get(spec.index)
            if have and have.complete and have.size == spec.size and have.sha256 in (None, spec.sha256):
                skipped += 1
                done_before += spec.size
                report(UploadProgress("uploading", done_before, total, spec.index, len(plan.parts), spec.size,
                                      spec.size))
                continue

            def on_part(part_done: int, spec=spec) -> None:
                report(UploadProgress("uploading", done_before + part_done, total, spec.index, len(plan.parts),
                                      part_done, spec.size))

            for link_try in range(2):
                try:
                    result = uploader.upload(links[spec.index], plan.zip_path, spec, on_part)
                    break
                except LinkExpired:
                    if link_try:
                        raise LinkExpired(
                            f"The upload links of {remote.name} expired; upload the photos again under a new "
                            "project name."
                        ) from None
                    fresh = self.project_info(remote.name).ulinks  # the server may hand out fresh links
                    if len(fresh) == len(links) and fresh != links:
                        links = fresh
                    else:
                        raise
                except UploadCancelled:
                    record.status = "uploading"
                    self.store.save(record)
                    raise
            if result.skipped:
                skipped += 1
            done_before += spec.size
        record.status = "uploaded"
        self.store.save(record)
        report(UploadProgress("uploaded", total, total, len(plan.parts) - 1, len(plan.parts)))
        return UploadResult(remote.name, photos.photo_count, plan.size, plan.sha256, len(plan.parts), resumed,
                            skipped, server_status="created")

    # -- waiting and results ----------------------------------------------------------------------------------

    def wait(
        self,
        project: str | None = None,
        *,
        poll: float = 5.0,
        timeout: float | None = None,
        progress: Callable[[ProjectInfo], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> ProjectInfo:
        """Poll until the project is done (and its download link exists); raise `ProjectFailed` if it failed.

        Network trouble while waiting is not fatal: polling goes on until `timeout`.
        """
        name = self._name(project)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if cancel is not None and cancel.is_set():
                raise UploadCancelled("Stopped waiting; the project keeps processing on the server.")
            try:
                info = self.project_info(name)
            except ConnectionFailed:
                info = None
            if info is not None:
                if progress:
                    progress(info)
                if info.is_done and info.dlink:
                    return info
                if info.is_failed:
                    raise ProjectFailed(
                        info.error or f"The project {name} ended with status {info.status!r}.",
                        status=info.status, payload=info.raw,
                    )
            if deadline is not None and time.monotonic() >= deadline:
                state = info.status if info else "unreachable"
                raise WaitTimeout(f"Gave up waiting for {name} after {timeout:.0f} s (it is {state}); "
                                  "it keeps processing on the server.")
            if cancel is not None:
                cancel.wait(poll)  # wakes at once when cancelled
            else:
                self._sleep(poll)

    def download(
        self,
        dest: str | Path,
        project: str | None = None,
        *,
        progress: Callable[[DownloadProgress], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Path:
        """Download the result zip into folder `dest` (as `<project>.zip`) or to the file `dest` if it ends in
        `.zip`. Resumes a broken download with a Range request. Returns the file's path."""
        name = self._name(project)
        info = self.project_info(name)
        if not info.dlink:
            raise ProjectNotReady(f"The project {name} has no result to download yet (it is {info.status}).")
        dest = Path(dest).expanduser()
        target = dest if dest.suffix.lower() == ".zip" else dest / f"{name}.zip"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        failures = 0
        while True:
            have = partial.stat().st_size if partial.exists() else 0
            headers = {"Range": f"bytes={have}-"} if have else {}
            try:
                with self.http.stream("GET", info.dlink, headers=headers) as response:
                    if response.status_code == 416:  # we already hold every byte
                        break
                    if response.status_code >= 300:
                        if response.status_code in (403, 410) and failures == 0:
                            info = self.project_info(name)  # a fresh signed link
                            failures += 1
                            continue
                        raise error_from_response(response, action=f"download the result of {name}")
                    append = response.status_code == 206
                    if not append:
                        have = 0
                    total_header = response.headers.get("content-length")
                    total = (have + int(total_header)) if total_header else None
                    with partial.open("ab" if append else "wb") as out:
                        done = have
                        for block in response.iter_bytes(256 * 1024):
                            if cancel is not None and cancel.is_set():
                                raise UploadCancelled("The download was cancelled; download again to continue.")
                            out.write(block)
                            done += len(block)
                            if progress:
                                progress(DownloadProgress(done, total))
                    if total is None or done >= total:
                        break
                    raise httpx.ReadError("download ended early")
            except httpx.TransportError:
                failures += 1
                if failures >= self.retry.attempts:
                    raise ConnectionFailed(
                        f"Downloading the result of {name} kept failing; run the download again to continue."
                    ) from None
                self._sleep(self.retry.delay(failures))
        if not zipfile.is_zipfile(partial):
            partial.unlink(missing_ok=True)
            raise ClientError(f"The downloaded result of {name} is not a valid zip file; download it again.")
        partial.replace(target)
        self._update_record(name, download_path=str(target))
        return target

    # -- housekeeping -----------------------------------------------------------------------------------------

    def local_projects(self) -> list[ProjectRecord]:
        """Projects this machine uploaded to this server with this token (newest first)."""
        return self.store.for_token(self.server, self.token)

    def forget(self, project: str) -> None:
        """Drop the local record (and the cached zip) of a project."""
        record = self.store.load(self.server, self.token, project)
        if record is None:
            return
        if record.zip_is_cache:
            Path(record.zip_path).unlink(missing_ok=True)
        self.store.delete(record)


__all__ = ["Client", "check_limits", "default_project_name", "part_count", "DEFAULT_PART_SIZE"]
