"""What the public-server guards cost: requests/s of the polling call (`getProjectInfo`) and of a small REST
call (`GET /api/v1/projects/{id}` with its project key) against

* **guarded** — the server as `serve` runs it: the request-limits middleware (body limit, JSON depth, HEAD/OPTIONS)
  and uvicorn's httptools protocol with the header size/time guards;
* **plain** — the same app and database without the middleware, on uvicorn's stock httptools protocol.

Both run as separate processes on one SQLite data dir, measured alternately (rounds A B A B …) in one run; the
result is the median of the rounds and the ratio guarded/plain. Writes `### Guards (bench/guards.py)` into the
`## Scale-out` section of docs/benchmarks.md.

    .venv/bin/python bench/guards.py                     # 3 rounds × 8 s per server, 20 clients
    .venv/bin/python bench/guards.py --rounds 2 --seconds 3 --no-write
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE / "scale"))

from report import update_block  # noqa: E402
from stack import free_port  # noqa: E402

AUTH = ("openscan", "free")

SERVER = r"""
import sys, uvicorn
from pathlib import Path
from openscancloud.api.app import create_app
from openscancloud.api.limits import RequestLimits, uvicorn_config
from openscancloud.settings import Settings
mode, data_dir, port = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
settings = Settings(data_dir=data_dir, maintenance_interval_seconds=0)
app = create_app(settings, maintenance=False)
if mode == "plain":
    app.user_middleware = [m for m in app.user_middleware if m.cls is not RequestLimits]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http="httptools", log_level="warning")
else:
    config = uvicorn_config(app, settings, "127.0.0.1", port, log_level="warning")
uvicorn.Server(config).run()
"""


def start(mode: str, data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, mode, str(data_dir), str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/status", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{mode} server did not start")


async def hammer(make_request, clients: int, seconds: float) -> tuple[int, int]:
    done = errors = 0
    stop = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=clients)) as client:
        async def one() -> None:
            nonlocal done, errors
            while time.perf_counter() < stop:
                r = await make_request(client)
                done += 1
                errors += r.status_code != 200

        await asyncio.gather(*(one() for _ in range(clients)))
    return done, errors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="osc-guards-") as tmp:
        data_dir = Path(tmp) / "data"
        servers = {mode: start(mode, data_dir) for mode in ("guarded", "plain")}
        try:
            url = servers["guarded"][1]
            token = json.loads(subprocess.run(
                [sys.executable, "-m", "openscancloud.service_cli", "tokens", "public", "--json", "--data-dir",
                 str(data_dir)], capture_output=True, text=True, check=True,
                env={**os.environ, "PYTHONPATH": str(REPO / "src")}).stdout)["token"]
            created = httpx.post(f"{url}/api/v1/projects", headers={"Authorization": f"Bearer {token}"},
                                 json={"name": "bench", "photos": 10, "parts": 1, "filesize": 1000}).json()
            pid, key = created["id"], created["project_key"]
            calls = {
                "getProjectInfo (legacy, polling)": lambda base: lambda c: c.get(
                    f"{base}/getProjectInfo", params={"token": token, "project": "bench"}, auth=AUTH),
                "GET /api/v1/projects/{id} (REST, project key)": lambda base: lambda c: c.get(
                    f"{base}/api/v1/projects/{pid}", headers={"Authorization": f"Bearer {token}",
                                                               "X-Project-Key": key}),
            }
            results: dict[str, dict[str, list[float]]] = {name: {"guarded": [], "plain": []} for name in calls}
            for make in calls.values():  # warm-up, not measured: connections, caches, first queries
                for mode in ("guarded", "plain"):
                    asyncio.run(hammer(make(servers[mode][1]), args.clients, 1.0))
            errors = 0
            for _ in range(args.rounds):
                for name, make in calls.items():
                    for mode in (("guarded", "plain") if _ % 2 == 0 else ("plain", "guarded")):
                        done, err = asyncio.run(hammer(make(servers[mode][1]), args.clients, args.seconds))
                        results[name][mode].append(done / args.seconds)
                        errors += err
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=30)

    load_after = os.getloadavg()[0]
    rows = []
    for name, by_mode in results.items():
        g, p = statistics.median(by_mode["guarded"]), statistics.median(by_mode["plain"])
        spread = " / ".join(f"{a:.0f}:{b:.0f}" for a, b in zip(by_mode["guarded"], by_mode["plain"]))
        rows.append(f"| {name} | {g:.0f} | {p:.0f} | **{g / p:.2f}** | {spread} |")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = (f"`.venv/bin/python bench/guards.py --rounds {args.rounds} --seconds {args.seconds:g} "
            f"--clients {args.clients}` — {when}. Two API processes on one SQLite data dir (127.0.0.1): *guarded* "
            "as `serve` runs it (request-limits middleware, httptools with header size/time guards), *plain* the "
            "same app without the middleware on stock httptools; measured alternately, medians of "
            f"{args.rounds} rounds of {args.seconds:g} s with {args.clients} concurrent clients; {errors} errors. "
            "The load generator shares the 2 cores with the servers (and other work: 1-min load average "
            f"{load_before:.1f} before, {load_after:.1f} after), so absolute figures are low and single rounds "
            "vary a lot; the median ratio is what this measures.\n\n"
            "| call | guarded req/s | plain req/s | guarded / plain | rounds (guarded:plain) |\n|---|---|---|---|---|\n"
            + "\n".join(rows))
    print(body)
    if not args.no_write:
        update_block(REPO / "docs" / "benchmarks.md", "### Guards (`bench/guards.py`)", body)
        print("figures written to docs/benchmarks.md")


if __name__ == "__main__":
    main()
