"""Dense, mesh, texture and export on kermit with a tiny preset (seconds, not minutes)."""

from __future__ import annotations

import numpy as np
import open3d as o3d
import pytest

from openscancloud.engine import dense, export, mesh, orient, sparse, texture
from openscancloud.engine.errors import Cancelled


@pytest.fixture(scope="module")
def kermit_dense(kermit_sparse, make_ctx):
    ing, msk, sp, root = kermit_sparse
    return dense.run(ing, msk, sp, make_ctx("dense", root))


def test_depth_maps_match_sparse_depths(kermit_dense, kermit_sparse):
    """Every PatchMatch depth map (on its object crop, OpenCV pixel centres) agrees with the SfM points it sees."""
    from openscancloud.engine.fusion import DepthView

    _, _, sp, root = kermit_sparse
    rec = sp.load()
    cams = sparse.camera_arrays(rec)
    xyz, seen = dense._point_visibility(rec)
    maps = sorted((root / "dense" / "maps").glob("*.npz"))
    assert len(maps) == kermit_dense.num_depth_maps >= 0.8 * len(cams)
    medians = []
    for path in maps[:: max(1, len(maps) // 5)]:
        name = path.name[: -len(".npz")]
        view = DepthView.load(name, path)
        cam = cams[name]
        Xc = xyz[seen[cam["image_id"]]] @ view.R.T + view.t
        uv = Xc @ view.K.T
        u = np.rint(uv[:, 0] / uv[:, 2]).astype(int)
        v = np.rint(uv[:, 1] / uv[:, 2]).astype(int)
        ok = (u >= 0) & (v >= 0) & (u < view.depth.shape[1]) & (v < view.depth.shape[0])
        d, z = view.depth[v[ok], u[ok]], Xc[ok, 2]
        has = d > 0
        assert has.sum() > 30
        medians.append(np.median(np.abs(d[has] - z[has]) / z[has]))
    assert np.median(medians) < 0.01  # the depth maps agree with the SfM points


def test_crop_intrinsics_follow_opencv_pixel_centres():
    """COLMAP's K (corner at 0,0) scaled ×0.5 and cropped at (10, 20) maps a point to the same place as resizing."""
    K = np.array([[1000.0, 0, 640.0], [0, 1000.0, 480.0], [0, 0, 1]])  # COLMAP: cx = width / 2
    X = np.array([0.01, -0.02, 1.0])
    u_colmap = (K @ X)[:2] / X[2]  # corner convention
    Kc = dense.view_intrinsics(K, 0.5, (10, 20))
    u_crop = (Kc @ X)[:2] / X[2]
    assert u_crop == pytest.approx(u_colmap * 0.5 - 0.5 - np.array([10, 20]))


def test_dense_cloud(kermit_dense, kermit_sparse):
    assert kermit_dense.num_points > 5000
    pcd = o3d.io.read_point_cloud(str(kermit_dense.ply_path))
    assert pcd.has_normals() and pcd.has_colors()
    pts = np.asarray(pcd.points)
    sparse_pts = np.array([p.xyz for p in kermit_sparse[2].load().points3D.values()])
    # the dense cloud covers the same region as the sparse points
    lo, hi = np.percentile(sparse_pts, [5, 95], axis=0)
    inside = np.all((pts > lo - 0.2 * (hi - lo)) & (pts < hi + 0.2 * (hi - lo)), axis=1)
    assert inside.mean() > 0.8


def test_mesh_texture_export(kermit_dense, kermit_sparse, make_ctx, tmp_path):
    import trimesh

    ing, _, sp, root = kermit_sparse
    rec = sp.load()
    cams = sparse.camera_arrays(rec)
    o = orient.estimate(np.array([c["center"] for c in cams.values()]), np.array([c["R"][2] for c in cams.values()]),
                        np.array([-c["R"][1] for c in cams.values()]))
    m = mesh.run(kermit_dense, o, make_ctx("mesh", root))
    assert 1000 < m.num_faces <= 8000 * 1.01
    t = texture.run(m, sp, ing, make_ctx("texture", root))
    assert t.textured_fraction > 0.8
    V, F, UV = t.load()
    assert UV.min() >= 0 and UV.max() <= 1
    out = tmp_path / "out"
    ex = export.run(t, kermit_dense, sp, o, out, make_ctx("export", root))
    for key in ("obj", "mtl", "glb", "stl", "usdz", "dense", "sparse", "preview", "texture"):
        assert key in ex.outputs
    stl = trimesh.load(out / "model.stl", force="mesh")
    assert len(stl.faces) == m.num_faces
    _check_usdz(out / "model.usdz", m.num_faces)
    loaded = trimesh.load(out / "model.glb", force="mesh")
    assert len(loaded.faces) == m.num_faces
    assert loaded.visual.uv is not None
    obj = trimesh.load(out / "model.obj", force="mesh")
    assert len(obj.faces) == m.num_faces
    # the exported sparse model is in the same frame as the mesh
    rec_out = __import__("pycolmap").Reconstruction(str(out / "sparse"))
    pts = np.array([p.xyz for p in rec_out.points3D.values()])
    lo, hi = obj.vertices.min(0), obj.vertices.max(0)
    inside = np.all((pts > lo - 0.1 * (hi - lo)) & (pts < hi + 0.1 * (hi - lo)), axis=1)
    assert inside.mean() > 0.7
    preview = __import__("cv2").imread(str(out / "preview.png"))
    assert preview is not None and preview.std() > 10


def test_geometric_pass_runs_over_every_depth_map(kermit_dense, kermit_sparse, make_ctx, tiny_preset, tmp_path):
    """With the geometric-consistency pass on, every photometric depth map gets a second one that keeps each
    pixel the first placed, and fusion reads the second ones."""
    import dataclasses

    from openscancloud.engine.fusion import DepthView

    ing, msk, sp, root = kermit_sparse
    preset = dataclasses.replace(tiny_preset, depth_geometric_iterations=1)
    result = dense.run(ing, msk, sp, make_ctx("dense", tmp_path, preset=preset))
    first = sorted((tmp_path / "dense" / "maps").glob("*.npz"))
    second = sorted((tmp_path / "dense" / "maps-geometric").glob("*.npz"))
    assert [p.name for p in first] == [p.name for p in second] and len(second) == result.num_depth_maps
    for a, b in zip(first, second):
        da, db = DepthView.load(a.stem, a).depth, DepthView.load(b.stem, b).depth
        assert np.all(db[da > 0] > 0) and np.all(db[da <= 0] == 0)
    assert result.num_points > 0.8 * kermit_dense.num_points


def test_cancel_stops_a_stage(kermit_sparse, make_ctx, tmp_path):
    ing, msk, sp, _ = kermit_sparse
    ctx = make_ctx("dense", tmp_path)
    ctx.cancel.set()
    with pytest.raises(Cancelled):
        dense.run(ing, msk, sp, ctx)


def _check_usdz(path, faces: int) -> None:
    """AR Quick Look's rules: an uncompressed zip whose first entry is the USD layer and whose file data
    starts on 64-byte boundaries; and USD itself reads back the mesh with its textured material."""
    import zipfile

    from pxr import Usd, UsdGeom, UsdShade

    with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
        infos = zf.infolist()
        assert infos[0].filename.endswith((".usdc", ".usda"))
        assert any(i.filename.endswith(".png") for i in infos)
        for info in infos:
            assert info.compress_type == zipfile.ZIP_STORED
            fh.seek(info.header_offset + 26)
            name_len, extra_len = (int.from_bytes(fh.read(2), "little") for _ in range(2))
            assert (info.header_offset + 30 + name_len + extra_len) % 64 == 0
    stage = Usd.Stage.Open(str(path))
    assert UsdGeom.GetStageUpAxis(stage) == "Y"
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath("/Model/Mesh"))
    assert len(mesh.GetFaceVertexCountsAttr().Get()) == faces
    material, _ = UsdShade.MaterialBindingAPI(mesh.GetPrim()).ComputeBoundMaterial()
    assert material and material.GetPath() == "/Model/Material"


@pytest.mark.parametrize("underside", [False, True], ids=["one session", "flipped second session"])
def test_the_surface_stops_at_the_plate(make_ctx, tiny_preset, tmp_path, underside):
    """A cylinder standing on a noisy turntable plate: Poisson closes the cylinder's open bottom with a skirt that
    runs out along the plate; the mesh is cut at the plate's plane like the points, so no skirt is left.  When a
    flipped session saw the cylinder's bottom, the bottom is kept — and the bleeding past its rim is not."""
    import dataclasses

    from openscancloud.engine.orient import Orientation
    from tests.engine.test_region import _cylinder_on_plate

    points, normals, _, spacing = _cylinder_on_plate(np.random.default_rng(11), underside)
    radius, height = 0.02, 0.04
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    pcd.normals = o3d.utility.Vector3dVector(normals)
    pcd.colors = o3d.utility.Vector3dVector(np.full((len(points), 3), 0.5))
    ply = tmp_path / "dense.ply"
    o3d.io.write_point_cloud(str(ply), pcd)
    cloud = dense.DenseResult(ply, len(points), 1, "cpu-patch-match")
    up = Orientation(np.eye(4), True, np.array([0.0, 0, 1]), np.zeros(3), 0.001)
    preset = dataclasses.replace(tiny_preset, poisson_depth=8, target_faces=20_000)
    m = mesh.run(cloud, up, make_ctx("mesh", tmp_path, preset=preset))
    assert m.plate_removed
    surface = o3d.io.read_triangle_mesh(str(m.mesh_path))
    samples = np.asarray(surface.sample_points_uniformly(50_000).points)
    reach = np.hypot(samples[:, 0], samples[:, 1])
    assert np.mean(reach > radius + 4 * spacing) < 0.002  # nothing runs out along the plate
    assert samples[:, 2].min() > -4 * spacing  # nor below it
    assert np.mean(samples[:, 2] > height - 4 * spacing) > 0.1  # the top is there ...
    assert np.mean(samples[:, 2] < 0.25 * height) > 0.15  # ... and the side down to the plate
    bottom = np.mean((samples[:, 2] < 2 * spacing) & (reach < radius - 4 * spacing))
    if underside:
        assert bottom > 0.1  # the bottom disc: a fifth of the area of a closed cylinder of these proportions
    else:
        assert bottom < 0.01  # never seen: not invented
