"""Load test of one API process (`openscan-cloud serve --workers 0`, PostgreSQL, local disk storage):

1. `getProjectInfo` from 50 concurrent clients for a fixed time → requests/s, p50/p99 latency;
2. 10 concurrent uploads of a 200 MB part each (the default part limit) → MB/s, against the disk's own write
   speed measured with `dd` in the same run, and the API process's RSS sampled every 50 ms (it must stay flat:
   parts are streamed to disk, never held in memory).

Writes the figures to docs/benchmarks.md (`## Scale-out` → `### Load`).

    .venv/bin/python bench/load.py                  # 50 clients × 20 s, 10 × 200 MB
    .venv/bin/python bench/load.py --seconds 5 --uploads 4 --part-mb 50 --no-write
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE / "scale"))

from report import update_block  # noqa: E402
from stack import PG_BASE, free_port, postgres_reachable  # noqa: E402

AUTH = ("openscan", "free")


class RssSampler(threading.Thread):
    """Peak resident memory of a process tree, sampled every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.samples: list[int] = []
        self.done = threading.Event()

    def rss(self) -> int:
        import psutil

        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.samples.append(self.rss())

    def stop(self) -> int:
        self.done.set()
        self.join()
        return max(self.samples) if self.samples else self.rss()


def dd_speed(directory: Path, megabytes: int, sync: bool = True) -> float:
    """MB/s of `dd` writing zeros to the data dir, flushed to disk (conv=fdatasync) or not (page cache, like the
    API's part writes, which are not fsync'ed)."""
    target = directory / "dd.tmp"
    out = subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={megabytes}",
                          *(["conv=fdatasync"] if sync else [])], capture_output=True, text=True)
    target.unlink(missing_ok=True)
    m = re.search(r"(\d+(?:\.\d+)?) s, ", out.stderr)
    seconds = float(m.group(1)) if m else float("nan")
    return megabytes * 1.048576 / seconds


async def info_load(base: str, token: str, project: str, clients: int, seconds: float) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, auth=AUTH, limits=limits, timeout=30) as http:
        async def one_client() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                t = time.perf_counter()
                r = await http.get("/getProjectInfo", params={"token": token, "project": project})
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t)
                else:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    latencies.sort()
    return {
        "requests": len(latencies), "errors": errors, "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


async def upload_load(links: list[str], part_bytes: int) -> dict[str, Any]:
    import httpx

    block = os.urandom(1 << 20)

    async def body():
        sent = 0
        while sent < part_bytes:
            chunk = block[: min(len(block), part_bytes - sent)]
            sent += len(chunk)
            yield chunk

    async with httpx.AsyncClient(timeout=600) as http:
        async def one(link: str) -> int:
            r = await http.post(link, content=body(), headers={"Content-Type": "application/octet-stream",
                                                               "Content-Length": str(part_bytes)})
            r.raise_for_status()
            return r.json()["size"]

        t0 = time.perf_counter()
        sizes = await asyncio.gather(*(one(link) for link in links))
        elapsed = time.perf_counter() - t0
    return {"bytes": sum(sizes), "seconds": elapsed, "mb_s": sum(sizes) / 1e6 / elapsed}


def run_load(root: Path, *, clients: int = 50, seconds: float = 20.0, uploads: int = 10, part_mb: int = 200,
             use_postgres: bool = True, log: Any = print) -> dict[str, Any]:
    import httpx
    from sqlalchemy import create_engine, text

    root.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENSCAN_")}
    schema = None
    if use_postgres and postgres_reachable():
        schema = f"load_{os.getpid()}_{int(time.time())}"
        engine = create_engine(PG_BASE)
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        env["OPENSCAN_DATABASE_URL"] = f"{PG_BASE}?options=-csearch_path%3D{schema}"
    part_bytes = part_mb * 1_000_000
    env.update({"PYTHONUNBUFFERED": "1", "OPENSCAN_PART_LIMIT_BYTES": str(max(part_bytes, 200_000_000)),
                "OPENSCAN_PUBLIC_DAILY_CREDIT_GB": "1000", "OPENSCAN_PUBLIC_LIMIT_FILESIZE": str(10**12)})
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "openscancloud.service_cli", "serve", "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "0", "--data-dir", str(root / "data")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    token = None
    for line in server.stdout:  # type: ignore[union-attr]
        if line.startswith("public token: "):
            token = line.split(": ", 1)[1].strip()
            break
    base = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {"clients": clients, "seconds": seconds, "uploads": uploads, "part_mb": part_mb,
                              "database": "PostgreSQL 15" if schema else "SQLite"}
    try:
        http = httpx.Client(base_url=base, auth=AUTH, timeout=60)
        # 1) getProjectInfo under 50 concurrent clients
        http.get("/createProject", params=dict(token=token, project="info.zip", photos=10, parts=2, filesize=1000))
        asyncio.run(info_load(base, token, "info.zip", 5, 2.0))  # warm-up
        import psutil

        cpu = psutil.Process(server.pid).cpu_times()
        result["info"] = asyncio.run(info_load(base, token, "info.zip", clients, seconds))
        used = sum(psutil.Process(server.pid).cpu_times()[:2]) - sum(cpu[:2])
        result["info"]["server_cpu_ms_per_request"] = 1000 * used / max(1, result["info"]["requests"])
        log(f"getProjectInfo: {result['info']}")
        # 2) dd, then 10 concurrent 200 MB parts while sampling the server's RSS
        result["dd_mb_s"] = dd_speed(root / "data", uploads * part_mb // 2)
        result["dd_cached_mb_s"] = dd_speed(root / "data", uploads * part_mb // 2, sync=False)
        log(f"dd: {result['dd_mb_s']:.0f} MB/s flushed, {result['dd_cached_mb_s']:.0f} MB/s page cache")
        created = http.get("/createProject", params=dict(token=token, project="big.zip", photos=10, parts=uploads,
                                                         filesize=uploads * part_bytes)).json()
        sampler = RssSampler(server.pid)
        result["rss_before_mb"] = sampler.rss() / 2**20
        sampler.start()
        result["upload"] = asyncio.run(upload_load(created["ulink"], part_bytes))
        result["rss_peak_mb"] = sampler.stop() / 2**20
        result["rss_after_mb"] = RssSampler(server.pid).rss() / 2**20
        log(f"uploads: {result['upload']}, RSS {result['rss_before_mb']:.0f} → peak {result['rss_peak_mb']:.0f} MB")
        http.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(root / "data" / "storage", ignore_errors=True)
        if schema:
            with engine.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            engine.dispose()
    return result


def markdown(r: dict[str, Any]) -> str:
    i, u = r["info"], r["upload"]
    return f"""
`.venv/bin/python bench/load.py` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. One API process
(`openscan-cloud serve --workers 0`, uvicorn, {r['database']}, local-disk storage) on 127.0.0.1; the load
generator (httpx, asyncio) runs on the same 2 cores, shared with other work.

| test | result |
|---|---|
| `getProjectInfo`, {r['clients']} concurrent clients, {r['seconds']:.0f} s | **{i['rps']:.0f} req/s**, p50 {i['p50_ms']:.0f} ms, p99 {i['p99_ms']:.0f} ms, {i['errors']} errors ({i['requests']} requests); the API process used {i['server_cpu_ms_per_request']:.1f} ms CPU per request (≈ {1000 / i['server_cpu_ms_per_request']:.0f} req/s per free core) |
| {r['uploads']} concurrent {r['part_mb']} MB part uploads (raw POST, streamed to disk + sha256) | **{u['mb_s']:.0f} MB/s** total ({u['bytes'] / 1e9:.1f} GB in {u['seconds']:.1f} s) |
| `dd if=/dev/zero bs=1M` to the same disk, same run: without / with `conv=fdatasync` | {r['dd_cached_mb_s']:.0f} / {r['dd_mb_s']:.0f} MB/s → the uploads reach {100 * u['mb_s'] / r['dd_cached_mb_s']:.0f} % of `dd` into the page cache (parts are written like that: not fsync'ed) and {100 * u['mb_s'] / r['dd_mb_s']:.0f} % of the flushed rate |
| API process RSS: before → peak during the uploads → after | {r['rss_before_mb']:.0f} → **{r['rss_peak_mb']:.0f}** → {r['rss_after_mb']:.0f} MB (flat: {r['uploads']} × {r['part_mb']} MB = {r['uploads'] * r['part_mb']} MB never held in memory) |
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--uploads", type=int, default=10)
    ap.add_argument("--part-mb", type=int, default=200)
    ap.add_argument("--sqlite", action="store_true", help="use SQLite instead of PostgreSQL")
    ap.add_argument("--root", type=Path, default=REPO / "bench" / "out" / "load")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    shutil.rmtree(args.root, ignore_errors=True)
    r = run_load(args.root, clients=args.clients, seconds=args.seconds, uploads=args.uploads, part_mb=args.part_mb,
                 use_postgres=not args.sqlite)
    print(json.dumps(r, indent=1))
    if not args.no_write:
        update_block(REPO / "docs" / "benchmarks.md", "### Load (`bench/load.py`)", markdown(r))
        print("figures written to docs/benchmarks.md")


if __name__ == "__main__":
    main()
