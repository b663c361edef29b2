"""Load test of the API (PostgreSQL, local disk storage), the way clients use it:

1. the polled endpoints, each from 50 concurrent clients for a fixed time → requests/s, p50/p99 latency and the
   **server CPU per request** (user + system time of the API process tree ÷ requests answered):
   `getProjectInfo` (legacy, public token), `GET /api/v1/projects/{id}` (REST, private token) and the same with
   `If-None-Match` (the 304 revalidation); the polled project is queued (as while waiting for a worker), so every
   answer includes the ETA with its queue position;
2. the same with two API processes on one port (`uvicorn --factory ... --workers 2`) → scaling factor, and with
   one process whose change-notice cache is off (every poll reads the database, as the first poll after a change);
3. 10 concurrent uploads of a 200 MB part each (the default part limit) → MB/s, against the disk's own write
   speed measured with `dd` in the same run, and the API process's RSS sampled every 50 ms (it must stay flat:
   parts are streamed to disk, never held in memory).

The requests come from wrk and the uploads from curl when they are installed (C programs: they leave the shared
cores to the server), else from the Python clients below. The CPU of the PostgreSQL server processes is reported
per request too. `--compare-src` measures a previous version in the same run, in a schema of its own. The
machine's load average is recorded around every measurement (other work shares the cores).
Writes the figures to docs/benchmarks.md (`## Scale-out` → `### Load`).

    .venv/bin/python bench/load.py                  # 50 clients × 20 s per endpoint, 1 and 2 processes, uploads
    .venv/bin/python bench/load.py --seconds 5 --uploads 4 --part-mb 50 --no-write
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import shutil
import statistics
import subprocess
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
from stack import PG_BASE, free_port, postgres_reachable, wait_port  # noqa: E402

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


async def poll_load(base: str, path: str, clients: int, seconds: float, *, params: dict | None = None,
                    headers: dict | None = None, auth: Any = None, expect: int = 200) -> dict[str, Any]:
    """`clients` keep-alive connections each sending GET `path` back to back for `seconds`; answers other than
    `expect` count as errors.

    A minimal HTTP/1.1 client on raw asyncio streams, not httpx: the load generator shares the cores with the
    server, and httpx spends more CPU per request than the endpoints under test, so it would measure itself.
    Each request is the same pre-built bytes; an answer is read by its status line, headers and
    Content-Length (the polled endpoints never use chunked encoding)."""
    import base64
    from urllib.parse import urlencode, urlsplit

    url = urlsplit(base)
    target = path + ("?" + urlencode(params) if params else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {url.netloc}"]
    if auth is not None:
        lines.append("Authorization: Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def one_client() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        try:
            while time.perf_counter() < stop_at:
                t = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                if status == expect:
                    latencies.append(time.perf_counter() - t)
                else:
                    errors += 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    elapsed = time.perf_counter() - t0
    latencies.sort()
    return {
        "requests": len(latencies), "errors": errors, "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
    }


def wrk_load(base: str, path: str, clients: int, seconds: float, *, params: dict | None = None,
             headers: dict | None = None, auth: Any = None, expect: int = 200) -> dict[str, Any]:
    """The same measurement with wrk (Debian's package, written in C): one thread, `clients` keep-alive
    connections. It spends a few microseconds per request where the Python generator spends a hundred or more,
    so on a 2-core machine it leaves the cores to the server processes being measured (what a comparison of one
    and two processes needs). The expected status is checked once with httpx before the run; wrk counts answers
    outside 2xx/3xx as errors."""
    import base64
    from urllib.parse import urlencode

    import httpx

    url = base + path + ("?" + urlencode(params) if params else "")
    head = dict(headers or {})
    if auth is not None:
        head["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    probe = httpx.get(url, headers=head)
    if probe.status_code != expect:
        raise RuntimeError(f"{url} answered {probe.status_code}, not {expect}: {probe.text[:200]}")
    cmd = ["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--latency", *sum((["-H", f"{k}: {v}"]
                                                                               for k, v in head.items()), []), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    def ms(text: str) -> float:
        value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]

    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    elapsed = ms(re.search(r"requests in ([\d.]+\w+),", out).group(1)) / 1000  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    return {"requests": requests - errors, "errors": errors, "rps": (requests - errors) / elapsed,
            "p50_ms": ms(re.search(r"^\s+50%\s+(\S+)$", out, re.M).group(1)),  # type: ignore[union-attr]
            "p99_ms": ms(re.search(r"^\s+99%\s+(\S+)$", out, re.M).group(1))}  # type: ignore[union-attr]


GENERATOR = "wrk" if shutil.which("wrk") else "python"


def _cpu_seconds(processes: Any) -> float:
    """User + system CPU seconds of these psutil processes (those gone meanwhile count nothing)."""
    import psutil

    total = 0.0
    for p in processes:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (uvicorn's worker processes)."""
    import psutil

    root = psutil.Process(pid)
    return _cpu_seconds([root, *root.children(recursive=True)])


def database_cpu() -> float:
    """CPU seconds of every PostgreSQL server process on this machine (the database shares the cores with the
    API and the load generator, so its share per request is part of what a poll costs)."""
    import psutil

    return _cpu_seconds(p for p in psutil.process_iter(["name"])
                        if (p.info["name"] or "").startswith(("postgres", "postmaster")))


def load_average() -> float:
    return os.getloadavg()[0]


def _run(coro: Any) -> Any:
    """asyncio.run on uvloop when it is installed (less client CPU on the shared cores)."""
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def measured(pid: int, base: str, path: str, clients: int, seconds: float, **kw: Any) -> dict[str, Any]:
    """One poll measurement with the server's CPU per answered request and the load average around it."""
    _run(poll_load(base, path, 5, 1.0, **kw))  # warm-up: connections, caches
    load_before, cpu, db_cpu = load_average(), tree_cpu(pid), database_cpu()
    if GENERATOR == "wrk":
        result = wrk_load(base, path, clients, seconds, **kw)
    else:
        result = _run(poll_load(base, path, clients, seconds, **kw))
    used, db_used = tree_cpu(pid) - cpu, database_cpu() - db_cpu
    result["server_cpu_ms_per_request"] = 1000 * used / max(1, result["requests"])
    result["database_cpu_ms_per_request"] = 1000 * db_used / max(1, result["requests"])
    result["load_before"], result["load_after"] = load_before, load_average()
    return result


def tiny_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(3):
            zf.writestr(f"photo_{i}.jpg", os.urandom(2000))
    return buf.getvalue()


def queued_project(http: Any, token: str, name: str) -> dict[str, Any]:
    """createProject + upload + startProject through the legacy protocol: a project waiting in the queue."""
    data = tiny_zip()
    created = http.get("/createProject", params=dict(token=token, project=name, photos=3, parts=1,
                                                     filesize=len(data))).json()
    http.post(created["ulink"][0], content=data).raise_for_status()
    http.get("/startProject", params=dict(token=token, project=name)).raise_for_status()
    return http.get("/getProjectInfo", params=dict(token=token, project=name)).json()


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


def start_api(env: dict[str, str], port: int, processes: int, log: Path, src: Path | None = None,
              factory: str = "asgi_entry:app", reads: bool = False) -> subprocess.Popen:
    """`processes` API processes sharing one port (uvicorn's own process manager), no processing worker; with
    `src`, the server code comes from that source tree (e.g. the previous version, for a before/after ratio)."""
    cmd = [sys.executable, "-m", "uvicorn", "--factory", factory, "--app-dir", str(HERE / "scale"),
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(processes), "--log-level", "warning"]
    if reads:  # every poll reads the database: what a poll of a project that just changed costs
        env = {**env, "OPENSCAN_POLL_CHANGE_NOTICES": "false"}
    if src is not None:
        env = {**env, "PYTHONPATH": os.pathsep.join([str(src), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    server = subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    if not wait_port(port, 90):
        server.kill()
        raise RuntimeError(f"the API did not start; see {log}")
    time.sleep(2.0 if processes > 1 else 0.2)  # uvicorn's workers import and bind after the port opens
    return server


def run_load(root: Path, *, clients: int = 50, seconds: float = 20.0, uploads: int = 10, part_mb: int = 200,
             processes: tuple[int, ...] = (1, 2), use_postgres: bool = True, compare_src: Path | None = None,
             log: Any = print) -> dict[str, Any]:
    import httpx
    from sqlalchemy import create_engine, text

    root.mkdir(parents=True, exist_ok=True)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("OPENSCAN_")}
    part_bytes = part_mb * 1_000_000
    base_env.update({"PYTHONUNBUFFERED": "1", "OPENSCAN_PART_LIMIT_BYTES": str(max(part_bytes, 200_000_000)),
                     "OPENSCAN_DATA_DIR": str(root / "data"), "OPENSCAN_PUBLIC_DAILY_CREDIT_GB": "1000",
                     "OPENSCAN_PUBLIC_LIMIT_FILESIZE": str(10**12), "OPENSCAN_PRIVATE_LIMIT_FILESIZE": str(10**12)})
    postgres = use_postgres and postgres_reachable()
    engine = create_engine(PG_BASE) if postgres else None
    schemas: list[str] = []
    setups: dict[str, tuple[dict[str, str], str, str]] = {}  # version → (environment, public token, private token)
    for version in ("this", "before") if compare_src else ("this",):
        env = dict(base_env)
        if engine is not None:  # each version its own schema: the previous one may not know this one's migrations
            schemas.append(f"load_{os.getpid()}_{int(time.time())}_{version}")
            with engine.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {schemas[-1]}"))
            env["OPENSCAN_DATABASE_URL"] = f"{PG_BASE}?options=-csearch_path%3D{schemas[-1]}"
        else:
            env["OPENSCAN_DATA_DIR"] = str(root / f"data-{version}")
        setups[version] = (env, *make_tokens(env, compare_src if version == "before" else None))
    setups["reads"] = setups["this"]
    result: dict[str, Any] = {"clients": clients, "seconds": seconds, "uploads": uploads, "part_mb": part_mb,
                              "generator": GENERATOR,
                              "database": "PostgreSQL" if postgres else "SQLite", "runs": {},
                              "cpus": os.cpu_count(), "compare_src": str(compare_src) if compare_src else None}
    configs = [("this", n) for n in processes] + [("reads", 1)] + ([("before", 1)] if compare_src else [])
    try:
        port = free_port()
        floor = start_api(base_env, port, 1, root / "api_bare.log", factory="asgi_entry:bare")
        try:
            result["floor"] = measured(floor.pid, f"http://127.0.0.1:{port}", "/", clients, seconds, expect=304)
            log(f"bare uvicorn 304: {result['floor']}")
        finally:
            floor.terminate()
            floor.wait(timeout=30)
        for version, n in configs:
            env, public, private = setups[version]
            bearer = {"Authorization": f"Bearer {private}"}
            port = free_port()
            server = start_api(env, port, n, root / f"api_{version}_{n}.log",
                               compare_src if version == "before" else None, reads=version == "reads")
            base = f"http://127.0.0.1:{port}"
            tag = f"{version}, {n} process(es)"
            try:
                http = httpx.Client(base_url=base, auth=AUTH, timeout=120)
                queued_project(http, public, f"legacy-{version}-{n}.zip")
                rest_id = queued_project(http, private, f"rest-{version}-{n}.zip")["id"]
                etag = http.get(f"/api/v1/projects/{rest_id}", headers=bearer, auth=None).headers.get("etag")
                run: dict[str, Any] = {}
                run["legacy"] = measured(server.pid, base, "/getProjectInfo", clients, seconds, auth=AUTH,
                                         params={"token": public, "project": f"legacy-{version}-{n}.zip"})
                log(f"{tag} getProjectInfo: {run['legacy']}")
                run["rest"] = measured(server.pid, base, f"/api/v1/projects/{rest_id}", clients, seconds,
                                       headers=bearer)
                log(f"{tag} GET /api/v1/projects/ID: {run['rest']}")
                if etag:  # versions before the polling rewrite have no ETag
                    run["rest_304"] = measured(server.pid, base, f"/api/v1/projects/{rest_id}", clients, seconds,
                                               headers={**bearer, "If-None-Match": etag}, expect=304)
                    log(f"{tag} 304: {run['rest_304']}")
                result["runs"][f"{version}:{n}"] = run
                if (version, n) == configs[0] and uploads:
                    upload_figures(result, root, server.pid, http, public, uploads, part_mb, log)
                if version == "before" and uploads:  # the same upload test on the previous version: a ratio
                    before: dict[str, Any] = {}
                    upload_figures(before, root, server.pid, http, public, uploads, part_mb, log, name="big-before.zip")
                    result["upload_before"] = before
                http.close()
            finally:
                server.terminate()
                server.wait(timeout=30)
    finally:
        shutil.rmtree(root / "data" / "storage", ignore_errors=True)
        if engine is not None:
            with engine.begin() as conn:
                for schema in schemas:
                    conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            engine.dispose()
    return result


_MAKE_TOKENS = """
import json, os
from openscancloud.api.app import build_context
from openscancloud.domain.tokens import TokenKind
from openscancloud.settings import Settings
ctx = build_context(Settings(**{k[9:].lower(): v for k, v in os.environ.items() if k.startswith("OPENSCAN_")}))
private, _ = ctx.service.create_token(TokenKind.PRIVATE, label="load bench", credit_gb=1000)
print(json.dumps([ctx.service.public_token(), private]))
"""


def make_tokens(env: dict[str, str], src: Path | None = None) -> tuple[str, str]:
    """The public and a private token, made by the server code that will be measured (`src`: another version's
    source tree), which also creates its schema."""
    if src is not None:
        env = {**env, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", _MAKE_TOKENS], env=env, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"could not make the tokens: {out.stderr[-1000:]}")
    public, private = json.loads(out.stdout.strip().splitlines()[-1])
    return public, private


def curl_uploads(links: list[str], part_bytes: int, scratch: Path) -> dict[str, Any]:
    """The same uploads sent by curl processes (`-T FILE`: streamed from a file in the page cache), which cost
    the shared cores far less than an httpx client generating the bytes in Python, so the figure is the server's."""
    source = scratch / "part.bin"
    block = os.urandom(1 << 20)
    with source.open("wb") as f:
        for offset in range(0, part_bytes, len(block)):
            f.write(block[: min(len(block), part_bytes - offset)])
    try:
        t0 = time.perf_counter()
        procs = [subprocess.Popen(["curl", "-sS", "-f", "-T", str(source), "-H", "Content-Type: application/octet-stream",
                                   "-H", "Expect:", link], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for link in links]
        outputs = [proc.communicate() for proc in procs]
        elapsed = time.perf_counter() - t0
    finally:
        source.unlink(missing_ok=True)
    failed = [err.decode() for proc, (_, err) in zip(procs, outputs) if proc.returncode != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} uploads failed: {failed[0][:300]}")
    sizes = [json.loads(out)["size"] for out, _ in outputs]
    return {"bytes": sum(sizes), "seconds": elapsed, "mb_s": sum(sizes) / 1e6 / elapsed, "client": "curl"}


def upload_figures(result: dict[str, Any], root: Path, pid: int, http: Any, token: str, uploads: int,
                   part_mb: int, log: Any, name: str = "big.zip") -> None:
    """dd, then `uploads` concurrent parts of `part_mb` MB while sampling the API's RSS."""
    part_bytes = part_mb * 1_000_000
    result["dd_mb_s"] = dd_speed(root / "data", uploads * part_mb // 2)
    result["dd_cached_mb_s"] = dd_speed(root / "data", uploads * part_mb // 2, sync=False)
    log(f"dd: {result['dd_mb_s']:.0f} MB/s flushed, {result['dd_cached_mb_s']:.0f} MB/s page cache")
    created = http.get("/createProject", params=dict(token=token, project=name, photos=10, parts=uploads,
                                                     filesize=uploads * part_bytes)).json()
    sampler = RssSampler(pid)
    result["rss_before_mb"] = sampler.rss() / 2**20
    sampler.start()
    result["load_before_upload"] = load_average()
    if shutil.which("curl"):
        result["upload"] = curl_uploads(created["ulink"], part_bytes, root)
    else:
        result["upload"] = asyncio.run(upload_load(created["ulink"], part_bytes))
    result["rss_peak_mb"] = sampler.stop() / 2**20
    result["rss_after_mb"] = RssSampler(pid).rss() / 2**20
    log(f"uploads: {result['upload']}, RSS {result['rss_before_mb']:.0f} → peak {result['rss_peak_mb']:.0f} MB")


def _row(label: str, r: dict[str, Any], floor: dict[str, Any] | None = None) -> str:
    share = f"{100 * r['rps'] / floor['rps']:.0f} %" if floor else "–"
    db = r.get("database_cpu_ms_per_request")
    return (f"| {label} | **{r['rps']:.0f} req/s** | {share} | {r['p50_ms']:.1f} / {r['p99_ms']:.1f} ms | "
            f"**{r['server_cpu_ms_per_request']:.2f} ms** | {'–' if db is None else f'{db:.2f} ms'} | "
            f"{r['errors']} / {r['requests']} | "
            f"{r['load_before']:.1f} → {r['load_after']:.1f} |")


_GENERATOR_TEXT = {"wrk": "wrk, one thread", "python": "raw asyncio HTTP/1.1 on uvloop"}


def markdown(r: dict[str, Any]) -> str:
    runs = r["runs"]
    names = {"legacy": "`getProjectInfo` (legacy, public token)", "rest": "`GET /api/v1/projects/{id}` (private token)",
             "rest_304": "the same with `If-None-Match` → 304"}
    rows = []
    for key, run in runs.items():
        version, n = key.split(":")
        who = f"{n} process{'es' if int(n) > 1 else ''}" + {
            "before": ", **previous version**",
            "reads": ", change-notice cache off (every poll reads the database, as after each change)"}.get(version, "")
        rows += [_row(f"{label}, {who}", run[k], r.get("floor")) for k, label in names.items() if k in run]
    if "floor" in r:
        rows.append(_row("reference: a bare ASGI app answering 304, no work (uvicorn + HTTP alone), 1 process",
                         r["floor"], r["floor"]))
    lines = [f"""
`.venv/bin/python bench/load.py{' --compare-src OLD/src' if r.get('compare_src') else ''}` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.
API processes started as `uvicorn --factory ... --workers N` ({r['database']}, local-disk storage) on 127.0.0.1;
the load generator ({_GENERATOR_TEXT[r.get('generator', 'python')]}, {r['clients']} concurrent keep-alive clients, {r['seconds']:.0f} s per line) runs on the
same {r['cpus']} cores, shared with other work (the load average before → after each line shows how much). The
polled project is queued (its answer includes the ETA from its queue position) and unchanged during a line, as
most polled projects are between two progress reports. **CPU/request** is the user + system time of the API
process tree divided by the answers: the figure that depends least on what else runs; **DB CPU** the same for
the PostgreSQL server processes.
**of bare** compares the throughput with a bare ASGI app measured the same way in the same run: how close the
endpoint comes to what uvicorn and the load generator allow on the machine at that moment.

| endpoint, processes | throughput | of bare | p50 / p99 | CPU/request | DB CPU | errors / answers | load avg |
|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + "\n"]
    one, two, before = runs.get("this:1"), runs.get("this:2"), runs.get("before:1")
    if one and two:
        lines.append(f"\nScaling 1 → 2 processes: `getProjectInfo` {two['legacy']['rps'] / one['legacy']['rps']:.2f}×, "
                     f"REST {two['rest']['rps'] / one['rest']['rps']:.2f}×, 304 "
                     f"{two['rest_304']['rps'] / one['rest_304']['rps']:.2f}× (the load generator shares the cores).\n")
    if one and before:
        lines.append(f"\nBefore → after (1 process, same run): `getProjectInfo` CPU/request "
                     f"{before['legacy']['server_cpu_ms_per_request']:.2f} → {one['legacy']['server_cpu_ms_per_request']:.2f} ms "
                     f"(**{before['legacy']['server_cpu_ms_per_request'] / one['legacy']['server_cpu_ms_per_request']:.1f}× cheaper**), "
                     f"throughput {one['legacy']['rps'] / before['legacy']['rps']:.1f}×; REST CPU/request "
                     f"{before['rest']['server_cpu_ms_per_request']:.2f} → {one['rest']['server_cpu_ms_per_request']:.2f} ms "
                     f"({before['rest']['server_cpu_ms_per_request'] / one['rest']['server_cpu_ms_per_request']:.1f}×).\n")
    if "upload" in r:
        u = r["upload"]
        lines.append(f"""
| upload test (1 process) | result |
|---|---|
| {r['uploads']} concurrent {r['part_mb']} MB part uploads (sent by {u.get('client', 'httpx')}, streamed to disk + sha256) | **{u['mb_s']:.0f} MB/s** total ({u['bytes'] / 1e9:.1f} GB in {u['seconds']:.1f} s) |
| `dd if=/dev/zero bs=1M` to the same disk, same run: without / with `conv=fdatasync` | {r['dd_cached_mb_s']:.0f} / {r['dd_mb_s']:.0f} MB/s → the uploads reach {100 * u['mb_s'] / r['dd_cached_mb_s']:.0f} % of `dd` into the page cache (parts are written like that: not fsync'ed) and **{100 * u['mb_s'] / r['dd_mb_s']:.0f} %** of the flushed rate |
| API process RSS: before → peak during the uploads → after | {r['rss_before_mb']:.0f} → **{r['rss_peak_mb']:.0f}** → {r['rss_after_mb']:.0f} MB (flat: {r['uploads']} × {r['part_mb']} MB = {r['uploads'] * r['part_mb']} MB never held in memory) |
""")
        b = r.get("upload_before")
        if b:
            lines.append(f"| the same uploads on the **previous version**, same run (its own `dd` just before) | "
                         f"{b['upload']['mb_s']:.0f} MB/s = {100 * b['upload']['mb_s'] / b['dd_mb_s']:.0f} % of flushed `dd` "
                         f"({b['dd_mb_s']:.0f} MB/s); RSS {b['rss_before_mb']:.0f} → {b['rss_peak_mb']:.0f} MB → this version reaches "
                         f"**{100 * u['mb_s'] / b['upload']['mb_s']:.0f} %** of the previous one's throughput |\n")
    return "".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--uploads", type=int, default=10, help="0: skip the upload test")
    ap.add_argument("--part-mb", type=int, default=200)
    ap.add_argument("--processes", default="1,2", help="API process counts to measure, e.g. 1,2")
    ap.add_argument("--sqlite", action="store_true", help="use SQLite instead of PostgreSQL")
    ap.add_argument("--compare-src", type=Path, help="also measure one process of the server code in this source "
                    "tree (e.g. `git archive <commit> src | tar -x -C DIR` → DIR/src): before/after in one run")
    ap.add_argument("--root", type=Path, default=REPO / "bench" / "out" / "load")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    shutil.rmtree(args.root, ignore_errors=True)
    r = run_load(args.root, clients=args.clients, seconds=args.seconds, uploads=args.uploads, part_mb=args.part_mb,
                 processes=tuple(int(x) for x in args.processes.split(",")), use_postgres=not args.sqlite,
                 compare_src=args.compare_src)
    print(json.dumps(r, indent=1))
    if args.json:
        args.json.write_text(json.dumps(r, indent=1))
    if not args.no_write:
        update_block(REPO / "docs" / "benchmarks.md", "### Load (`bench/load.py`)", markdown(r))
        print("figures written to docs/benchmarks.md")


if __name__ == "__main__":
    main()
