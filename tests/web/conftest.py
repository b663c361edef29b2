"""Browser tests: a real `openscan-cloud serve` with one worker (the real engine) on a free port, driven by
Playwright for Python through Debian's Chromium (/usr/bin/chromium; no browser is ever downloaded)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class WebServer:
    url: str
    data_dir: Path
    proc: subprocess.Popen
    env: dict[str, str]
    output: list[str] = field(default_factory=list)

    def cli(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "openscancloud.service_cli", *args, "--data-dir",
                              str(self.data_dir)], capture_output=True, text=True, timeout=120, env=self.env)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def token(self, kind: str = "private") -> str:
        extra = ["--forename", "Ada", "--surname", "Lovelace", "--email", "ada@example.org"] if kind == "private" else []
        return json.loads(self.cli("tokens", "create", "--kind", kind, *extra, "--json"))["token"]


def _web_build() -> Path:
    from openscancloud.api.webapp import web_dir

    root = web_dir()
    if not (root / "index.html").is_file():
        if shutil.which("npm") is None:
            pytest.skip("the web app is not built and npm is missing (make install builds it)")
        subprocess.run(["npm", "ci"] if not (REPO / "web" / "node_modules").is_dir() else ["true"], cwd=REPO / "web",
                       check=True)
        subprocess.run(["npm", "run", "build"], cwd=REPO / "web", check=True)
    return root


@pytest.fixture(scope="module")
def web_server(tmp_path_factory) -> Iterator[WebServer]:
    _web_build()
    data_dir = tmp_path_factory.mktemp("web-data")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OPENSCAN_QUALITY": "preview",
           "OPENSCAN_PART_LIMIT_BYTES": "400000"}  # several parts even for a small photo set
    proc = subprocess.Popen(
        [sys.executable, "-m", "openscancloud.service_cli", "serve", "--host", "127.0.0.1", "--port", "0",
         "--data-dir", str(data_dir), "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, env=env)
    output: list[str] = []
    url = None
    deadline = time.time() + 90
    while time.time() < deadline and url is None:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        output.append(line)
        if m := re.fullmatch(r"listening on (http://\S+)\n", line):
            url = m.group(1)
    if url is None:
        proc.kill()
        raise RuntimeError("server did not start:\n" + "".join(output))
    threading.Thread(target=lambda: [output.append(x) for x in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    server = WebServer(url=url, data_dir=data_dir, proc=proc, env=env, output=output)
    yield server
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/system-deps.sh installs it)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


class Guard:
    """Records every request a page makes and every Content-Security-Policy violation it reports."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.outside: list[str] = []
        self.csp: list[str] = []

    def attach(self, context) -> None:
        def on_request(request) -> None:
            url = request.url
            if not (url.startswith(self.origin) or url.startswith(("blob:", "data:"))):
                self.outside.append(url)

        context.on("request", on_request)
        context.on("console", lambda msg: self.csp.append(msg.text) if "Content Security Policy" in msg.text else None)


@pytest.fixture
def new_page(browser, web_server):
    """`new_page(width=1280, height=900)` → (page, guard): a fresh context (no stored token) per call."""
    contexts = []

    def make(width: int = 1280, height: int = 900):
        context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
        guard = Guard(web_server.url)
        guard.attach(context)
        contexts.append(context)
        return context.new_page(), guard

    yield make
    for c in contexts:
        c.close()
