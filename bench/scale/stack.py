"""A production-shaped OpenScan Cloud on 127.0.0.1, for the crash and load benches (and their pytest versions).

    nginx (Debian package) ──► N API replicas (`openscan-cloud serve --workers 0`) ──► PostgreSQL (fresh schema)
                                                                                  └─► S3 (moto server mode)
    M processing workers (`openscan-cloud worker --server <nginx> --token wrk_…`) ──► nginx

Every process is a real OS process started the way an operator starts it; a supervisor thread restarts any
that dies (what systemd's `Restart=always` does), so a crash test only has to `kill -9` things. Replicas
share nothing but PostgreSQL, the bucket and the secret key.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PG_BASE = os.environ.get("OPENSCAN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 60.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def postgres_reachable() -> bool:
    try:
        from sqlalchemy import create_engine, text

        engine = create_engine(PG_BASE)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def missing_parts() -> list[str]:
    """What this machine lacks to run the stack (empty list: all there)."""
    missing = []
    if nginx_binary() is None:
        missing.append("nginx (apt-get install nginx-light)")
    if not postgres_reachable():
        missing.append(f"PostgreSQL at {PG_BASE}")
    try:
        import moto.server  # noqa: F401
    except ImportError:
        missing.append("moto[server]")
    return missing


@dataclass
class Proc:
    """One supervised process. `kill9()` simulates a crash; the supervisor starts it again."""

    name: str
    kind: str  # replica | worker | nginx | s3
    argv: list[str]
    env: dict[str, str]
    log: Path
    port: int | None = None
    popen: subprocess.Popen | None = None
    restarts: int = 0
    wanted: bool = True

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")
        out.write(f"\n=== start {time.strftime('%H:%M:%S')} ===\n".encode())
        out.flush()
        self.popen = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        out.close()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill9(self) -> None:
        if self.alive():
            os.kill(self.popen.pid, signal.SIGKILL)  # type: ignore[union-attr]
            self.popen.wait()  # type: ignore[union-attr]

    def stop(self, timeout: float = 20.0) -> None:
        self.wanted = False
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            try:
                self.popen.wait(timeout=timeout)  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                self.kill9()


@dataclass
class Stack:
    root: Path
    replicas: int = 2
    workers: int = 3
    lease_seconds: int = 20
    max_attempts: int = 20
    part_limit_bytes: int = 1_000_000
    max_image_size: int | None = 640
    quality: str = "preview"
    maintenance_seconds: float = 5.0
    restart_delay: float = 1.0
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    schema: str = field(default_factory=lambda: f"scale_{uuid.uuid4().hex[:10]}")
    bucket: str = field(default_factory=lambda: f"osc-scale-{uuid.uuid4().hex[:10]}")
    secret: str = field(default_factory=lambda: secrets.token_hex(32))
    nginx_port: int = 0
    s3_port: int = 0
    worker_token: str = ""
    _supervisor: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    # --- configuration every server process shares ---------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    @property
    def database_url(self) -> str:
        return f"{PG_BASE}?options=-csearch_path%3D{self.schema}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def server_env(self, data_dir: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENSCAN_")}
        env.update({
            "PYTHONUNBUFFERED": "1",
            "OPENSCAN_DATA_DIR": str(data_dir),
            "OPENSCAN_DATABASE_URL": self.database_url,
            "OPENSCAN_STORAGE_URL": f"s3://{self.bucket}/osc",
            "OPENSCAN_S3_ENDPOINT_URL": self.s3_endpoint,
            "OPENSCAN_S3_ACCESS_KEY_ID": "test",
            "OPENSCAN_S3_SECRET_ACCESS_KEY": "test",
            "OPENSCAN_STALE_UPLOAD_HOURS": "0",  # moto dates every upload 2010: sweep explicitly instead
            "OPENSCAN_SECRET_KEY": self.secret,
            "OPENSCAN_PUBLIC_URL": self.url,
            "OPENSCAN_LEASE_SECONDS": str(self.lease_seconds),
            "OPENSCAN_MAX_ATTEMPTS": str(self.max_attempts),
            "OPENSCAN_PART_LIMIT_BYTES": str(self.part_limit_bytes),
            "OPENSCAN_QUALITY": self.quality,
            "OPENSCAN_MAINTENANCE_INTERVAL_SECONDS": str(self.maintenance_seconds),
            "OPENSCAN_WORKER_OFFLINE_SECONDS": "30",
            **self.extra_env,
        })
        return env

    def settings(self) -> Any:
        from openscancloud.settings import Settings

        return Settings(
            data_dir=self.root / "admin", database_url=self.database_url, storage_url=f"s3://{self.bucket}/osc",
            s3_endpoint_url=self.s3_endpoint, s3_access_key_id="test", s3_secret_access_key="test",
            s3_create_bucket=True, stale_upload_hours=0, secret_key=self.secret, public_url=self.url,
            lease_seconds=self.lease_seconds, max_attempts=self.max_attempts, part_limit_bytes=self.part_limit_bytes,
            quality=self.quality, maintenance_interval_seconds=0,
        )

    # --- start / stop --------------------------------------------------------------------------------------
    def start(self) -> None:
        missing = missing_parts()
        if missing:
            raise RuntimeError("cannot build the stack, missing: " + ", ".join(missing))
        self.root.mkdir(parents=True, exist_ok=True)
        self._create_schema()
        self._start_s3()
        self.nginx_port = free_port()
        from openscancloud.api.app import build_context  # migrates the schema, creates the bucket
        from openscancloud.domain.tokens import TokenKind

        self.ctx = build_context(self.settings())
        self.worker_token, _ = self.ctx.service.create_token(TokenKind.WORKER, label="scale-bench")
        ports = [free_port() for _ in range(self.replicas)]
        for i, port in enumerate(ports):
            data = self.root / f"replica-{i + 1}"
            proc = Proc(f"replica-{i + 1}", "replica",
                        [PY, "-m", "openscancloud.service_cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                         "--workers", "0", "--data-dir", str(data)],
                        self.server_env(data), self.root / "logs" / f"replica-{i + 1}.log", port=port)
            proc.start()
            self.procs.append(proc)
        for proc in self.procs:
            if not wait_port(proc.port, 90):  # type: ignore[arg-type]
                raise RuntimeError(f"{proc.name} did not start; see {proc.log}")
        self._start_nginx(ports)
        for i in range(self.workers):
            self.add_worker(f"worker-{i + 1}")
        self._supervisor = threading.Thread(target=self._supervise, daemon=True, name="supervisor")
        self._supervisor.start()

    def add_worker(self, name: str) -> Proc:
        work = self.root / f"{name}-work"
        argv = [PY, "-m", "openscancloud.service_cli", "worker", "--server", self.url, "--token", self.worker_token,
                "--name", name, "--work-dir", str(work)]
        if self.max_image_size:
            argv += ["--max-image-size", str(self.max_image_size)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENSCAN_")}
        env["PYTHONUNBUFFERED"] = "1"
        proc = Proc(name, "worker", argv, env, self.root / "logs" / f"{name}.log")
        proc.start()
        self.procs.append(proc)
        return proc

    def _create_schema(self) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(PG_BASE)
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {self.schema}"))
        engine.dispose()

    def _drop_schema(self) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(PG_BASE)
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE"))
        engine.dispose()

    def _start_s3(self) -> None:
        self.s3_port = free_port()
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
        proc = Proc("s3", "s3", [PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.s3_port)], env,
                    self.root / "logs" / "s3.log", port=self.s3_port)
        proc.start()
        self.procs.append(proc)
        if not wait_port(self.s3_port, 30):
            raise RuntimeError("moto server did not start")

    def nginx_conf(self, ports: list[int]) -> str:
        servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in ports)
        root = self.root / "nginx"
        user = "user root;\n" if os.geteuid() == 0 else ""
        return f"""{user}worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log {root}/access.log;
  client_body_temp_path {root}/tmp/body;
  proxy_temp_path {root}/tmp/proxy;
  fastcgi_temp_path {root}/tmp/fastcgi;
  uwsgi_temp_path {root}/tmp/uwsgi;
  scgi_temp_path {root}/tmp/scgi;
  upstream openscan {{
{servers}
    keepalive 16;
  }}
  server {{
    listen 127.0.0.1:{self.nginx_port};
    client_max_body_size 0;             # the API enforces the part limit itself (413)
    proxy_request_buffering off;        # stream upload parts straight to a replica
    proxy_buffering off;                # and downloads straight to the client
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_read_timeout 600s;
    proxy_send_timeout 600s;
    # a dead replica: try the other one — also for POSTs, which this API makes safe to repeat (claims,
    # heartbeats, complete/fail answer 409 to a stale repeat; upload links replace the part)
    proxy_next_upstream error timeout http_502 http_503 non_idempotent;
    proxy_next_upstream_tries 2;
    location / {{ proxy_pass http://openscan; }}
  }}
}}
"""

    def _start_nginx(self, ports: list[int]) -> None:
        root = self.root / "nginx"
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        conf = root / "nginx.conf"
        conf.write_text(self.nginx_conf(ports))
        exe = nginx_binary()
        check = subprocess.run([exe, "-t", "-q", "-c", str(conf), "-p", str(root), "-e", str(root / "error.log")],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx config rejected: {check.stderr}")
        proc = Proc("nginx", "nginx", [exe, "-c", str(conf), "-p", str(root), "-e", str(root / "error.log"),
                                       "-g", "daemon off;"], dict(os.environ), self.root / "logs" / "nginx.log",
                    port=self.nginx_port)
        proc.start()
        self.procs.append(proc)
        if not wait_port(self.nginx_port, 20):
            raise RuntimeError("nginx did not start")

    def _supervise(self) -> None:
        while not self._stop.wait(0.25):
            for proc in list(self.procs):
                if proc.wanted and not proc.alive():
                    time.sleep(self.restart_delay)
                    if self._stop.is_set() or not proc.wanted:
                        return
                    proc.restarts += 1
                    proc.start()

    def killable(self) -> list[Proc]:
        return [p for p in self.procs if p.kind in ("replica", "worker")]

    def stop_processing(self) -> None:
        """Stop the supervisor, then workers and replicas (SIGTERM), keeping nginx, S3 and the schema for audits."""
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=10)
        for proc in reversed(self.procs):
            if proc.kind in ("worker", "replica"):
                proc.stop()

    def stop(self, drop: bool = True) -> None:
        self.stop_processing()
        for proc in reversed(self.procs):
            proc.stop()
        if getattr(self, "ctx", None) is not None:
            self.ctx.db.dispose()
        if drop:
            try:
                self._drop_schema()
            except Exception:
                pass

    # --- audits ---------------------------------------------------------------------------------------------
    def audit(self, project_ids: list[str], filesizes: dict[str, int]) -> dict[str, Any]:
        """What the crash test asserts: every project done exactly once, no orphaned objects or scratch files,
        every token's ledger adds up."""
        from sqlalchemy import func, select

        from openscancloud.db.models import Job, LedgerEntry, Project, Token
        from openscancloud.domain.credit import bytes_to_gb

        storage = self.ctx.storage
        out: dict[str, Any] = {"problems": []}
        problems = out["problems"]
        with self.ctx.db.transaction() as s:
            projects = {p.id: p for p in s.scalars(select(Project).where(Project.id.in_(project_ids)))}
            jobs = s.scalars(select(Job).where(Job.project_id.in_(project_ids))).all()
            attempts = []
            for pid in project_ids:
                p = projects.get(pid)
                mine = [j for j in jobs if j.project_id == pid]
                done = [j for j in mine if j.status == "done"]
                if p is None or p.status != "done":
                    problems.append(f"project {pid[:8]} is {getattr(p, 'status', 'missing')}")
                if len(done) != 1 or len(mine) != 1:
                    problems.append(f"project {pid[:8]}: {len(done)} done jobs of {len(mine)}")
                attempts.extend(j.attempt for j in mine)
                charged = -float(s.scalar(select(func.coalesce(func.sum(LedgerEntry.amount_gb), 0.0))
                                          .where(LedgerEntry.project_id == pid)) or 0.0)
                if p is not None and abs(charged - bytes_to_gb(filesizes[pid])) > 1e-9:
                    problems.append(f"project {pid[:8]}: ledger charged {charged} GB, expected "
                                    f"{bytes_to_gb(filesizes[pid])}")
                if p is not None and abs((p.charged_gb or 0) - charged) > 1e-9:
                    problems.append(f"project {pid[:8]}: charged_gb {p.charged_gb} != ledger {charged}")
            token_ids = {p.token_id for p in projects.values()}
            for tid in token_ids:
                token = s.get(Token, tid)
                rows = s.scalars(select(LedgerEntry).where(LedgerEntry.token_id == tid)).all()
                grant = sum(r.amount_gb for r in rows if r.kind in ("grant", "topup"))
                spent = sum(bytes_to_gb(filesizes[p.id]) for p in projects.values() if p.token_id == tid)
                balance = sum(r.amount_gb for r in rows)
                if token.kind == "private" and abs(balance - (grant - spent)) > 1e-9:
                    problems.append(f"token {tid}: balance {balance} != grants {grant} - spent {spent}")
            out["attempts_total"] = sum(attempts)
            out["attempts_max"] = max(attempts) if attempts else 0
        keys = set(storage.all_keys())
        expected = {f"{storage.cfg.prefix}projects/{pid}/result.zip" for pid in project_ids}
        if projects and any(p.keep_for_research for p in projects.values()):
            expected |= {f"{storage.cfg.prefix}projects/{pid}/input.zip" for pid, p in projects.items()
                         if p.keep_for_research}
        out["orphan_objects"] = sorted(keys - expected)
        out["missing_objects"] = sorted(expected - keys)
        out["incomplete_multipart_uploads"] = len(storage.pending_multipart_uploads())
        out["aborted_by_sweep"] = storage.abort_stale_uploads(0)
        out["multipart_left_after_sweep"] = len(storage.pending_multipart_uploads())
        scratch = [p for d in self.root.glob("worker-*-work") for p in d.glob("osc-*")]
        scratch += [p for d in self.root.glob("replica-*") for p in (d / "scratch").glob("input-*")]
        out["orphan_scratch"] = [str(p) for p in scratch]
        for name in ("orphan_objects", "missing_objects", "orphan_scratch"):
            if out[name]:
                problems.append(f"{name}: {out[name][:5]}")
        if out["multipart_left_after_sweep"]:
            problems.append("incomplete multipart uploads survive the sweep")
        return out


def wait_for(predicate: Any, timeout: float, interval: float = 0.5) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


__all__ = ["LegacyClient", "Proc", "Stack", "free_port", "missing_parts", "nginx_binary", "wait_for", "wait_port"]


class LegacyClient:
    """The firmware's side of the legacy protocol (GET + Basic auth), plus the retries a client needs when a
    replica dies under it: connection errors and 502/503/504 are retried; a retried createProject that finds
    its own project (409 duplicate) or a retried startProject that finds it started (409) counts as success."""

    def __init__(self, base: str, token: str, retries: int = 30) -> None:
        import httpx

        self.base, self.token, self.retries = base.rstrip("/"), token, retries
        self.http = httpx.Client(auth=("openscan", "free"), timeout=httpx.Timeout(120.0, connect=5.0))
        self.links = httpx.Client(timeout=httpx.Timeout(120.0, connect=5.0), follow_redirects=True)
        self.retried = 0

    def _call(self, fn: Any, *args: Any, **kw: Any) -> Any:
        import httpx

        for attempt in range(self.retries):
            try:
                r = fn(*args, **kw)
            except httpx.HTTPError:
                r = None
            if r is not None and r.status_code not in (502, 503, 504):
                return r
            self.retried += 1
            time.sleep(min(0.5 * (attempt + 1), 3))
        raise RuntimeError(f"gave up after {self.retries} tries: {args[:1]}")

    def cmd(self, name: str, **params: Any) -> Any:
        return self._call(self.http.get, f"{self.base}/{name}", params={"token": self.token, **params})

    def submit(self, name: str, data: bytes, photos: int, part_size: int) -> str:
        """createProject + upload every part + startProject; returns the project id."""
        chunks = [data[i:i + part_size] for i in range(0, len(data), part_size)]
        r = self.cmd("createProject", project=name, photos=photos, parts=len(chunks), filesize=len(data))
        if r.status_code == 409:  # our first try went through before the replica died
            r = self.cmd("getProjectInfo", project=name)
        if r.status_code != 200:
            raise RuntimeError(f"createProject {name}: {r.status_code} {r.text}")
        links = r.json()["ulink"]
        for link, chunk in zip(links, chunks):
            up = self._call(self.links.post, link, content=chunk,
                            headers={"Content-Type": "application/octet-stream"})
            if up.status_code != 200:
                raise RuntimeError(f"upload {name}: {up.status_code} {up.text}")
        st = self.cmd("startProject", project=name)
        if st.status_code == 409 and st.json().get("code") == "already_started":
            st = self.cmd("getProjectInfo", project=name)
        if st.status_code != 200:
            raise RuntimeError(f"startProject {name}: {st.status_code} {st.text}")
        return self.cmd("getProjectInfo", project=name).json()["id"]

    def info(self, name: str) -> dict[str, Any]:
        r = self.cmd("getProjectInfo", project=name)
        return r.json() if r.status_code == 200 else {"status": f"http {r.status_code}"}

    def download(self, dlink: str) -> bytes:
        r = self._call(self.links.get, dlink)
        if r.status_code != 200:
            raise RuntimeError(f"download: {r.status_code}")
        return r.content

    def close(self) -> None:
        self.http.close()
        self.links.close()
