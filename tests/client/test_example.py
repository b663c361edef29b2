"""The copy-and-paste example in examples/ really works: against the real server, where a real worker process
reconstructs the photos (kermit, preset preview)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "upload_and_wait.py"


@pytest.mark.slow  # a real reconstruction, like the CLI's kermit_done test that `make test` runs
def test_upload_and_wait_example(processing_server, photo_set, client_paths, tmp_path):
    env = {**os.environ, "OPENSCAN_SERVER": processing_server.url, "OPENSCAN_TOKEN": processing_server.token()}
    out = subprocess.run([sys.executable, str(EXAMPLE), str(photo_set("kermit")), str(tmp_path / "results")],
                         env=env, capture_output=True, text=True, timeout=1000)
    assert out.returncode == 0, out.stderr
    assert "uploaded 11 photos" in out.stdout
    (result,) = (tmp_path / "results").glob("*.zip")
    assert "model.obj" in {n.rsplit("/", 1)[-1] for n in zipfile.ZipFile(result).namelist()}

    bad = subprocess.run([sys.executable, str(EXAMPLE), str(tmp_path / "nothing")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.strip().startswith("error: ") and "does not exist" in bad.stderr
