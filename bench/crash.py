"""Crash test: nothing is lost when parts of a scaled-out OpenScan Cloud die.

2 API replicas (`serve --workers 0`) behind nginx, 3 workers (`openscan-cloud worker` processes), PostgreSQL
(fresh schema), S3 (moto server), all on 127.0.0.1. Submits N projects of a real photo set through the legacy
protocol (2 upload parts each), and while they are uploaded and processed `kill -9`s a random replica or worker
every few seconds (a supervisor restarts it, like systemd's Restart=always). Then checks: every project `done`
exactly once (one job, one result), its result zip downloadable through the dlink and holding a mesh, no
orphaned objects / multipart uploads / scratch files, every ledger balanced. Writes its figures to
docs/benchmarks.md (`## Scale-out`).

    .venv/bin/python bench/crash.py                       # 10 projects of kermit, preview, a kill every ~6 s
    .venv/bin/python bench/crash.py --projects 3 --max-kills 10 --no-write
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE / "scale"))

from report import update_block  # noqa: E402
from stack import LegacyClient, Stack  # noqa: E402

DATASETS = REPO.parent / "shared" / "datasets"


def photo_zip(images: Path) -> tuple[bytes, int]:
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for f in files:
            zf.write(f, f.name)
    return buf.getvalue(), len(files)


def run_crash(root: Path, *, projects: int = 10, replicas: int = 2, workers: int = 3, kill_every: float = 6.0,
              max_kills: int = 40, timeout: float = 1800.0, dataset: str = "kermit", max_image_size: int = 640,
              lease_seconds: int = 20, seed: int | None = None, log: Any = print) -> dict[str, Any]:
    """Run the whole crash test; returns the figures (and `problems`, empty when everything held)."""
    from openscancloud.domain.tokens import TokenKind

    rng = random.Random(seed)
    data, photos = photo_zip(DATASETS / dataset / "images")
    part_size = -(-len(data) // 2)  # two parts per project
    stack = Stack(root, replicas=replicas, workers=workers, lease_seconds=lease_seconds,
                  part_limit_bytes=part_size + 1, max_image_size=max_image_size)
    t0 = time.time()
    stack.start()
    log(f"stack up in {time.time() - t0:.1f} s: nginx {stack.url}, S3 {stack.s3_endpoint}, schema {stack.schema}")
    kills: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    try:
        tokens = [stack.ctx.service.create_token(TokenKind.PRIVATE, forename="Crash", surname=f"T{i}",
                                                 email=f"crash{i}@example.org", credit_gb=10)[0] for i in range(2)]
        clients = [LegacyClient(stack.url, t) for t in tokens]
        names = [f"crash-{i:02d}.zip" for i in range(projects)]
        ids: dict[str, str] = {}
        errors: list[str] = []

        def submit(i: int, name: str) -> None:
            try:
                ids[name] = clients[i % 2].submit(name, data, photos, part_size)
            except Exception as exc:  # noqa: BLE001 - reported as a lost project
                errors.append(f"{name}: {exc}")

        start = time.time()
        submitters = [threading.Thread(target=submit, args=(i, n)) for i, n in enumerate(names)]
        for t in submitters:
            t.start()
            time.sleep(0.3)
        done: dict[str, dict[str, Any]] = {}
        next_kill = time.time() + rng.uniform(0.5, 1.5) * kill_every
        deadline = time.time() + timeout
        last_log = 0.0
        load_samples: list[float] = []
        while time.time() < deadline:
            now = time.time()
            if not load_samples or now - last_log > 2.9:
                load_samples.append(os.getloadavg()[0])
            if now >= next_kill and len(kills) < max_kills and len(done) < projects:
                victims = [p for p in stack.killable() if p.alive()]
                if victims:
                    victim = rng.choice(victims)
                    victim.kill9()
                    kills.append({"t": round(now - start, 1), "name": victim.name, "kind": victim.kind})
                    log(f"[{now - start:6.1f}s] kill -9 {victim.name}")
                next_kill = now + rng.uniform(0.5, 1.5) * kill_every
            if now - last_log > 3 and all(not t.is_alive() for t in submitters):
                for i, name in enumerate(names):
                    if name in done or name not in ids:
                        continue
                    info = clients[i % 2].info(name)
                    if info.get("status") == "done" and info.get("dlink"):
                        done[name] = info
                        log(f"[{now - start:6.1f}s] {name} done")
                    elif info.get("status") in ("failed", "cancelled", "expired"):
                        done[name] = info
                        log(f"[{now - start:6.1f}s] {name} {info['status']}: {info.get('error')}")
                last_log = now
                if len(done) + len(errors) >= projects:
                    break
            time.sleep(0.2)
        elapsed = time.time() - start
        # download every result through nginx → dlink → 307 → presigned S3 GET
        meshes = 0
        for i, name in enumerate(names):
            info = done.get(name)
            if info and info.get("status") == "done":
                blob = clients[i % 2].download(info["dlink"])
                with zipfile.ZipFile(io.BytesIO(blob)) as zf:
                    meshes += "model.obj" in zf.namelist()
        retried = sum(c.retried for c in clients)
        for c in clients:
            c.close()
        stack.stop_processing()
        audit = stack.audit([ids[n] for n in names if n in ids], {ids[n]: len(data) for n in names if n in ids})
        lost = projects - sum(1 for n in names if done.get(n, {}).get("status") == "done")
        problems = list(audit.pop("problems")) + errors
        if meshes != projects - lost:
            problems.append(f"only {meshes} result zips hold model.obj")
        results = {
            "projects": projects, "done": projects - lost, "lost": lost, "elapsed_s": round(elapsed, 1),
            "kills": len(kills), "kills_replica": sum(k["kind"] == "replica" for k in kills),
            "kills_worker": sum(k["kind"] == "worker" for k in kills),
            "restarts": {p.name: p.restarts for p in stack.procs if p.restarts},
            "client_retries": retried, "meshes_ok": meshes, "zip_bytes": len(data), "photos": photos,
            "dataset": dataset, "max_image_size": max_image_size, "lease_seconds": lease_seconds,
            "replicas": replicas, "workers": workers, "kill_every_s": kill_every, "max_kills": max_kills,
            "load_avg": round(sum(load_samples) / len(load_samples), 1) if load_samples else None, **audit,
            "problems": problems, "kill_log": kills,
        }
    finally:
        stack.stop()
    return results


def markdown(r: dict[str, Any]) -> str:
    kills = ", ".join(f"{k['t']}s {k['name']}" for k in r["kill_log"])
    last = r["kill_log"][-1]["t"] if r["kill_log"] else 0
    if r["kills"] >= r.get("max_kills", 10**9):
        chaos = (f"from the first upload on, {r['kills']} times (until {last:.0f} s, while projects were uploading "
                 f"and processing); after that the system had to converge on its own")
    else:
        chaos = "from the first upload until every project was done"
    load = f"1-min load average during the run ≈ {r['load_avg']:.0f} on 2 cores (shared machine)." if r.get(
        "load_avg") else ""
    return f"""
`.venv/bin/python bench/crash.py` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. {r['replicas']} API replicas
(`openscan-cloud serve --workers 0`) behind nginx (Debian package) on 127.0.0.1, {r['workers']} worker processes
(`openscan-cloud worker`, engine at `--quality preview --max-image-size {r['max_image_size']}`), PostgreSQL 15
(fresh schema), S3 = moto server mode. {r['projects']} projects of `{r['dataset']}` ({r['photos']} photos,
{r['zip_bytes'] / 1e6:.1f} MB zip, 2 upload parts each) submitted through the legacy protocol by 2 private tokens.
A random replica or worker got `kill -9` every {r['kill_every_s'] * 0.5:.0f}–{r['kill_every_s'] * 1.5:.0f} s {chaos};
a supervisor restarted it after 1 s (like systemd `Restart=always`). Lease {r['lease_seconds']} s. {load}

| projects | done | **lost** | kills survived (replica / worker) | job attempts (max per job) | client retries | wall time |
|---|---|---|---|---|---|---|
| {r['projects']} | {r['done']} | **{r['lost']}** | **{r['kills']}** ({r['kills_replica']} / {r['kills_worker']}) | {r['attempts_total']} ({r['attempts_max']}) | {r['client_retries']} | {r['elapsed_s']:.0f} s |

Checks: every project `done` with exactly one job and one result object; every result zip downloaded through
its `dlink` (307 → presigned S3 GET) holds `model.obj` ({r['meshes_ok']}/{r['projects']}); ledger per project =
one charge of its size, per token grants − charges = balance; orphaned objects in the bucket:
{len(r['orphan_objects'])}; scratch dirs/files left by killed processes: {len(r['orphan_scratch'])}; incomplete
multipart uploads left by killed replicas: {r['incomplete_multipart_uploads']} (invisible, never taken as parts;
{r['aborted_by_sweep']} removed by the stale-upload sweep, {r['multipart_left_after_sweep']} left).
Problems: {'none' if not r['problems'] else '; '.join(r['problems'])}.

Kill log: {kills or 'none'}.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--projects", type=int, default=10)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--kill-every", type=float, default=6.0, help="mean seconds between kills")
    ap.add_argument("--max-kills", type=int, default=60)
    ap.add_argument("--dataset", default="kermit")
    ap.add_argument("--max-image-size", type=int, default=640)
    ap.add_argument("--lease-seconds", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=2400)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--root", type=Path, default=REPO / "bench" / "out" / "crash")
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = ap.parse_args()
    import shutil

    shutil.rmtree(args.root, ignore_errors=True)
    r = run_crash(args.root, projects=args.projects, replicas=args.replicas, workers=args.workers,
                  kill_every=args.kill_every, max_kills=args.max_kills, timeout=args.timeout, dataset=args.dataset,
                  max_image_size=args.max_image_size, lease_seconds=args.lease_seconds, seed=args.seed)
    print(json.dumps({k: v for k, v in r.items() if k != "kill_log"}, indent=1))
    (args.root / "results.json").write_text(json.dumps(r, indent=1))
    if not args.no_write:
        update_block(REPO / "docs" / "benchmarks.md", "### Crash test (`bench/crash.py`)", markdown(r))
        print("figures written to docs/benchmarks.md")
    sys.exit(0 if r["lost"] == 0 and not r["problems"] else 1)


if __name__ == "__main__":
    main()
