"""Fixtures shared by every test package: where the photo sets live, a fresh PostgreSQL schema, an S3 server."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _above_repo(relative: str) -> Path | None:
    """The first `<ancestor>/<relative>` above the repository (a checkout or a worktree nested deeper)."""
    for ancestor in REPO_ROOT.parents:
        if (ancestor / relative).exists():
            return ancestor / relative
    return None


DATASETS_DIR = Path(os.environ.get("OPENSCAN_DATASETS") or _above_repo("shared/datasets")
                    or REPO_ROOT.parent / "shared" / "datasets")
MOTO_START_SECONDS = float(os.environ.get("OPENSCAN_TEST_MOTO_START_SECONDS", "120"))
POSTGRES_URL = os.environ.get("OPENSCAN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_START_HINT = ("start it with `make postgres` (runs scripts/start-postgres.sh) or point OPENSCAN_TEST_PG at a "
                 "server with a database `test`")


def service_missing(sentence: str) -> None:
    """A service the suite needs is not there: in CI (`CI=true`) that is a failure, so a green run always means
    the PostgreSQL and S3 paths were tested; on a developer machine it is a skip that says how to get it."""
    if IN_CI:
        pytest.fail(sentence + " (CI=true: a missing service fails the run instead of skipping).", pytrace=False)
    pytest.skip(sentence)


@pytest.fixture(scope="session", name="service_missing")
def service_missing_fixture():
    """The `service_missing(sentence)` rule for fixtures in the sub-packages' conftest files."""
    return service_missing


def dataset_images(name: str) -> Path:
    """The `images/` folder of a photo set under DATASETS_DIR; absent: a skip naming where it was looked for
    (a failure in CI)."""
    images = DATASETS_DIR / name / "images"
    if not images.is_dir():
        service_missing(f"photo set {name!r} not found under {DATASETS_DIR} (set OPENSCAN_DATASETS)")
    return images


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    if not DATASETS_DIR.is_dir():
        service_missing(f"no photo sets at {DATASETS_DIR} (set OPENSCAN_DATASETS)")
    return DATASETS_DIR


# The small synthetic sets the engine tests use, by name: the renderer's arguments (24–36 views at 640×480, one
# ray per pixel). Rendered on demand into the session's temporary folder, once per session.
SMALL_SETS: dict[str, tuple[str, ...]] = {
    "small_plain_static": ("--shape", "blob", "--seed", "12", "--texture", "plain", "--backdrop", "static",
                           "--light-mode", "camera", "--elevations", "20,45", "--azimuths", "12"),
    "small_dots_static": ("--shape", "bust", "--seed", "11", "--texture", "dots", "--backdrop", "static",
                          "--light-mode", "camera", "--elevations", "20,45", "--azimuths", "12"),
    "small_rings_rich": ("--shape", "blob", "--seed", "7", "--elevations", "15,35,55", "--azimuths", "12"),
    "small_flip": ("--shape", "blob", "--seed", "12", "--flip", "--elevations", "20,45", "--azimuths", "12"),
}
SMALL_SET_SIZE = ("--width", "640", "--height", "480", "--ssaa", "1", "--workers", "2")


@pytest.fixture(scope="session")
def synthetic_set(render_synthetic, tmp_path_factory):
    """Factory fixture: `synthetic_set("small_plain_static")` → the folder of that small set (images/ +
    ground_truth/), rendered by the shared renderer the first time a session asks for it."""
    root = tmp_path_factory.mktemp("synthetic_sets")

    def find(name: str) -> Path:
        return render_synthetic(root / name, *SMALL_SETS[name], *SMALL_SET_SIZE, "--name", name)

    return find


@pytest.fixture(scope="session")
def photo_set():
    """Factory fixture: `photo_set("kermit")` → Path of its images folder (see dataset_images)."""
    return dataset_images


@pytest.fixture
def pg_url():
    """A SQLAlchemy URL whose search_path is a new, empty PostgreSQL schema (dropped afterwards), so runs never
    collide. `OPENSCAN_TEST_PG` overrides the base URL. No server answering is a skip that says how to start one,
    or a failure in CI."""
    from sqlalchemy import create_engine, text

    schema = f"osc_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:
        admin.dispose()
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        unreachable = (f"PostgreSQL at {admin.url.render_as_string(hide_password=True)} is not reachable "
                       f"({first_line}); {PG_START_HINT}")
    else:
        unreachable = None
    if unreachable:
        service_missing(unreachable)  # outside the except block: the report shows the sentence, not a chain
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3-compatible server: moto's server mode on 127.0.0.1, one per session. Without moto, or when it
    does not answer within MOTO_START_SECONDS (its imports are slow on a loaded machine), the S3 tests are skipped
    with the reason, or fail in CI."""
    import importlib.util

    if importlib.util.find_spec("moto") is None:
        service_missing("moto[server] is not installed; install the test extras (`make install`)")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})
    deadline = time.monotonic() + MOTO_START_SECONDS
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        err = proc.communicate(timeout=10)[1].decode(errors="replace").strip().splitlines()
        why = f"it exited: {err[-1]}" if proc.returncode not in (None, -9) and err else \
            f"it did not answer within {MOTO_START_SECONDS:.0f} s"
        service_missing(f"The moto S3 server did not start ({why}); "
                        "raise OPENSCAN_TEST_MOTO_START_SECONDS on a slow machine")
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep its log pipe drained
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def run_in_threads(target, args_per_thread: list[tuple], *, timeout: float = 120.0) -> list:
    """Run `target(*args)` in one thread per entry, all released at the same instant by a barrier (so they really
    overlap), join every thread, re-raise the first error a thread raised, and return the results in order. A
    thread still running after `timeout` fails the test instead of being forgotten."""
    barrier = threading.Barrier(len(args_per_thread))
    results: list = [None] * len(args_per_thread)
    errors: list[BaseException] = []

    def body(i: int, args: tuple) -> None:
        try:
            barrier.wait(timeout=timeout)
            results[i] = target(*args)
        except BaseException as exc:  # re-raised in the test's thread below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=body, args=(i, a), name=f"test-thread-{i}") for i, a in
               enumerate(args_per_thread)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(deadline - time.monotonic(), 0.1))
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"threads {stuck} did not finish within {timeout:.0f} s"
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def threads_together():
    """`threads_together(target, [args, ...])`: see run_in_threads."""
    return run_in_threads


# --------------------------------------------------------------------------------------------------------------
# Synthetic sets with exact ground truth: rendered on demand by the shared renderer (`make synth-venv` provides
# its Python environment; the renderer itself is never copied into this repository).
# --------------------------------------------------------------------------------------------------------------


def _synth_renderer() -> Path | None:
    if os.environ.get("OPENSCAN_SYNTH_DIR"):
        return Path(os.environ["OPENSCAN_SYNTH_DIR"]) / "make_turntable.py"
    found = _above_repo("shared/synth/make_turntable.py")
    return found


def _synth_python() -> Path | None:
    """Same search order as scripts/synth-venv.sh: OPENSCAN_SYNTH_PYTHON, .venv-synth/, a synth-venv/ above."""
    candidates = [os.environ.get("OPENSCAN_SYNTH_PYTHON"), REPO_ROOT / ".venv-synth" / "bin" / "python"]
    candidates += [ancestor / "synth-venv" / "bin" / "python" for ancestor in REPO_ROOT.parents]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            probe = subprocess.run([str(candidate), "-c", "import embreex, trimesh, skimage"], capture_output=True)
            if probe.returncode == 0:
                return Path(candidate)
    return None


@pytest.fixture(scope="session")
def render_synthetic():
    """`render_synthetic(out_dir, *renderer_args)` → out_dir with images/ and ground_truth/ (rendered once per
    folder). Missing renderer or environment: skip with how to get it (`make synth-venv`), or fail in CI."""
    renderer, python = _synth_renderer(), _synth_python()
    if renderer is None or not renderer.is_file():
        service_missing("the synthetic-set renderer (shared/synth/make_turntable.py above the repository, or "
                        "OPENSCAN_SYNTH_DIR) was not found")
    if python is None:
        service_missing("no Python environment for the synthetic-set renderer: run `make synth-venv`")

    def render(out_dir: Path, *args: str) -> Path:
        if not (out_dir / "ground_truth" / "mesh.ply").is_file():
            proc = subprocess.run([str(python), str(renderer), str(out_dir), *args], capture_output=True,
                                  text=True, timeout=900)
            assert proc.returncode == 0, f"rendering failed:\n{proc.stderr[-3000:]}"
        return out_dir

    return render


# The benchmark's modules (bench/ is a script folder, not a package), for tests that score with its metric.
BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"


def _load_bench_module(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses need the module registered while it executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def metrics():
    """The module `bench/metrics.py`."""
    return _load_bench_module("metrics")


@pytest.fixture(scope="session")
def bench_module():
    """Factory: `bench_module("reconstruct")` → the module `bench/reconstruct.py`."""
    return _load_bench_module
