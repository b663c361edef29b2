"""`openscan-cloud upload | status | logs | cancel | reprocess | delete | download | token-info | desktop`: the SDK
on the command line.

Settings: `--server/--token` flags, else `OPENSCAN_SERVER`/`OPENSCAN_TOKEN`, else the user config file
(`config.toml`, see `docs/clients.md`). Errors print one sentence and exit with a documented code:

    0 success · 1 unexpected error · 2 bad input or usage · 3 token or Basic auth rejected
    4 limits or credit exceeded · 5 network/server trouble (upload incomplete: run the same command again)
    6 processing failed, cancelled or expired · 7 --wait timed out · 8 project not found, name taken or not ready
    130 interrupted (run the same command again to continue)
"""

from __future__ import annotations

import json
import sys
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from openscancloud.client.client import DEFAULT_PART_SIZE, Client
from openscancloud.client.config import ClientPaths, load_settings
from openscancloud.client.errors import ClientError, InputError
from openscancloud.client.models import DownloadProgress, ProcessingOptions, ProjectInfo, UploadProgress

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 unexpected error, 2 bad input, 3 token/Basic auth rejected, 4 limits or credit exceeded, "
    "5 network or server trouble (run again to resume), 6 processing failed, 7 wait timed out, "
    "8 project not found/taken/not ready, 130 interrupted."
)

err_console = Console(stderr=True, soft_wrap=True)
out_console = Console(soft_wrap=True)

ServerOpt = typer.Option(None, "--server", "-s", help="Server URL (env OPENSCAN_SERVER, or the config file).")
TokenOpt = typer.Option(None, "--token", "-t", help="Your token (env OPENSCAN_TOKEN, or the config file).")
ApiOpt = typer.Option(None, "--api", help="Protocol: 'legacy' (default, like the firmware) or 'v1' (REST).")
QualityOpt = typer.Option(None, "--quality", "-q", help="preview | standard | high (default: the server's).")
MasksOpt = typer.Option(None, "--masks", help="auto (detect a static background) | off | user (NAME_mask.png "
                                              "beside each photo).")
TextureOpt = typer.Option(None, "--texture-size", help="Texture side in pixels (256-16384; default: the quality's).")
FacesOpt = typer.Option(None, "--target-faces", help="Triangle budget (1000-5000000; default: the quality's).")
FormatsOpt = typer.Option(None, "--formats", help="Comma-separated subset of glb,obj,ply,stl,usdz (default: all).")
BasicOpt = typer.Option(
    None, "--basic-auth", help="HTTP Basic USER:PASSWORD for the legacy API, or 'none' (default openscan:free)."
)


def _client(server: str | None, token: str | None, basic_auth: str | None, part_size: int | None = None,
            api: str | None = None) -> Client:
    try:
        settings = load_settings(server=server, token=token, basic_auth=basic_auth, part_size=part_size, api=api)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return Client(
        settings.server or "",
        settings.token or "",
        basic_auth=settings.basic_auth,
        part_size=settings.part_size or DEFAULT_PART_SIZE,
        paths=ClientPaths.default(),
        api=settings.api,
    )


@contextmanager
def _friendly_errors() -> Iterator[None]:
    """Turn every failure into one sentence on stderr and the documented exit code — never a traceback."""
    try:
        yield
    except ClientError as exc:
        err_console.print(f"[red]Error:[/red] {exc}", highlight=False)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err_console.print("Interrupted. Run the same command again to continue where it stopped.")
        raise typer.Exit(130) from None
    except OSError as exc:
        err_console.print(f"[red]Error:[/red] {exc.strerror or exc} ({getattr(exc, 'filename', '') or ''}).",
                          highlight=False)
        raise typer.Exit(2) from None


def _transfer_progress() -> Progress:
    return Progress(
        TextColumn("{task.description}", justify="left"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


class _UploadBars:
    """Maps SDK progress reports onto rich bars: one overall, one for the current part."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.prep: TaskID | None = None
        self.overall: TaskID | None = None
        self.part: TaskID | None = None
        self.part_index = -1

    def __call__(self, p: UploadProgress) -> None:
        bar = self.progress
        if p.phase in ("zipping", "hashing"):
            label = "Zipping photos" if p.phase == "zipping" else "Checking zip"
            if self.prep is None:
                self.prep = bar.add_task(label, total=p.bytes_total or None)
            bar.update(self.prep, description=label, completed=p.bytes_done, total=p.bytes_total or None)
            return
        if p.phase == "retrying":
            bar.console.print(f"[yellow]{p.message}[/yellow]", highlight=False)
            return
        if p.phase not in ("uploading", "uploaded") or not p.bytes_total:
            return
        if self.prep is not None:
            bar.update(self.prep, visible=False)
        if self.overall is None:
            self.overall = bar.add_task("Overall", total=p.bytes_total)
        bar.update(self.overall, completed=p.bytes_done)
        if p.phase == "uploading" and p.part_count > 1:
            if p.part_index != self.part_index:
                if self.part is not None:
                    bar.update(self.part, completed=bar.tasks[self.part].total, visible=False)
                self.part_index = p.part_index
                self.part = bar.add_task(f"Part {p.part_index + 1}/{p.part_count}", total=p.part_bytes_total)
            bar.update(self.part, completed=p.part_bytes_done)


def _wait_with_bar(client: Client, project: str, *, timeout: float | None, poll: float) -> ProjectInfo:
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[eta]}"), console=err_console,
    ) as bar:
        task = bar.add_task("Queued", total=100, eta="")

        def show(info: ProjectInfo) -> None:
            stage = info.stage or info.status
            eta = time_left(info)
            bar.update(task, description=f"Processing: {stage}", completed=info.progress, eta=eta)

        info = client.wait(project, poll=poll, timeout=timeout, progress=show)
        bar.update(task, description="Done", completed=100, eta="")
        return info


def _download_with_bar(client: Client, project: str, dest: Path) -> Path:
    with _transfer_progress() as bar:
        task = bar.add_task("Downloading", total=None)

        def show(p: DownloadProgress) -> None:
            bar.update(task, completed=p.bytes_done, total=p.bytes_total)

        return client.download(dest, project, progress=show)


def upload(
    source: Path = typer.Argument(..., help="A folder of JPEG/PNG photos, or a zip of them."),
    project: Optional[str] = typer.Option(
        None, "--project", "-p",
        help="Project name. Default: continue an unfinished upload of the same source, else <folder>-<ms>.",
    ),
    server: Optional[str] = ServerOpt,
    token: Optional[str] = TokenOpt,
    basic_auth: Optional[str] = BasicOpt,
    api: Optional[str] = ApiOpt,
    part_size: Optional[int] = typer.Option(None, "--part-size", help="Bytes per part (default 200000000)."),
    start: bool = typer.Option(True, "--start/--no-start", help="Start processing once the upload is complete."),
    wait: bool = typer.Option(False, "--wait", help="Wait for processing to finish, showing stage and progress."),
    download: Optional[Path] = typer.Option(None, "--download", help="Download the result into this folder "
                                            "(implies --wait)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Give up waiting after this many seconds."),
    poll: float = typer.Option(5.0, "--poll", help="Seconds between status checks while waiting."),
    quality: Optional[str] = QualityOpt,
    masks: Optional[str] = MasksOpt,
    texture_size: Optional[int] = TextureOpt,
    target_faces: Optional[int] = FacesOpt,
    formats: Optional[str] = FormatsOpt,
) -> None:
    """Upload photos (resumable: run it again after any interruption), start processing, optionally wait and
    download the result."""
    options = ProcessingOptions.from_text(quality=quality, masks=masks, texture_size=texture_size,
                                          target_faces=target_faces, formats=formats)
    with _friendly_errors():
        with _client(server, token, basic_auth, part_size, api) as client:
            with _transfer_progress() as bar:
                result = client.upload(source, project, progress=_UploadBars(bar), options=options)
            how = "continued" if result.resumed else "uploaded"
            err_console.print(
                f"Project [bold]{result.project}[/bold]: {how} {result.photos} photos, "
                f"{result.size / 1e6:,.1f} MB in {result.parts} part(s).", highlight=False,
            )
            if start and result.server_status in ("created", "uploading"):
                client.start(result.project)
                err_console.print("Processing started.")
            if (wait or download) and start:
                info = _wait_with_bar(client, result.project, timeout=timeout, poll=poll)
                err_console.print(f"Project {info.name} is done.")
                if download:
                    path = _download_with_bar(client, result.project, download)
                    err_console.print(f"Result saved to {path}")
            out_console.print(result.project, highlight=False)  # stdout: the name, for scripts


def status(
    project: Optional[str] = typer.Argument(None, help="Project name; without it, list this machine's projects."),
    server: Optional[str] = ServerOpt,
    token: Optional[str] = TokenOpt,
    basic_auth: Optional[str] = BasicOpt,
    api: Optional[str] = ApiOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the server's answer as JSON."),
) -> None:
    """Show a project's status (stage, progress, parts), or list the projects uploaded from this machine."""
    with _friendly_errors():
        with _client(server, token, basic_auth, api=api) as client:
            if project is None:
                records = client.local_projects()
                if as_json:
                    out_console.print_json(json.dumps([r.__dict__ for r in records]))
                    return
                table = Table("Status", "Progress", "Photos", "Size", "Uploaded")
                table.add_column("Project", no_wrap=True)
                for r in records:
                    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at))
                    table.add_row(r.status, f"{r.progress:.0f}%", str(r.photos), f"{r.size / 1e6:,.1f} MB", when,
                                  r.project)
                out_console.print(table if records else "No projects uploaded from this machine yet.")
                return
            info = client.project_info(project)
            if as_json:
                out_console.print_json(json.dumps(info.raw))
                return
            table = Table(show_header=False)
            table.add_row("Project", info.name)
            table.add_row("Status", info.status)
            table.add_row("Progress", f"{info.progress:.0f}%" + (f" ({info.stage})" if info.stage else ""))
            if info.status in ("queued", "processing"):
                table.add_row("Time left", time_left(info))
            if info.parts and info.status in ("created", "uploading"):
                complete = sum(p.complete for p in info.parts)
                table.add_row("Parts", f"{complete}/{len(info.parts)} uploaded")
            if info.error:
                table.add_row("Error", info.error)
            for warning in info.warnings:
                table.add_row("Warning", warning)
            table.add_row("Result", "ready to download" if info.dlink else "not yet")
            out_console.print(table)
            if info.is_failed:
                raise typer.Exit(6)


def download_cmd(
    project: str = typer.Argument(..., help="Project name."),
    dest: Path = typer.Argument(Path("."), help="Folder to save <project>.zip into (or a .zip path)."),
    extract: bool = typer.Option(False, "--extract", help="Also unpack the zip into DEST/<project>/."),
    server: Optional[str] = ServerOpt,
    token: Optional[str] = TokenOpt,
    basic_auth: Optional[str] = BasicOpt,
    api: Optional[str] = ApiOpt,
) -> None:
    """Download a finished project's result zip (resumes a broken download)."""
    with _friendly_errors():
        with _client(server, token, basic_auth, api=api) as client:
            path = _download_with_bar(client, project, dest)
            err_console.print(f"Result saved to {path}", highlight=False)
            if extract:
                target = path.with_suffix("")
                with zipfile.ZipFile(path) as zf:
                    for member in zf.namelist():
                        resolved = (target / member).resolve()
                        if not resolved.is_relative_to(target.resolve()):
                            raise InputError(f"The result zip contains an unsafe path: {member}.")
                    zf.extractall(target)
                err_console.print(f"Unpacked into {target}", highlight=False)
            out_console.print(str(path), highlight=False)


def time_left(info: ProjectInfo) -> str:
    """The server's estimate in words, and what it is based on; "unknown" is said as such, never "0 min"."""
    basis = info.raw.get("eta_basis")
    if info.eta_seconds is None:
        return "time left unknown" + (f" ({basis.removeprefix('unknown: ')})" if basis else "")
    seconds = info.eta_seconds
    words = "less than a minute left" if seconds < 60 else f"about {round(seconds / 60)} min left"
    return words + (f" ({basis})" if basis else "")


def logs(
    project: str = typer.Argument(..., help="Project name."),
    server: Optional[str] = ServerOpt,
    token: Optional[str] = TokenOpt,
    basic_auth: Optional[str] = BasicOpt,
    api: Optional[str] = ApiOpt,
) -> None:
    """Print the last lines the worker reported for the project's latest run."""
    with _friendly_errors():
        with _client(server, token, basic_auth, api=api) as client:
            text = client.logs(project)
            if text:
                out_console.print(text, highlight=False, markup=False)
            else:
                err_console.print("No log yet: processing has not started.", highlight=False)


def cancel(
    project: str = typer.Argument(..., help="Project name."),
    server: Optional[str] = ServerOpt,
    token: Optional[str] = TokenOpt,
    basic_auth: Optional[str] = BasicOpt,
    api: Optional[str] = ApiOpt,
) -> None:
    """Stop processing (or an unfinished upload); unused credit is returned. The photos stay for `reprocess`."""
    with _friendly_errors():
        with _client(server, token, basic_auth, api=api) as client:
            info = client.cancel(project)
            err_console.print(f"Project {info.name} is {info.status}.", highlight=False)


def delete(
    project: str = typer.Argument(..., help="Project name."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    server: Optional[str] = ServerOpt,
    token: Optional[str] = TokenOpt,
    basic_auth: Optional[str] = BasicOpt,
    api: Optional[str] = ApiOpt,
) -> None:
    """Delete a project and everything of it on the server (photos and result)."""
    with _friendly_errors():
        if not yes and not typer.confirm(f"Delete {project} and its photos and result from the server?"):
            raise typer.Exit(2)
        with _client(server, token, basic_auth, api=api) as client:
            client.delete(project)
            err_console.print(f"Project {project} deleted.", highlight=False)


def reprocess(
    project: str = typer.Argument(..., help="Project name."),
    quality: Optional[str] = QualityOpt,
    masks: Optional[str] = MasksOpt,
    texture_size: Optional[int] = TextureOpt,
    target_faces: Optional[int] = FacesOpt,
    formats: Optional[str] = FormatsOpt,
    wait: bool = typer.Option(False, "--wait", help="Wait for processing to finish."),
    poll: float = typer.Option(5.0, "--poll", help="Seconds between status checks while waiting."),
    server: Optional[str] = ServerOpt,
    token: Optional[str] = TokenOpt,
    basic_auth: Optional[str] = BasicOpt,
    api: Optional[str] = ApiOpt,
) -> None:
    """Process a done, failed or cancelled project again with other options, from the photos the server kept
    (no new upload; costs the upload's credit again)."""
    options = ProcessingOptions.from_text(quality=quality, masks=masks, texture_size=texture_size,
                                          target_faces=target_faces, formats=formats)
    with _friendly_errors():
        with _client(server, token, basic_auth, api=api) as client:
            info = client.reprocess(project, options)
            err_console.print(f"Project {info.name} is {info.status} again.", highlight=False)
            if wait:
                info = _wait_with_bar(client, project, timeout=None, poll=poll)
                err_console.print(f"Project {info.name} is done.", highlight=False)


def token_info(
    server: Optional[str] = ServerOpt,
    token: Optional[str] = TokenOpt,
    basic_auth: Optional[str] = BasicOpt,
    api: Optional[str] = ApiOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the server's answer as JSON."),
) -> None:
    """Show the token's credit and limits."""
    with _friendly_errors():
        with _client(server, token, basic_auth, api=api) as client:
            info = client.token_info()
            if as_json:
                out_console.print_json(json.dumps(info.raw))
                return
            table = Table(show_header=False)
            table.add_row("Credit", f"{info.credit_gb:.2f} GB")
            table.add_row("Largest upload", f"{info.limit_filesize / 1e6:,.0f} MB")
            table.add_row("Most photos", str(info.limit_photos))
            out_console.print(table)


def desktop() -> None:
    """Open the desktop uploader (a window: choose photos, upload, follow processing, download)."""
    try:
        from openscancloud.desktop.app import run
    except ImportError as exc:
        err_console.print(f"[red]Error:[/red] the desktop app needs PySide6 ({exc}); "
                          "install it with: pip install PySide6-Essentials", highlight=False)
        raise typer.Exit(2) from None
    raise typer.Exit(run(sys.argv[:1]))


def register(app: typer.Typer) -> None:
    """Add the client commands to the `openscan-cloud` app."""
    epilog = EXIT_CODES_HELP
    app.command("upload", epilog=epilog)(upload)
    app.command("status", epilog=epilog)(status)
    app.command("download", epilog=epilog)(download_cmd)
    app.command("logs", epilog=epilog)(logs)
    app.command("cancel", epilog=epilog)(cancel)
    app.command("reprocess", epilog=epilog)(reprocess)
    app.command("delete", epilog=epilog)(delete)
    app.command("token-info", epilog=epilog)(token_info)
    app.command("desktop")(desktop)
