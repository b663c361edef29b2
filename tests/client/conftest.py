"""Fixtures for the client tests: a TCP proxy that cuts connections, a tiny real HTTP server speaking the legacy
part-upload protocol (for the SDK's state machine before/without the full server), photo folders, client homes."""

from __future__ import annotations

import hashlib
import json
import random
import re
import socket
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DropProxy:
    """Forwards 127.0.0.1:port → target; `drop_after(n)` cuts every open connection once `n` more bytes went
    upstream (client → server). Each cut counts in `drops`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.budget: int | None = None
        self.down_budget: int | None = None
        self.drops = 0
        self.upstream_bytes = 0
        self.downstream_bytes = 0
        self.conns: list[socket.socket] = []
        self.closed = False
        self.throttle = 0.0  # seconds to pause per upstream read, to make uploads slow enough to interrupt
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def drop_after(self, n: int) -> None:
        with self.lock:
            self.budget = n

    def drop_downstream_after(self, n: int) -> None:
        """Cut every open connection once `n` more bytes went downstream (server → client), e.g. mid-download."""
        with self.lock:
            self.down_budget = n

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _cut_all(self) -> None:
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.conns = []

    def _pump(self, src: socket.socket, dst: socket.socket, counts: bool) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            if counts and self.throttle:
                time.sleep(self.throttle)
            if not counts:
                with self.lock:
                    self.downstream_bytes += len(data)
                    if self.down_budget is not None:
                        if len(data) >= self.down_budget:
                            try:
                                dst.sendall(data[: self.down_budget])
                            except OSError:
                                pass
                            self.down_budget = None
                            self.drops += 1
                            self._cut_all()
                            return
                        self.down_budget -= len(data)
            if counts:
                with self.lock:
                    self.upstream_bytes += len(data)
                    if self.budget is not None:
                        if len(data) >= self.budget:
                            data = data[: self.budget]
                            try:
                                dst.sendall(data)
                            except OSError:
                                pass
                            self.budget = None
                            self.drops += 1
                            self._cut_all()
                            return
                        self.budget -= len(data)
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        with self.lock:
            self._cut_all()


@pytest.fixture
def drop_proxy():
    proxies: list[DropProxy] = []

    def make(target_port: int) -> DropProxy:
        proxy = DropProxy(target_port)
        proxies.append(proxy)
        return proxy

    yield make
    for p in proxies:
        p.close()


# --------------------------------------------------------------------------------------------------------------
# MiniCloud: a small stand-in for the legacy protocol, kept only for what the real server cannot show on demand
# (a server without ranged uploads; a log of every request a resumed upload sends). It answers with the real
# server's status codes, error codes and field names — test_fake_contract.py checks that side by side.
# --------------------------------------------------------------------------------------------------------------


class MiniCloud:
    def __init__(self, *, ranged: bool = True, limit_photos: int = 1000, limit_filesize: int = 10**9,
                 credit: float = 10.0, part_limit: int = 200_000_000) -> None:
        self.ranged = ranged
        self.fail_processing = False
        self.ranges: list[str | None] = []  # Range headers of result downloads
        self.token = "tok-" + "%08x" % random.getrandbits(32)
        self.info = {"credit": credit, "limit_filesize": limit_filesize, "limit_photos": limit_photos,
                     "kind": "private", "part_limit": part_limit, "status": "active"}
        self.projects: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict]] = []
        self.lock = threading.Lock()
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _error(self, code: int, error: str, message: str, **extra) -> None:
                self._json(code, {"status": "error", "error": error, "message": message, **extra})

            def _json(self, code: int, data: dict, headers: dict | None = None) -> None:
                body = json.dumps(data).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self):
                cloud.handle_get(self)

            def do_HEAD(self):
                cloud.handle_part(self)

            def do_POST(self):
                cloud.handle_part(self)

            do_PUT = do_POST

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def assembled(self, name: str) -> bytes:
        return b"".join(bytes(p["data"]) for p in self.projects[name]["parts"])

    def handle_get(self, h) -> None:
        url = urlparse(h.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        endpoint = url.path.strip("/")
        self.requests.append(("GET", endpoint, q))
        if endpoint.startswith("result/"):
            return self.serve_result(h, endpoint.split("/", 1)[1])
        if h.headers.get("Authorization") != "Basic b3BlbnNjYW46ZnJlZQ==":
            return h._json(401, {"status": "error", "error": "wrong_basic_auth",
                                 "message": "Wrong or missing HTTP Basic credentials for the OpenScan Cloud API."},
                           {"WWW-Authenticate": 'Basic realm="OpenScan Cloud"'})
        if endpoint == "status":
            return h._json(200, {"status": "ok", "version": "mini", "queue_length": 0, "workers_online": 0})
        if q.get("token") != self.token:
            return h._error(401, "invalid_token", "This token is not known to this server.")
        if endpoint == "getTokenInfo":
            return h._json(200, self.info)
        name = q.get("project", "")
        with self.lock:
            project = self.projects.get(name)
            if endpoint == "createProject":
                if project:
                    return h._error(409, "duplicate_name", f"A project named '{name}' already exists for this token.")
                if int(q["photos"]) > self.info["limit_photos"]:
                    return h._error(413, "too_many_photos", f"{q['photos']} photos are more than this token allows "
                                    f"({self.info['limit_photos']}).")
                if int(q["filesize"]) > self.info["limit_filesize"]:
                    return h._error(413, "file_too_large", f"The upload of {q['filesize']} bytes is larger than "
                                    f"this token allows ({self.info['limit_filesize']} bytes).")
                n = int(q["parts"])
                self.projects[name] = {
                    "status": "created", "filesize": int(q["filesize"]), "photos": int(q["photos"]),
                    "parts": [{"data": bytearray(), "complete": False} for _ in range(n)],
                }
                return h._json(200, {"status": "created", "credit": 0.1, "project": name,
                                     "ulink": [f"http://{h.headers['Host']}/upload/{name}/{i}" for i in range(n)]})
            if project is None:
                return h._error(404, "unknown_project", f"This token has no project named '{name}'.")
            if endpoint == "getProjectInfo":
                parts = [
                    {"index": i, "size": len(p["data"]), "complete": p["complete"],
                     "sha256": hashlib.sha256(p["data"]).hexdigest() if p["complete"] else None}
                    for i, p in enumerate(project["parts"])
                ]
                return h._json(200, {"status": project["status"], "dlink": project.get("dlink"),
                                     "error": project.get("error"), "name": name, "project": name,
                                     "ulink": [f"http://{h.headers['Host']}/upload/{name}/{i}" for i in range(len(parts))],
                                     "progress": 100 if project["status"] == "done" else 0, "stage": None,
                                     "photos": project["photos"], "filesize": project["filesize"], "parts": parts})
            if endpoint == "startProject":
                missing = [i for i, p in enumerate(project["parts"]) if not p["complete"]]
                if missing:
                    return h._error(409, "missing_parts", f"Parts {', '.join(map(str, missing))} are missing; "
                                    "upload them before starting.", missing_parts=missing)
                if not zipfile.is_zipfile(BytesIO(self.assembled(name))):
                    return h._error(422, "corrupt_zip", "The uploaded file is not a readable zip archive (File is "
                                    "not a zip file).")
                if self.fail_processing:
                    project["status"] = "failed"
                    project["error"] = "Too few photos overlap to reconstruct the object."
                else:
                    project["status"] = "done"
                    project["dlink"] = f"http://{h.headers['Host']}/result/{name}"
                return h._json(200, {"status": "started", "project": name})
        return h._error(404, "not_found", "Not Found")

    def result_zip(self, name: str) -> bytes:
        buf = BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            fixed = (2024, 1, 1, 0, 0, 0)  # same bytes on every request, as a stored result is
            zf.writestr(zipfile.ZipInfo("model.obj", fixed), "o mini\n" * 5000)
            zf.writestr(zipfile.ZipInfo("input.sha256", fixed), hashlib.sha256(self.assembled(name)).hexdigest())
        return buf.getvalue()

    def serve_result(self, h, name: str) -> None:
        data = self.result_zip(name)
        self.ranges.append(h.headers.get("Range"))
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", h.headers.get("Range", ""))
        if m:
            start = int(m.group(1))
        body = data[start:]
        h.send_response(206 if m else 200)
        h.send_header("Content-Type", "application/zip")
        h.send_header("Content-Length", str(len(body)))
        if m:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        h.wfile.write(body)

    def handle_part(self, h) -> None:
        url = urlparse(h.path)
        if h.command == "GET" or url.path.startswith("/result/"):
            return self.handle_get(h)
        m = re.fullmatch(r"/upload/([^/]+)/(\d+)", url.path)
        self.requests.append((h.command, url.path, dict(h.headers)))
        if not m or m.group(1) not in self.projects:
            return h._error(404, "not_found", "There is no such upload link.")
        project = self.projects[m.group(1)]
        part = project["parts"][int(m.group(2))]
        if h.command == "HEAD":
            if not self.ranged:
                return h._error(405, "method_not_allowed", "Method Not Allowed")
            return h._json(200, {}, {"Upload-Offset": str(len(part["data"])),
                                     "Upload-Complete": "?1" if part["complete"] else "?0"})
        length = int(h.headers.get("Content-Length", "0"))
        crange = h.headers.get("Content-Range")
        if crange and self.ranged:
            start, end, total = map(int, re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", crange).groups())
            if start == 0:
                part["data"] = bytearray()
                part["complete"] = False
            if start != len(part["data"]):
                h.rfile.read(length)
                return h._error(409, "offset_mismatch", f"This part continues at byte {len(part['data'])}.",
                                offset=len(part["data"]))
            index = int(m.group(2))
            others = sum(len(p["data"]) for i, p in enumerate(project["parts"]) if i != index and p["complete"])
            allowance = max(0, min(self.info["part_limit"], project["filesize"] - others))
            if total > allowance:  # the server bounds a part by its part limit and by the declared filesize
                h.rfile.read(length)
                if allowance >= self.info["part_limit"]:
                    return h._error(413, "part_too_large", f"An upload part may be at most {allowance} bytes; "
                                    "split the zip into more parts.")
                return h._error(413, "part_too_large", f"This part may be at most {allowance} bytes: that is what "
                                "is left of the filesize declared when the project was created.")
            target = part["data"]
        else:
            target = bytearray()
        remaining = length
        while remaining:
            block = h.rfile.read(min(65536, remaining))
            if not block:
                return  # connection dropped: what arrived stays (ranged) or is discarded (whole)
            target.extend(block)
            remaining -= len(block)
        project["status"] = "uploading"
        if not (crange and self.ranged):
            part["data"], part["complete"] = target, True
        elif end + 1 < total:
            return h._json(202, {"part": int(m.group(2)), "offset": len(part["data"]), "complete": False})
        else:
            part["complete"] = True
        return h._json(200, {"part": int(m.group(2)), "size": len(part["data"]),
                             "sha256": hashlib.sha256(part["data"]).hexdigest(), "offset": len(part["data"]),
                             "complete": True})

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mini_cloud():
    clouds: list[MiniCloud] = []

    def make(**kwargs) -> MiniCloud:
        cloud = MiniCloud(**kwargs)
        clouds.append(cloud)
        return cloud

    yield make
    for c in clouds:
        c.close()


@pytest.fixture
def client_paths(tmp_path, monkeypatch):
    """An isolated client home (config, state, cache) for each test."""
    from openscancloud.client.config import ClientPaths

    home = tmp_path / "client-home"
    monkeypatch.setenv("OPENSCAN_CLIENT_HOME", str(home))
    for var in ("OPENSCAN_SERVER", "OPENSCAN_TOKEN", "OPENSCAN_BASIC_AUTH", "OPENSCAN_PART_SIZE"):
        monkeypatch.delenv(var, raising=False)
    return ClientPaths.default()


def _noise_jpeg(path: Path, seed: int, size: int = 256) -> None:
    from PIL import Image

    rng = random.Random(seed)
    img = Image.frombytes("RGB", (size, size), rng.randbytes(size * size * 3))
    img.save(path, "JPEG", quality=95)


@pytest.fixture
def make_photos(tmp_path):
    """Factory: a folder with `n` small, incompressible JPEGs (≈100 KB each) and optional extra files."""

    def make(n: int = 6, name: str = "photos", size: int = 256) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        for i in range(n):
            _noise_jpeg(folder / f"img{i:03d}.jpg", seed=i, size=size)
        return folder

    return make


@pytest.fixture
def zip_bytes_names():
    def names(data: bytes) -> list[str]:
        return zipfile.ZipFile(BytesIO(data)).namelist()

    return names


# --------------------------------------------------------------------------------------------------------------
# The real server, as a subprocess on a free port (skips when the server package is not installed).
# --------------------------------------------------------------------------------------------------------------


class RealServer:
    def __init__(self, data_dir: Path, *, workers: int = 0, env: dict[str, str] | None = None) -> None:
        import os
        import subprocess

        self.data_dir = data_dir
        self.env = {**os.environ, **(env or {})}
        self.workers = workers
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.start()

    def _cmd(self, *args: str) -> list[str]:
        import sys

        return [sys.executable, "-m", "openscancloud.service_cli", *args, "--data-dir", str(self.data_dir)]

    def start(self) -> None:
        import subprocess

        self.proc = subprocess.Popen(
            self._cmd("serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)),
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        deadline = time.monotonic() + 60
        for line in self.proc.stdout:
            if "listening on http://" in line:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
        else:
            raise RuntimeError(f"server exited with {self.proc.wait()}")
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # keep the pipe drained

    worker_proc = None

    def stop(self) -> None:
        if self.worker_proc is not None and self.worker_proc.poll() is None:
            import os
            import signal

            os.killpg(self.worker_proc.pid, signal.SIGTERM)  # the worker stops its engine child too
            try:
                self.worker_proc.wait(30)
            except Exception:
                os.killpg(self.worker_proc.pid, signal.SIGKILL)
                self.worker_proc.wait(5)
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, **limits) -> str:
        import subprocess

        args = ["tokens", "create", "--kind", "private", "--forename", "Ada", "--surname", "Lovelace",
                "--email", "ada@example.org", "--json"]
        for key, value in limits.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        out = subprocess.run(self._cmd(*args), env=self.env, capture_output=True, text=True, check=True)
        return json.loads(out.stdout)["token"]

    def input_zip(self, project_id: str) -> Path:
        return self.data_dir / "storage" / "projects" / project_id / "input.zip"

    def result_zip(self, project_id: str) -> Path:
        return self.data_dir / "storage" / "projects" / project_id / "result.zip"

    def start_worker(self, max_image_size: int = 320) -> None:
        """A real `openscan-cloud worker` process pulling jobs over HTTP and running the real engine."""
        import subprocess

        out = subprocess.run(self._cmd("tokens", "create", "--kind", "worker", "--label", "test worker"),
                             env=self.env, capture_output=True, text=True, check=True)
        self.worker_proc = subprocess.Popen(
            [*self._cmd("worker", "--server", self.url, "--token", out.stdout.strip(), "--max-image-size",
                        str(max_image_size))],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    """The real server (no worker; part limit 500 kB) for upload tests that stop after start."""
    server = RealServer(tmp_path_factory.mktemp("server"), workers=0,
                        env={"OPENSCAN_PART_LIMIT_BYTES": "500000"})
    yield server
    server.stop()


@pytest.fixture(scope="session")
def processing_server(tmp_path_factory):
    """The real server with one real worker process (engine at preset preview, photos capped at 320 px) and
    quick polling hints: projects really finish (or really fail) here."""
    server = RealServer(tmp_path_factory.mktemp("server-proc"), workers=0,
                        env={"OPENSCAN_PART_LIMIT_BYTES": "500000", "OPENSCAN_QUALITY": "preview"})
    server.start_worker(max_image_size=320)
    yield server
    server.stop()


@pytest.fixture
def server_factory(tmp_path):
    """Factory for a private real server (e.g. one the test stops and restarts)."""
    servers: list[RealServer] = []

    def make(**env: str) -> RealServer:
        servers.append(RealServer(tmp_path / f"srv{len(servers)}", workers=0, env=env))
        return servers[-1]

    yield make
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def kermit_done(processing_server, photo_set, tmp_path_factory):
    """`openscan-cloud upload kermit -p kermit-done --download OUT` run once per session against the processing
    server (the real worker reconstructs it); its outcome (`result`, `out`, `env`, `token`, `seconds`) is shared
    by the tests that need a finished project."""
    import os
    import subprocess
    import sys

    home = tmp_path_factory.mktemp("client-home")
    out = tmp_path_factory.mktemp("downloads")
    token = processing_server.token()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OPENSCAN_")},
           "OPENSCAN_CLIENT_HOME": str(home), "OPENSCAN_NO_KEYRING": "1", "COLUMNS": "200",
           "OPENSCAN_SERVER": processing_server.url, "OPENSCAN_TOKEN": token}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "openscancloud.client", "upload", str(photo_set("kermit")),
                             "-p", "kermit-done", "--download", str(out), "--poll", "0.5", "--timeout", "900"],
                            env=env, capture_output=True, text=True, timeout=1000)
    return {"result": result, "out": out, "env": env, "token": token, "seconds": time.monotonic() - started}
