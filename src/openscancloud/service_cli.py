"""Server commands of `openscan-cloud`: `serve`, `worker` and `tokens ...` (admin).

Every command takes `--data-dir` (env `OPENSCAN_DATA_DIR`, default `./data`) and reads the rest of its settings
from `OPENSCAN_*` environment variables (see `settings.py`). Also runnable alone as
`python -m openscancloud.service_cli ...`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import typer

if TYPE_CHECKING:
    import uvicorn

    from openscancloud.api.context import AppContext
    from openscancloud.settings import Settings

DataDir = typer.Option(None, "--data-dir", help="Data directory (env OPENSCAN_DATA_DIR, default ./data).")


def _settings(data_dir: Optional[Path], **overrides: Any) -> Settings:
    from openscancloud.settings import Settings

    if data_dir is not None:
        overrides["data_dir"] = data_dir
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _context(data_dir: Optional[Path]) -> AppContext:
    """The server's context for an admin command: the same data directory `serve` resolves (--data-dir, else
    OPENSCAN_DATA_DIR, else ./data), announced on stderr, and never a new empty one — a token printed from a
    fresh folder would be rejected by the running server."""
    from openscancloud.api.app import build_context

    settings = _settings(data_dir)
    where = settings.data_dir.resolve()
    chosen = data_dir is not None or "OPENSCAN_DATA_DIR" in os.environ
    if not chosen and settings.database_url is None and not (settings.data_dir / "openscan.db").exists():
        _fail(f"no server data in {where}: pass the --data-dir (or set OPENSCAN_DATA_DIR) that 'serve' uses.", 2)
    typer.echo(f"data directory: {where}", err=True)
    os.umask(0o077)  # a database or secret key created by an admin command is private too
    return build_context(settings)


# ============================================================================================== serve ===
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port (0 picks a free one)."),
    data_dir: Optional[Path] = DataDir,
    workers: int = typer.Option(1, "--workers", help="Built-in processing workers (0: only external ones)."),
    public_url: Optional[str] = typer.Option(None, help="Base URL for links (env OPENSCAN_PUBLIC_URL)."),
) -> None:
    """Run the API server (and, by default, one processing worker of its own)."""
    import uvicorn

    from openscancloud.api.app import create_app
    from openscancloud.jobs.worker import Worker

    from openscancloud.api.limits import uvicorn_config

    _setup_logging()
    os.umask(0o077)  # photos, results, database and secret key: readable by the server's own user only
    settings = _settings(data_dir, public_url=public_url)
    app = create_app(settings)
    ctx = app.state.ctx
    public = ctx.service.public_token()
    worker_token = ctx.service.builtin_worker_token() if workers > 0 else None
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def on_ready(actual_port: int) -> None:
        shown_host = f"[{host}]" if ":" in host else host
        print(f"listening on http://{shown_host}:{actual_port}", flush=True)
        print(f"public token: {public}", flush=True)
        print(f"data directory: {settings.data_dir.resolve()}", flush=True)
        local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else shown_host
        for i in range(workers):
            w = Worker(f"http://{local}:{actual_port}", worker_token, name=f"builtin-{i + 1}",
                       work_dir=_work_dir(settings), stop=stop)
            t = threading.Thread(target=w.run_forever, daemon=True, name=f"worker-{i + 1}")
            t.start()
            threads.append(t)

    config = uvicorn_config(app, settings, host, port, log_level="warning", timeout_graceful_shutdown=5)
    server = _ready_server(config, on_ready)
    try:
        server.run()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
    if not server.started:
        _fail(f"could not listen on {host}:{port}")


def _ready_server(config: uvicorn.Config, on_ready: Callable[[int], None]) -> uvicorn.Server:
    """A uvicorn.Server that calls `on_ready(port)` once its socket is bound (for the 'listening on' line)."""
    import uvicorn

    class ReadyServer(uvicorn.Server):
        async def startup(self, sockets: list | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                port = config.port
                for srv in self.servers:
                    for sock in srv.sockets:
                        port = sock.getsockname()[1]
                on_ready(port)

    return ReadyServer(config)


def _work_dir(settings: Settings) -> Path:
    path = settings.data_dir / "work"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# ============================================================================================= worker ===
def worker(
    server: str = typer.Option(..., "--server", help="Server base URL, e.g. https://cloud.example.org"),
    token: str = typer.Option(..., "--token", envvar="OPENSCAN_WORKER_TOKEN", help="A worker token."),
    name: Optional[str] = typer.Option(None, help="Name shown to the operator (default: host-pid)."),
    work_dir: Optional[Path] = typer.Option(None, help="Scratch space (default: <data-dir>/work or the system temp)."),
    once: bool = typer.Option(False, help="Process at most one job, then exit."),
    max_image_size: Optional[int] = typer.Option(None, help="Cap the engine's working image size (px, long side)."),
    gpu: Optional[str] = typer.Option(None, help="GPU name to report (default: detected with nvidia-smi)."),
    data_dir: Optional[Path] = DataDir,
) -> None:
    """Pull jobs from a server over HTTP and run the reconstruction engine on them."""
    import httpx

    os.umask(0o077)  # the photos it downloads are other people's
    from openscancloud.jobs.worker import Worker

    _setup_logging()
    if work_dir is None and data_dir is not None:
        work_dir = data_dir / "work"
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
    w = Worker(server, token, name=name, work_dir=work_dir, max_image_size=max_image_size, gpu=gpu)
    import signal

    # systemd/docker stop with SIGTERM: stop the engine, clean the scratch dir, exit (the lease runs out and
    # another worker re-runs the job)
    signal.signal(signal.SIGTERM, lambda *_: w.stop.set())
    try:
        if once:
            w.run_once()
        else:
            w.run_forever()
    except KeyboardInterrupt:
        w.stop.set()
    except (RuntimeError, httpx.HTTPError) as exc:
        _fail(f"{exc} (server {server})")


# ============================================================================================= tokens ===
tokens_app = typer.Typer(help="Manage API tokens (admin).", no_args_is_help=True)


def _token_dict(ctx: AppContext, row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "kind": row.kind, "status": row.status, "hint": row.hint, "label": row.label,
        "forename": row.forename, "surname": row.surname, "email": row.email,
        "credit_gb": ctx.service.credit_of(row.id), "limit_photos": row.limit_photos,
        "limit_filesize": row.limit_filesize, "created_at": row.created_at.isoformat(timespec="seconds") + "Z",
    }


@tokens_app.command("create")
def tokens_create(
    kind: str = typer.Option("private", help="private | worker | admin"),
    forename: Optional[str] = typer.Option(None),
    surname: Optional[str] = typer.Option(None),
    email: Optional[str] = typer.Option(None),
    label: Optional[str] = typer.Option(None, help="Free text, e.g. the worker machine."),
    credit_gb: Optional[float] = typer.Option(None, help="Initial credit for private tokens (GB)."),
    limit_photos: Optional[int] = typer.Option(None),
    limit_filesize: Optional[int] = typer.Option(None, help="Bytes."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    data_dir: Optional[Path] = DataDir,
) -> None:
    """Create a token and print it (it is shown only this once)."""
    from openscancloud.domain.errors import DomainError
    from openscancloud.domain.tokens import TokenKind

    if kind not in ("private", "worker", "admin"):
        _fail("--kind must be private, worker or admin (the public token: 'tokens public').", 2)
    if kind == "private" and not (forename and surname and email):
        _fail("a private token needs --forename, --surname and --email.", 2)
    if credit_gb is not None and credit_gb < 0:
        _fail("--credit-gb cannot be negative.", 2)
    ctx = _context(data_dir)
    try:
        token, view = ctx.service.create_token(
            TokenKind(kind), forename=forename, surname=surname, email=email, label=label, credit_gb=credit_gb,
            limit_photos=limit_photos, limit_filesize=limit_filesize,
        )
    except DomainError as exc:
        _fail(exc.message)
    row = ctx.service.find_token(str(view.id))
    if as_json:
        typer.echo(json.dumps({"token": token, **_token_dict(ctx, row)}))
    else:
        typer.echo(token)


@tokens_app.command("list")
def tokens_list(as_json: bool = typer.Option(False, "--json"), data_dir: Optional[Path] = DataDir) -> None:
    """List all tokens (hints only; secrets are never stored)."""
    ctx = _context(data_dir)
    rows = [_token_dict(ctx, r) for r in ctx.service.list_tokens()]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    typer.echo(f"{'id':>4}  {'kind':8} {'status':8} {'hint':9} {'credit GB':>10}  owner")
    for r in rows:
        owner = " ".join(x for x in (r["forename"], r["surname"]) if x) or r["label"] or ""
        if r["email"]:
            owner += f" <{r['email']}>"
        typer.echo(f"{r['id']:>4}  {r['kind']:8} {r['status']:8} {r['hint']:9} {r['credit_gb']:>10.3f}  {owner}")


def _find(ctx: AppContext, ref: str) -> Any:
    from openscancloud.domain.errors import DomainError

    try:
        return ctx.service.find_token(ref)
    except DomainError as exc:
        _fail(exc.message)


@tokens_app.command("show")
def tokens_show(ref: str = typer.Argument(..., help="Token id, hint or the token itself."),
                as_json: bool = typer.Option(False, "--json"), data_dir: Optional[Path] = DataDir) -> None:
    """Show one token with its credit ledger."""
    ctx = _context(data_dir)
    row = _find(ctx, ref)
    info = _token_dict(ctx, row)
    with ctx.service.uow() as repo:
        info["ledger"] = [
            {"at": e.created_at.isoformat(timespec="seconds") + "Z", "kind": e.kind, "amount_gb": e.amount_gb,
             "project_id": e.project_id, "reason": e.reason}
            for e in repo.ledger(token_id=row.id)
        ]
    if as_json:
        typer.echo(json.dumps(info))
        return
    for k, v in info.items():
        if k != "ledger":
            typer.echo(f"{k:15} {v}")
    typer.echo("ledger:")
    for e in info["ledger"]:
        typer.echo(f"  {e['at']}  {e['kind']:7} {e['amount_gb']:+.6f} GB  {e['reason']}  {e['project_id'] or ''}")


@tokens_app.command("revoke")
def tokens_revoke(ref: str = typer.Argument(...), data_dir: Optional[Path] = DataDir) -> None:
    """Revoke a token: it stops working immediately."""
    ctx = _context(data_dir)
    row = _find(ctx, ref)
    ctx.service.revoke_token(row.id)
    typer.echo(f"token {row.id} ({row.hint}…) revoked")


@tokens_app.command("topup")
def tokens_topup(ref: str = typer.Argument(...), gb: float = typer.Argument(..., help="GB to add."),
                 reason: str = typer.Option("top-up"), data_dir: Optional[Path] = DataDir) -> None:
    """Add credit to a private token (a ledger row)."""
    from openscancloud.domain.errors import DomainError

    ctx = _context(data_dir)
    row = _find(ctx, ref)
    try:
        balance = ctx.service.topup(row.id, gb, reason)
    except DomainError as exc:
        _fail(exc.message)
    typer.echo(f"token {row.id}: credit now {balance:.3f} GB")


@tokens_app.command("public")
def tokens_public(as_json: bool = typer.Option(False, "--json"), data_dir: Optional[Path] = DataDir) -> None:
    """Print the shared public token (created on first use)."""
    ctx = _context(data_dir)
    token = ctx.service.public_token()
    if as_json:
        row = ctx.service.find_token(token)
        typer.echo(json.dumps({"token": token, **_token_dict(ctx, row)}))
    else:
        typer.echo(token)


@tokens_app.command("requests")
def tokens_requests(as_json: bool = typer.Option(False, "--json"), data_dir: Optional[Path] = DataDir) -> None:
    """List token requests made with /requestToken (pending ones wait for 'tokens approve ID')."""
    from openscancloud.api.token_requests import request_view

    ctx = _context(data_dir)
    rows = [request_view(r) for r in ctx.service.token_requests()]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    typer.echo(f"{'id':>4}  {'status':8} {'requested':20}  who")
    for r in rows:
        typer.echo(f"{r['id']:>4}  {r['status']:8} {r['created_at']:20}  {r['name']} <{r['email']}>")


@tokens_app.command("approve")
def tokens_approve(request_id: int = typer.Argument(..., help="The id shown by 'tokens requests'."),
                   as_json: bool = typer.Option(False, "--json"), data_dir: Optional[Path] = DataDir) -> None:
    """Approve a token request: create the private token and mail it (SMTP configured), else print it."""
    from openscancloud.api.token_requests import approve_and_deliver
    from openscancloud.domain.errors import DomainError

    ctx = _context(data_dir)
    try:
        result = approve_and_deliver(ctx, request_id)
    except DomainError as exc:
        _fail(exc.message)
    if as_json:
        typer.echo(json.dumps(result))
    elif result["mailed"]:
        typer.echo(f"request {request_id} approved; the token was mailed")
    else:
        typer.echo(f"request {request_id} approved; this server cannot send mail, so pass the token on yourself:")
        typer.echo(result["token"])


# ============================================================================================ workers ===
workers_app = typer.Typer(help="Processing nodes (admin).", no_args_is_help=True)


@workers_app.command("list")
def workers_list(hours: float = typer.Option(24.0, help="Also show nodes offline for up to this many hours."),
                 as_json: bool = typer.Option(False, "--json"), data_dir: Optional[Path] = DataDir) -> None:
    """Registered workers: online, current job, last seen, hardware."""
    ctx = _context(data_dir)
    rows = ctx.service.worker_listing(hours)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    typer.echo(f"{'name':24} {'online':6} {'cpus':>4} {'ram GB':>6} {'gpu':14} {'last seen':>10}  current job")
    for r in rows:
        job = r["current_job"]
        current = f"{job['project_id'][:8]} {job['stage'] or ''} {job['progress']:.0f}%" if job else "-"
        typer.echo(f"{r['name'][:24]:24} {'yes' if r['online'] else 'no':6} {r['cpus']:>4} {r['ram_mb'] / 1024:>6.1f} "
                   f"{(r['gpu'] or '-')[:14]:14} {r['last_seen_seconds_ago']:>8.0f}s  {current}")


# ========================================================================================= maintenance ===
def maintenance(data_dir: Optional[Path] = DataDir) -> None:
    """Run one maintenance round now (lease expiry, project expiry, retention cleanup)."""
    ctx = _context(data_dir)
    typer.echo(json.dumps(ctx.maintenance.run_once()))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("worker")(worker)
    app.command("maintenance")(maintenance)
    app.add_typer(tokens_app, name="tokens")
    app.add_typer(workers_app, name="workers")


def main() -> None:
    standalone = typer.Typer(name="openscan-cloud", no_args_is_help=True, pretty_exceptions_enable=False)
    register(standalone)
    standalone()


if __name__ == "__main__":
    main()
