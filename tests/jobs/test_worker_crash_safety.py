"""What a `kill -9`ed worker leaves behind: its engine child dies with it (PR_SET_PDEATHSIG), and the next
worker start removes the dead process's scratch dir while leaving live ones alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from openscancloud.jobs.worker import Worker


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_engine_child_dies_with_a_killed_worker():
    code = (
        "import subprocess, time\n"
        "from openscancloud.jobs.worker import _DIE_WITH_PARENT\n"
        "p = subprocess.Popen(['sleep', '60'], start_new_session=True, preexec_fn=_DIE_WITH_PARENT)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert _state(child) in ("S", "R", "D")  # alive (D: still reading its program from a busy disk)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 5
    while _state(child) not in (None, "Z") and time.time() < deadline:
        time.sleep(0.05)
    assert _state(child) in (None, "Z")  # gone (or a zombie waiting to be reaped): not running


def test_scratch_dirs_of_dead_workers_are_swept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f"osc-{dead.pid}-abcdef12-x").mkdir()
    (tmp_path / f"osc-{os.getppid()}-abcdef12-y").mkdir()  # a live process's dir
    (tmp_path / "unrelated").mkdir()
    w = Worker("http://127.0.0.1:9", "wrk_x", work_dir=tmp_path)
    assert w.sweep_stale_dirs() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"osc-{os.getppid()}-abcdef12-y", "unrelated"])
    w.close()
