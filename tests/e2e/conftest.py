"""A real `openscan-cloud serve` process (uvicorn) on a free port, started the way an operator does."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class RunningServer:
    url: str
    public_token: str
    data_dir: Path
    proc: subprocess.Popen
    output: list[str] = field(default_factory=list)

    def cli(self, *args: str) -> str:
        """Run a `service_cli` command against this server's data dir; returns stdout."""
        out = subprocess.run([sys.executable, "-m", "openscancloud.service_cli", *args, "--data-dir",
                              str(self.data_dir)], capture_output=True, text=True, timeout=120,
                             env=self.proc.args_env)  # type: ignore[attr-defined]
        assert out.returncode == 0, out.stderr
        return out.stdout


def _start(data_dir: Path, workers: int, env_extra: dict[str, str]) -> RunningServer:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **env_extra}
    proc = subprocess.Popen(
        [sys.executable, "-m", "openscancloud.service_cli", "serve", "--host", "127.0.0.1", "--port", "0",
         "--data-dir", str(data_dir), "--workers", str(workers)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, env=env,
    )
    proc.args_env = env  # type: ignore[attr-defined]
    output: list[str] = []
    url = token = None
    deadline = time.time() + 90
    while time.time() < deadline and (url is None or token is None):
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        output.append(line)
        if m := re.fullmatch(r"listening on (http://\S+)\n", line):
            url = m.group(1)
        if m := re.fullmatch(r"public token: (\S+)\n", line):
            token = m.group(1)
    if url is None or token is None:
        proc.kill()
        raise RuntimeError("server did not start:\n" + "".join(output))

    def drain() -> None:  # keep reading so the pipe never blocks the server
        for line in proc.stdout:  # type: ignore[union-attr]
            output.append(line)

    threading.Thread(target=drain, daemon=True).start()
    return RunningServer(url=url, public_token=token, data_dir=data_dir, proc=proc, output=output)


@pytest.fixture
def start_server(tmp_path):
    """`start_server(workers=0, data_dir=None, **OPENSCAN_env)` → RunningServer; stopped after the test."""
    servers: list[RunningServer] = []

    def start(workers: int = 0, data_dir: Path | None = None, **env: str) -> RunningServer:
        server = _start(data_dir or tmp_path / "data", workers, {f"OPENSCAN_{k.upper()}": str(v) for k, v in env.items()})
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.proc.poll() is None:
            os.killpg(server.proc.pid, signal.SIGTERM)
            try:
                server.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.proc.pid, signal.SIGKILL)
                server.proc.wait()
