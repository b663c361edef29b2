"""The pipeline as a library: progress contract, resume from the work dir, cancellation, option errors."""

from __future__ import annotations

import threading

import pytest

from openscancloud.engine import Cancelled, ReconstructionOptions, UserInputError, reconstruct
from openscancloud.engine.pipeline import STAGES, overall_progress


def test_overall_progress_weights():
    assert overall_progress("ingest", 0.0) == 0.0
    assert overall_progress("export", 1.0) == pytest.approx(1.0)
    values = [overall_progress(s, f) for s in STAGES for f in (0.0, 0.5, 1.0)]
    assert values == sorted(values)


def test_cancel_before_start(photo_set, tmp_path):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        reconstruct(photo_set("kermit"), tmp_path / "out", ReconstructionOptions(quality="preview"), cancel=cancel)


def test_bad_options(tmp_path):
    with pytest.raises(UserInputError, match="Unknown quality"):
        reconstruct(tmp_path, tmp_path / "out", ReconstructionOptions(quality="ultra"))
    with pytest.raises(UserInputError, match="max-image-size"):
        reconstruct(tmp_path, tmp_path / "out", ReconstructionOptions(max_image_size=10))
