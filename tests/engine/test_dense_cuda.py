"""The GPU path (COLMAP's PatchMatch through pycolmap) where pycolmap was built with CUDA; skipped elsewhere."""

from __future__ import annotations

import open3d as o3d
import pycolmap
import pytest

from openscancloud.engine import dense

pytestmark = pytest.mark.skipif(not pycolmap.has_cuda, reason="pycolmap was built without CUDA on this machine")


def test_gpu_patch_match_runs_and_says_so(kermit_sparse, make_ctx, tmp_path):
    ing, msk, sp, _ = kermit_sparse
    result = dense.run(ing, msk, sp, make_ctx("dense", tmp_path))
    assert result.method == "cuda-patch-match", result.fallback
    assert result.fallback is None
    pcd = o3d.io.read_point_cloud(str(result.ply_path))
    assert len(pcd.points) == result.num_points > 1000
    assert pcd.has_normals()
