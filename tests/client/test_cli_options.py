"""`upload --quality/--masks/...`, `logs`, `cancel`, `reprocess`, `delete` against the real server (uvicorn
subprocess, no worker): the options arrive on the server, and each command's effect is read back from it."""

from __future__ import annotations

import httpx
import typer
from typer.testing import CliRunner

from openscancloud.client.cli import register


def run_cli(args, env):
    app = typer.Typer()
    register(app)
    return CliRunner().invoke(app, args, env=env, catch_exceptions=False)


def project(server, token: str, name: str) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    listing = httpx.get(f"{server.url}/api/v1/projects", headers=headers).json()["projects"]
    return next(p for p in listing if p["name"] == name)


def test_options_cancel_reprocess_logs_delete(real_server, make_photos, client_paths):
    token = real_server.token()
    env = {"OPENSCAN_SERVER": real_server.url, "OPENSCAN_TOKEN": token}
    r = run_cli(["upload", str(make_photos(3)), "-p", "opts", "--quality", "preview", "--masks", "off",
                 "--target-faces", "20000", "--formats", "glb,stl"], env)
    assert r.exit_code == 0, r.output
    remote = project(real_server, token, "opts")
    assert remote["status"] == "queued"
    assert remote["options"] == {"quality": "preview", "masks": "off", "texture_size": None,
                                 "target_faces": 20000, "formats": ["glb", "stl"]}
    r = run_cli(["status", "opts"], env)
    assert "time left unknown" in r.output  # no job finished on this server yet: said, not invented

    r = run_cli(["logs", "opts"], env)
    assert r.exit_code == 0 and "No log yet" in r.output

    r = run_cli(["reprocess", "opts", "--quality", "high"], env)
    assert r.exit_code != 0 and "only a done, failed or cancelled project" in r.output

    r = run_cli(["cancel", "opts"], env)
    assert r.exit_code == 0 and "cancelled" in r.output
    r = run_cli(["reprocess", "opts", "--quality", "high", "--texture-size", "2048"], env)
    assert r.exit_code == 0, r.output
    remote = project(real_server, token, "opts")
    assert remote["status"] == "queued" and remote["options"]["quality"] == "high"
    assert remote["options"]["texture_size"] == 2048 and remote["options"]["formats"][0] == "glb"

    r = run_cli(["upload", str(make_photos(2, name="bad")), "-p", "bad", "--formats", "fbx"], env)
    assert r.exit_code == 2 and "formats must name one or more of" in r.output

    r = run_cli(["delete", "opts", "--yes"], env)
    assert r.exit_code == 0 and "deleted" in r.output
    headers = {"Authorization": f"Bearer {token}"}
    names = [p["name"] for p in httpx.get(f"{real_server.url}/api/v1/projects", headers=headers).json()["projects"]]
    assert "opts" not in names
