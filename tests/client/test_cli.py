"""The `upload/status/download/token-info` commands: a killed upload continues, and errors are exit codes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile

import pytest
import typer
from typer.testing import CliRunner

from openscancloud.client.cli import register
from openscancloud.client.config import write_config_file


@pytest.fixture
def cli_app():
    app = typer.Typer()
    register(app)
    return app


def run_cli(app, args, env=None):
    return CliRunner().invoke(app, args, env=env, catch_exceptions=False)


def test_killed_upload_is_continued_by_running_it_again(mini_cloud, drop_proxy, make_photos, client_paths, tmp_path):
    cloud = mini_cloud()
    proxy = drop_proxy(cloud.port)
    proxy.throttle = 0.05
    folder = make_photos(10)
    env = {**os.environ, "OPENSCAN_SERVER": proxy.url, "OPENSCAN_TOKEN": cloud.token}
    cmd = [sys.executable, "-m", "openscancloud.client", "upload", str(folder), "--part-size", "300000"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        parts = next(iter(cloud.projects.values()), {}).get("parts", [])
        if parts and parts[0]["complete"]:
            break
        time.sleep(0.02)
    proc.kill()  # like a crash or a closed laptop lid: no clean-up runs
    proc.wait(10)
    (name, project), = cloud.projects.items()
    assert project["parts"][0]["complete"] and not all(p["complete"] for p in project["parts"])
    assert project["status"] == "created"

    proxy.throttle = 0
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == name
    assert "continued" in done.stderr
    records = list((client_paths.state_dir / "projects").glob("*.json"))
    sha = json.loads(records[0].read_text())["sha256"]
    assert hashlib.sha256(cloud.assembled(name)).hexdigest() == sha
    assert cloud.projects[name]["status"] == "done"  # the mini server finishes on start

    result = subprocess.run([sys.executable, "-m", "openscancloud.client", "download", name, str(tmp_path / "res"),
                             "--extract"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "res" / name / "model.obj").is_file()
    assert zipfile.is_zipfile(tmp_path / "res" / f"{name}.zip")


def test_exit_codes_and_sentences(cli_app, mini_cloud, make_photos, client_paths, tmp_path):
    cloud = mini_cloud(limit_photos=2)
    folder = make_photos(3)
    base = {"OPENSCAN_SERVER": cloud.url}
    r = run_cli(cli_app, ["token-info", "--token", "nope"], env=base)
    assert r.exit_code == 3 and "did not accept the token" in r.output
    r = run_cli(cli_app, ["upload", str(tmp_path / "missing"), "--token", cloud.token], env=base)
    assert r.exit_code == 2 and "does not exist" in r.output
    r = run_cli(cli_app, ["upload", str(folder), "--token", cloud.token], env=base)
    assert r.exit_code == 4 and "at most 2" in r.output
    r = run_cli(cli_app, ["status", "ghost", "--token", cloud.token], env=base)
    assert r.exit_code == 8
    r = run_cli(cli_app, ["token-info", "--token", cloud.token], env={"OPENSCAN_SERVER": ""})
    assert r.exit_code == 2 and "No server given" in r.output
    assert "Traceback" not in r.output


def test_config_file_and_json_output(cli_app, mini_cloud, client_paths):
    cloud = mini_cloud()
    write_config_file(client_paths.config_file, {"server": cloud.url, "token": cloud.token})
    r = run_cli(cli_app, ["token-info", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == cloud.info
    # an explicit flag wins over the file
    r = run_cli(cli_app, ["token-info", "--token", "other"])
    assert r.exit_code == 3


def test_upload_wait_download_and_failures(cli_app, mini_cloud, make_photos, client_paths, tmp_path):
    cloud = mini_cloud()
    env = {"OPENSCAN_SERVER": cloud.url, "OPENSCAN_TOKEN": cloud.token}
    r = run_cli(cli_app, ["upload", str(make_photos(3)), "-p", "waited", "--download", str(tmp_path / "out"),
                          "--poll", "0.05"], env=env)
    assert r.exit_code == 0, r.output
    assert "is done" in r.output and (tmp_path / "out" / "waited.zip").is_file()
    r = run_cli(cli_app, ["status"], env=env)
    assert r.exit_code == 0 and "waited" in r.output and "done" in r.output

    cloud.fail_processing = True
    r = run_cli(cli_app, ["upload", str(make_photos(2, name="other")), "-p", "failing", "--wait", "--poll", "0.05"],
                env=env)
    assert r.exit_code == 6
    assert "Too few photos overlap to reconstruct the object." in r.output
    r = run_cli(cli_app, ["status", "failing"], env=env)
    assert r.exit_code == 6 and "failed" in r.output
    r = run_cli(cli_app, ["download", "failing", str(tmp_path)], env=env)
    assert r.exit_code == 8 and "no result to download" in r.output


def test_commands_are_part_of_the_openscan_cloud_app(mini_cloud, client_paths):
    cloud = mini_cloud()
    env = {**os.environ, "OPENSCAN_SERVER": cloud.url, "OPENSCAN_TOKEN": cloud.token}
    out = subprocess.run([sys.executable, "-m", "openscancloud.cli", "token-info", "--json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["limit_photos"] == 1000
