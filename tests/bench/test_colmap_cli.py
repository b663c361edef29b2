"""COLMAP's CLI timing on the smallest real set (skipped where the Debian package is not installed: tests never
install system packages; the bench does)."""

from __future__ import annotations

import shutil

import pytest


@pytest.mark.skipif(shutil.which("colmap") is None, reason="COLMAP CLI not installed (apt-get install colmap)")
def test_colmap_cli_times_its_three_commands_on_kermit(bench_module, photo_set, tmp_path):
    colmap_cli = bench_module("colmap_cli")
    result = colmap_cli.run_colmap_cli(photo_set("kermit"), tmp_path / "colmap", install=False)
    assert result.images_total == 11
    assert result.images_registered >= 9  # COLMAP registers all 11 with defaults; allow its randomness
    assert result.points3d > 100
    assert 0 < result.feature_seconds and 0 < result.matching_seconds and 0 < result.mapper_seconds
    assert result.total_seconds == pytest.approx(
        result.feature_seconds + result.matching_seconds + result.mapper_seconds)
    assert "--SiftExtraction.use_gpu 0" in result.commands[0] or "--FeatureExtraction.use_gpu 0" in result.commands[0]


def test_missing_image_folder_is_a_clear_error(bench_module, tmp_path):
    colmap_cli = bench_module("colmap_cli")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        colmap_cli.run_colmap_cli(tmp_path / "nothing", tmp_path / "work", install=False)
