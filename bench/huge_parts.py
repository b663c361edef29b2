"""A project with 10,000 upload parts (the most `createProject` allows), polled: size and latency of one
`getProjectInfo`, and `/status` latency while 30 clients poll that project at once — for this version and,
with `--compare-src`, a previous one in the same run (PostgreSQL, one API process).

    .venv/bin/python bench/huge_parts.py
    .venv/bin/python bench/huge_parts.py --compare-src OLD/src     # OLD = `git archive <commit> src | tar -x -C OLD`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "scale"))
sys.path.insert(0, str(HERE))

from load import AUTH, start_api, tree_cpu  # noqa: E402
from stack import PG_BASE, free_port, postgres_reachable  # noqa: E402


async def measure(base: str, token: str, project: str, parallel: int) -> dict[str, Any]:
    import httpx

    params = {"token": token, "project": project}
    async with httpx.AsyncClient(base_url=base, auth=AUTH, timeout=120) as http:
        single, size = [], 0
        for _ in range(10):
            t = time.perf_counter()
            r = await http.get("/getProjectInfo", params=params)
            single.append(time.perf_counter() - t)
            size = len(r.content)
        status: list[float] = []

        async def poll_status() -> None:
            t = time.perf_counter()
            await http.get("/status")
            status.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(http.get("/getProjectInfo", params=params) for _ in range(parallel)),
                             *(poll_status() for _ in range(3)))
        burst = time.perf_counter() - t0
    return {"bytes": size, "single_median_s": statistics.median(single), "burst_s": burst,
            "status_max_s": max(status), "parallel": parallel}


def run(root: Path, compare_src: Path | None, parts: int, parallel: int) -> dict[str, Any]:
    import httpx
    from sqlalchemy import create_engine, text

    from openscancloud.api.app import build_context
    from openscancloud.settings import Settings

    if not postgres_reachable():
        raise SystemExit("PostgreSQL at 127.0.0.1:5432 is needed")
    schema = f"huge_{os.getpid()}_{int(time.time())}"
    engine = create_engine(PG_BASE)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENSCAN_")}
    env.update({"OPENSCAN_DATABASE_URL": f"{PG_BASE}?options=-csearch_path%3D{schema}",
                "OPENSCAN_DATA_DIR": str(root / "data"), "OPENSCAN_PUBLIC_LIMIT_FILESIZE": str(10**12),
                "OPENSCAN_PUBLIC_DAILY_CREDIT_GB": "1000"})
    ctx = build_context(Settings(database_url=env["OPENSCAN_DATABASE_URL"], data_dir=root / "data"))
    token = ctx.service.public_token()
    ctx.db.dispose()
    out: dict[str, Any] = {}
    try:
        for version, src in [("this", None), *([("before", compare_src)] if compare_src else [])]:
            port = free_port()
            server = start_api(env, port, 1, root / f"api_{version}.log", src)
            try:
                base = f"http://127.0.0.1:{port}"
                name = f"huge-{version}.zip"
                r = httpx.get(f"{base}/createProject", auth=AUTH, timeout=120, params=dict(
                    token=token, project=name, photos=10, parts=parts, filesize=parts * 1000))
                r.raise_for_status()
                cpu = tree_cpu(server.pid)
                out[version] = asyncio.run(measure(base, token, name, parallel))
                out[version]["server_cpu_s"] = tree_cpu(server.pid) - cpu
                out[version]["load_avg"] = os.getloadavg()[0]
                print(version, out[version], flush=True)
            finally:
                server.terminate()
                server.wait(timeout=30)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()
        shutil.rmtree(root, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--compare-src", type=Path)
    ap.add_argument("--parts", type=int, default=10_000)
    ap.add_argument("--parallel", type=int, default=30)
    ap.add_argument("--root", type=Path, default=HERE / "out" / "huge_parts")
    args = ap.parse_args()
    print(json.dumps(run(args.root, args.compare_src, args.parts, args.parallel), indent=1))


if __name__ == "__main__":
    main()
