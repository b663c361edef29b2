"""The copy-and-paste example in examples/ really works (against the small protocol server)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "upload_and_wait.py"


def test_upload_and_wait_example(mini_cloud, make_photos, client_paths, tmp_path):
    cloud = mini_cloud()
    env = {**os.environ, "OPENSCAN_SERVER": cloud.url, "OPENSCAN_TOKEN": cloud.token}
    out = subprocess.run([sys.executable, str(EXAMPLE), str(make_photos(3)), str(tmp_path / "results")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "uploaded 3 photos" in out.stdout
    (result,) = (tmp_path / "results").glob("*.zip")
    assert "model.obj" in zipfile.ZipFile(result).namelist()

    bad = subprocess.run([sys.executable, str(EXAMPLE), str(tmp_path / "nothing")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.strip().startswith("error: ") and "does not exist" in bad.stderr
