"""The client commands (`upload/status/download/token-info`) against the real server, as a user runs them: every
documented exit code with its sentence, `--wait/--download` on a project a real worker process really
reconstructs, a download that is cut and resumed, an interrupted upload (Ctrl-C) that continues, not enough credit.

Servers: `real_server` (no worker: projects stay queued) and `processing_server` (one real worker process running
the engine at preset preview on photos capped at 320 px); both from tests/client/conftest.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import typer
from typer.testing import CliRunner

from openscancloud.client import Client, NotEnoughCredit, ProjectNotFound
from openscancloud.client.cli import register
from openscancloud.client.config import write_config_file

CLIENT = [sys.executable, "-m", "openscancloud.client"]


@pytest.fixture
def cli_app():
    app = typer.Typer()
    register(app)
    return app


def run_cli(app, args, env=None):
    """In-process run; `catch_exceptions=False` so that a crash is a crash, not a mysterious exit code."""
    return CliRunner().invoke(app, args, env=env, catch_exceptions=False)


def run_client(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*CLIENT, *args], env=env, capture_output=True, text=True, timeout=timeout)


def sha256_file(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_sentence_error(stderr: str) -> str:
    """The CLI's error output: one `Error: ...` line (rich may wrap it), no traceback."""
    assert "Traceback" not in stderr, stderr
    flat = " ".join(stderr.split())
    assert flat.count("Error:") == 1, stderr
    return flat


@pytest.fixture
def client_env(client_paths, tmp_path):
    """Environment for client subprocesses: the test's isolated client home (the one `client_paths` set up), no
    keyring, no inherited settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENSCAN_")}
    return {**env, "OPENSCAN_CLIENT_HOME": str(tmp_path / "client-home"), "OPENSCAN_NO_KEYRING": "1",
            "COLUMNS": "200"}


@pytest.fixture
def not_openscan_server(tmp_path):
    """A real HTTP server that is not OpenScan Cloud (serves an HTML page for every path)."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<html><body>hello</body></html>")

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(tmp_path / "site"), **kw)

        def send_head(self):  # every path answers the page, as a web server with a catch-all would
            self.path = "/index.html"
            return super().send_head()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_every_exit_code_is_one_sentence(cli_app, real_server, make_photos, client_paths, tmp_path,
                                         not_openscan_server):
    token = real_server.token(limit_photos=2)
    folder = make_photos(3)
    base = {"OPENSCAN_SERVER": real_server.url}

    r = run_cli(cli_app, ["token-info", "--token", "prv_nope"], env=base)
    assert r.exit_code == 3, r.output
    assert "did not accept the token" in r.output and "This token is not known to this server." in r.output
    r = run_cli(cli_app, ["token-info", "--token", token, "--basic-auth", "openscan:wrong"], env=base)
    assert r.exit_code == 3 and "HTTP Basic" in r.output
    r = run_cli(cli_app, ["upload", str(tmp_path / "missing"), "--token", token], env=base)
    assert r.exit_code == 2 and "does not exist" in r.output
    r = run_cli(cli_app, ["upload", str(folder), "--token", token], env=base)
    assert r.exit_code == 4 and "at most 2" in r.output
    r = run_cli(cli_app, ["status", "ghost", "--token", token], env=base)
    assert r.exit_code == 8 and "ghost" in r.output
    r = run_cli(cli_app, ["token-info", "--token", token], env={"OPENSCAN_SERVER": ""})
    assert r.exit_code == 2 and "No server given" in r.output
    # 1: an answer the client cannot understand (a web server that is not OpenScan Cloud)
    r = run_cli(cli_app, ["token-info", "--token", token], env={"OPENSCAN_SERVER": not_openscan_server})
    assert r.exit_code == 1, r.output
    assert "was not JSON" in r.output and "is " + not_openscan_server in r.output
    assert "Traceback" not in r.output
    # nothing at all on the server side
    with Client(real_server.url, token, paths=client_paths) as client, pytest.raises(ProjectNotFound):
        client.project_info(folder.name)


def test_unreachable_server_is_exit_5_after_retries(client_env):
    """Nothing listens on the port: the CLI retries with back-off (about 10 s with the default policy), then
    exits 5 with a sentence saying the server could not be reached."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again below: nobody listens there
    started = time.monotonic()
    r = run_client(["token-info", "--server", dead, "--token", "prv_x"], client_env)
    elapsed = time.monotonic() - started
    assert r.returncode == 5, r.stderr
    assert "could not connect" in one_sentence_error(r.stderr)
    assert elapsed >= 0.5 * (0.5 + 1 + 2 + 4 + 8)  # five back-off pauses of 0.5·2^n s, jitter at most halves them


def test_wait_timeout_is_exit_7(cli_app, real_server, make_photos, client_paths):
    """No worker on `real_server`: `--wait --timeout` gives up with 7, and the project keeps its place in line."""
    token = real_server.token()
    env = {"OPENSCAN_SERVER": real_server.url, "OPENSCAN_TOKEN": token}
    r = run_cli(cli_app, ["upload", str(make_photos(2)), "-p", "never-done", "--wait", "--timeout", "1",
                          "--poll", "0.2"], env=env)
    assert r.exit_code == 7, r.output
    assert "Gave up waiting for never-done" in r.output and "it keeps processing on the server" in r.output
    with Client(real_server.url, token, paths=client_paths) as client:
        assert client.project_info("never-done").status == "queued"


def test_ctrl_c_is_exit_130_and_the_upload_continues(real_server, drop_proxy, photo_set, client_env,
                                                      client_paths):
    token = real_server.token()
    proxy = drop_proxy(real_server.port)
    proxy.throttle = 0.2  # slow enough to be interrupted mid-upload on a busy machine (0.05 let one finish first)
    env = {**client_env, "OPENSCAN_SERVER": proxy.url, "OPENSCAN_TOKEN": token}
    cmd = [*CLIENT, "upload", str(photo_set("kermit")), "-p", "kermit-int", "--part-size", "500000", "--no-start"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with Client(real_server.url, token, paths=client_paths) as watcher:
        deadline = time.monotonic() + 120
        parts = []
        while time.monotonic() < deadline:
            try:
                parts = watcher.project_info("kermit-int").parts
            except ProjectNotFound:
                parts = []
            if parts and parts[0].complete:
                break
            time.sleep(0.05)
        assert parts and parts[0].complete, "the upload never got going"
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "Interrupted. Run the same command again to continue where it stopped." in " ".join(err.split())
        assert "Traceback" not in err
        assert not all(p.complete for p in watcher.project_info("kermit-int").parts)

        proxy.throttle = 0
        again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == "kermit-int" and "continued" in again.stderr
        info = watcher.project_info("kermit-int")
        assert all(p.complete for p in info.parts)
        watcher.start("kermit-int")
    record = json.loads(next((client_paths.state_dir / "projects").glob("*.json")).read_text())
    assert sha256_file(real_server.input_zip(info.raw["id"])) == record["sha256"]  # assembled = what was zipped


def test_not_enough_credit_is_refused_before_and_by_the_server(cli_app, real_server, make_photos, client_paths):
    token = real_server.token(credit_gb=0.0001)  # 100 kB of credit; six photos are about 600 kB
    folder = make_photos(6)
    r = run_cli(cli_app, ["upload", str(folder), "-p", "too-dear"],
                env={"OPENSCAN_SERVER": real_server.url, "OPENSCAN_TOKEN": token})
    assert r.exit_code == 4, r.output
    assert "credit" in r.output
    with Client(real_server.url, token, paths=client_paths) as client:
        with pytest.raises(ProjectNotFound):
            client.project_info("too-dear")  # refused before anything was created
        # the server's own rule (a client that skips the check): 402, the same exception, nothing charged
        with pytest.raises(NotEnoughCredit) as err:
            client.create_project("too-dear", photos=6, parts=2, filesize=600_000)
        assert err.value.status_code == 402
        assert client.token_info().credit_gb == pytest.approx(0.0001)


def test_config_file_and_json_output(cli_app, real_server, client_paths):
    token = real_server.token(limit_photos=77)
    write_config_file(client_paths.config_file, {"server": real_server.url, "token": token})
    r = run_cli(cli_app, ["token-info", "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["limit_photos"] == 77 and info["kind"] == "private" and info["part_limit"] == 500_000
    r = run_cli(cli_app, ["token-info", "--token", "prv_other"])  # an explicit flag wins over the file
    assert r.exit_code == 3


def test_commands_are_part_of_the_openscan_cloud_app(real_server, client_env):
    token = real_server.token(limit_photos=33)
    env = {**client_env, "OPENSCAN_SERVER": real_server.url, "OPENSCAN_TOKEN": token}
    out = subprocess.run([sys.executable, "-m", "openscancloud.cli", "token-info", "--json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["limit_photos"] == 33


# ----------------------------------------------------------------------------------------------------------------
# A real worker really processes: --wait/--download, status, a resumed download, a failed reconstruction.
# ----------------------------------------------------------------------------------------------------------------


def test_upload_wait_download_with_a_real_worker(kermit_done, processing_server):
    result = kermit_done["result"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "kermit-done"
    flat = " ".join(result.stderr.split())
    assert "Processing started." in flat and "Project kermit-done is done." in flat
    downloaded = kermit_done["out"] / "kermit-done.zip"
    with Client(processing_server.url, kermit_done["token"]) as client:
        info = client.project_info("kermit-done")
    assert info.status == "done" and info.progress == 100
    assert sha256_file(downloaded) == sha256_file(processing_server.result_zip(info.raw["id"]))
    names = zipfile.ZipFile(downloaded).namelist()
    assert {"model.obj", "model.glb", "report.json"} <= {n.rsplit("/", 1)[-1] for n in names}, names
    status = run_client(["status", "kermit-done", "--json"], kermit_done["env"])
    assert status.returncode == 0 and json.loads(status.stdout)["status"] == "done"


def test_a_cut_download_resumes_where_it_stopped(kermit_done, processing_server, drop_proxy, tmp_path):
    assert kermit_done["result"].returncode == 0
    proxy = drop_proxy(processing_server.port)
    with Client(processing_server.url, kermit_done["token"]) as client:
        info = client.project_info("kermit-done")
    size = processing_server.result_zip(info.raw["id"]).stat().st_size
    assert size > 300_000
    env = {**kermit_done["env"], "OPENSCAN_SERVER": proxy.url}
    proxy.drop_downstream_after(size // 2 + 20_000)  # status answer + half of the result, then the line drops
    r = run_client(["download", "kermit-done", str(tmp_path / "dl")], env)
    assert r.returncode == 0, r.stderr
    assert proxy.drops == 1
    got = tmp_path / "dl" / "kermit-done.zip"
    assert sha256_file(got) == sha256_file(processing_server.result_zip(info.raw["id"]))
    # continued with a Range request: far less than the whole file went down the line twice
    assert proxy.downstream_bytes < size + size // 2 + 100_000, (proxy.downstream_bytes, size)
    assert not (tmp_path / "dl" / "kermit-done.zip.part").exists()


def test_a_failed_reconstruction_is_exit_6(processing_server, make_photos, client_env, tmp_path):
    """Six photos of noise: the real engine cannot place them; `--wait` ends with 6 and the engine's sentence,
    `status` says failed (6) and `download` finds no result (8)."""
    token = processing_server.token()
    env = {**client_env, "OPENSCAN_SERVER": processing_server.url, "OPENSCAN_TOKEN": token}
    r = run_client(["upload", str(make_photos(6, size=320)), "-p", "noise", "--wait", "--poll", "0.5",
                    "--timeout", "900"], env, timeout=1000)
    assert r.returncode == 6, r.stderr[-2000:]
    flat = one_sentence_error(r.stderr)
    with Client(processing_server.url, token) as client:
        info = client.project_info("noise")
    assert info.status == "failed" and info.error and info.error in flat
    status = run_client(["status", "noise"], env)
    assert status.returncode == 6 and "failed" in status.stdout
    download = run_client(["download", "noise", str(tmp_path)], env)
    assert download.returncode == 8 and "no result to download" in one_sentence_error(download.stderr)
