"""Desktop tests run headless (Qt offscreen) against the real server on a free port, with an isolated client
home and no OS keyring."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RealServer:
    """`openscan-cloud serve` (via `python -m openscancloud.service_cli`) as a subprocess."""

    def __init__(self, data_dir: Path, workers: int, env: dict[str, str]) -> None:
        self.data_dir, self.port = data_dir, _free_port()
        self.env = {**os.environ, **env}
        self.proc = subprocess.Popen(
            self._cmd("serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers)),
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for line in self.proc.stdout:
            if "listening on http://" in line:
                break
        else:
            raise RuntimeError(f"the server exited with {self.proc.wait()}")
        self.log: list[str] = []
        threading.Thread(target=lambda: self.log.extend(self.proc.stdout), daemon=True).start()

    def _cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "openscancloud.service_cli", *args, "--data-dir", str(self.data_dir)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, **limits) -> str:
        args = ["tokens", "create", "--kind", "private", "--forename", "Grace", "--surname", "Hopper",
                "--email", "grace@example.org", "--json"]
        for key, value in limits.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        out = subprocess.run(self._cmd(*args), env=self.env, capture_output=True, text=True, check=True)
        return json.loads(out.stdout)["token"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def upload_server(tmp_path_factory):
    """No worker: projects stay queued after start (for tests that stop after upload/start)."""
    server = RealServer(tmp_path_factory.mktemp("srv"), 0, {"OPENSCAN_PART_LIMIT_BYTES": "500000"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def processing_server(tmp_path_factory):
    """One built-in worker running the real engine at preview quality."""
    server = RealServer(tmp_path_factory.mktemp("srv-proc"), 1,
                        {"OPENSCAN_PART_LIMIT_BYTES": "1000000", "OPENSCAN_QUALITY": "preview"})
    yield server
    server.stop()


@pytest.fixture
def client_paths(tmp_path, monkeypatch):
    from openscancloud.client.config import ClientPaths

    monkeypatch.setenv("OPENSCAN_CLIENT_HOME", str(tmp_path / "client-home"))
    return ClientPaths.default()


@pytest.fixture
def make_window(qtbot, client_paths):
    """Factory: a shown MainWindow using the test's client home; closed (background work stopped) at the end."""
    from openscancloud.desktop.window import MainWindow
    from openscancloud.client import RetryPolicy

    windows = []

    def make(**kwargs):
        kwargs.setdefault("poll_seconds", 0.5)
        kwargs.setdefault("retry", RetryPolicy(attempts=6, base_delay=0.1, max_delay=1.0))
        window = MainWindow(client_paths, **kwargs)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield make
    for w in windows:
        w.close()


class SlowLink:
    """A TCP proxy on 127.0.0.1 in front of the server: `delay` slows what goes upstream (so an upload takes a
    while), `cut_after(n)` drops every connection once n more bytes went upstream — a flaky home network."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.delay = 0.0
        self.budget: int | None = None
        self.cuts = 0
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut_after(self, n: int) -> None:
        with self.lock:
            self.budget = n

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                return
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        while True:
            try:
                data = src.recv(32768)
            except OSError:
                data = b""
            if not data:
                break
            if upstream:
                if self.delay:
                    time.sleep(self.delay)
                with self.lock:
                    if self.budget is not None:
                        self.budget -= len(data)
                        if self.budget <= 0:
                            self.budget = None
                            self.cuts += 1
                            for s in self.sockets:
                                try:
                                    s.shutdown(socket.SHUT_RDWR)
                                except OSError:
                                    pass
                            self.sockets = []
                            return
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def slow_link():
    links: list[SlowLink] = []

    def make(port: int) -> SlowLink:
        links.append(SlowLink(port))
        return links[-1]

    yield make
    for link in links:
        link.close()
