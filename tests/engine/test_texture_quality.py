"""The texture stage's parts on a toy scene: a flat, patterned square seen by pinhole cameras.

The "photos" are exact renderings of the pattern (every pixel is the pattern at the point its ray hits), so
what the tests plant — a blurred photo, an exposure step — is the only difference between the views.
"""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import pytest

from openscancloud.engine import texture, texture_labels, texture_levelling, texture_seams, texture_views

W, H, FOCAL, DIST = 320, 240, 400.0, 3.0


def plane_mesh(n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The square [-1, 1]² at z = 0, n × n quads, normals towards −z (the cameras' side)."""
    g = np.linspace(-1, 1, n + 1)
    xx, yy = np.meshgrid(g, g)
    V = np.stack([xx.ravel(), yy.ravel(), np.zeros(xx.size)], 1)
    F = []
    for i in range(n):
        for j in range(n):
            a = i * (n + 1) + j
            b, c, d = a + 1, a + n + 1, a + n + 2
            F += [[a, c, b], [b, c, d]]
    F = np.array(F, np.int64)
    tri = V[F]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert (normal[:, 2] < 0).all()
    return V, F


def camera(x: float) -> dict:
    """A camera at (x, 0, −DIST) looking along +z at the plane."""
    K = np.array([[FOCAL, 0, W / 2], [0, FOCAL, H / 2], [0, 0, 1.0]])
    R = np.eye(3)
    center = np.array([x, 0.0, -DIST])
    return {"K": K, "R": R, "t": -R @ center, "center": center, "width": W, "height": H,
            "params": np.array([FOCAL, W / 2, H / 2]), "model": "PINHOLE"}


def pattern(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A detailed but deterministic colour pattern on the plane (BGR, mid-range so ×0.7 does not clip)."""
    b = 128 + 60 * np.sin(9 * x) * np.cos(7 * y)
    g = 128 + 50 * np.sin(23 * x + 3) * np.sin(19 * y)
    r = 128 + 55 * np.cos(31 * y + 1) * np.sin(13 * x)
    return np.stack([b, g, r], -1)


def photo(cam: dict) -> np.ndarray:
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    x = (u - W / 2) / FOCAL * DIST + cam["center"][0]
    y = (v - H / 2) / FOCAL * DIST + cam["center"][1]
    return np.clip(pattern(x, y), 0, 255).astype(np.uint8)


def scene_of(V: np.ndarray, F: np.ndarray):
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(V.astype(np.float32)), o3d.core.Tensor(F.astype(np.uint32)))
    return scene


def test_labelling_prefers_the_sharp_view():
    V, F = plane_mesh()
    cams = {"a_blurred.jpg": camera(0.0), "b_sharp.jpg": camera(0.0)}
    images = {"a_blurred.jpg": cv2.GaussianBlur(photo(cams["a_blurred.jpg"]), (0, 0), 3.0),
              "b_sharp.jpg": photo(cams["b_sharp.jpg"])}
    names = sorted(cams)
    fv, _ = texture_views.gather(cams, names, images.get, V, F, scene_of(V, F), lambda f, m: None)
    seen = fv.quality.max(1) > 0
    assert seen.mean() > 0.8  # the rows beyond y = ±0.9 are outside the frame
    labels = texture_labels.select_views(fv.quality, F)
    assert np.mean(labels[seen] == names.index("b_sharp.jpg")) > 0.95


def test_labelling_keeps_neighbours_together():
    V, F = plane_mesh(24)
    rng = np.random.default_rng(3)
    # two almost equally good views: the per-face best flips at random, the MRF should not
    quality = 1.0 + 0.05 * rng.random((len(F), 2))
    greedy = quality.argmax(1)
    labels = texture_labels.select_views(quality, F)
    pairs = texture_labels.face_adjacency(F)
    changes = lambda lab: int(np.count_nonzero(lab[pairs[:, 0]] != lab[pairs[:, 1]]))  # noqa: E731
    assert changes(greedy) > 300
    assert changes(labels) < changes(greedy) / 10
    assert (labels >= 0).all()


def test_labelling_never_uses_a_view_that_cannot_see_the_face():
    V, F = plane_mesh(8)
    quality = np.ones((len(F), 3))
    quality[: len(F) // 2, 0] = 0  # view 0 cannot see the first half
    quality[:, 0] *= 5  # ... but is much better elsewhere
    labels = texture_labels.select_views(quality, F)
    assert not np.any(labels[: len(F) // 2] == 0)
    assert np.mean(labels[len(F) // 2:] == 0) > 0.9


def test_levelling_removes_a_planted_exposure_step():
    V, F = plane_mesh(20)
    cams = {"left.jpg": camera(-0.4), "right.jpg": camera(0.4)}
    images = {"left.jpg": photo(cams["left.jpg"]),
              "right.jpg": np.clip(photo(cams["right.jpg"]).astype(np.float64) * 0.7, 0, 255).astype(np.uint8)}
    names = sorted(cams)
    scene = scene_of(V, F)
    depths = {n: texture_views.depth_image(scene, cams[n]) for n in names}
    centers = V[F].mean(1)
    labels = np.where(centers[:, 0] < 0, names.index("left.jpg"), names.index("right.jpg")).astype(np.int64)
    corner_pair, offsets = texture.level_colours(V, F, labels, names, cams, depths, images.get)

    # seam vertices: used by both photos; compare each photo's levelled colour there
    pair_vertex, pair_label, corner_pair2 = texture_levelling.vertex_label_pairs(F, labels)
    assert np.array_equal(corner_pair, corner_pair2)
    seam = np.intersect1d(pair_vertex[pair_label == 0], pair_vertex[pair_label == 1])
    seam = seam[np.abs(V[seam, 1]) < 0.9]  # not the square's corners

    def levelled(k: int) -> tuple[np.ndarray, np.ndarray]:
        idx = np.array([np.nonzero((pair_vertex == v) & (pair_label == k))[0][0] for v in seam])
        uv, _ = texture_views.project(cams[names[k]], V[seam])
        raw = texture_views.bilinear(cv2.blur(images[names[k]], (3, 3)), uv)
        return raw, raw + offsets[idx]

    raw0, lev0 = levelled(0)
    raw1, lev1 = levelled(1)
    before = np.abs(raw0 - raw1).mean()
    after = np.abs(lev0 - lev1).mean()
    assert before > 25
    assert after < 0.1 * before
    # the correction is smooth: far from the seam it is applied as well, not only at the seam vertices
    far = np.nonzero((pair_label == names.index("right.jpg")) & (V[pair_vertex, 0] > 0.8))[0]
    assert offsets[far].mean() > 5


def test_full_resolution_reads_keep_memory_flat(tmp_path):
    rng = np.random.default_rng(0)
    big = cv2.resize(rng.integers(0, 255, (300, 400, 3), np.uint8), (4000, 3000), interpolation=cv2.INTER_CUBIC)
    paths = []
    for i in range(6):
        p = tmp_path / f"photo{i}.jpg"
        cv2.imwrite(str(p), np.roll(big, i * 7, axis=1))
        paths.append(p)
    decoded_bytes = big.nbytes
    del big
    uv = np.array([[300.0, 200.0], [700.0, 600.0]])  # texels cover a 400×400 px region of the 1000×750 working image
    tracemalloc.start()
    crops = []
    for p in paths:
        region = texture.read_photo_region(p, 1, uv, (1000, 750), 4.0)
        crops.append(region[0])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # one full decode at a time, never six; the kept crops are small and prefiltered to the texel density
    assert peak < 1.5 * decoded_bytes
    assert all(c.shape[0] < 500 and c.shape[1] < 500 for c in crops)
    # a coarse atlas decodes the JPEG at a reduced size straight away
    tracemalloc.start()
    texture.read_photo_region(paths[0], texture.reduction_for(4.0), uv, (1000, 750), 4.0)
    _, peak_reduced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak_reduced < decoded_bytes / 8


def test_atlas_density_follows_the_object_size_in_the_photos():
    V, F = plane_mesh(16)  # a 2 × 2 square
    tri = V[F]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    # the square covers 600 × 600 photo pixels in its best views → ~300 texels per unit length
    density = texture.texel_density(np.full(len(F), 600.0 ** 2 / len(F)), area)
    assert density == pytest.approx(300 * texture.OVERSAMPLE)
    vmap, F2, UV, side = texture.unwrap(V, F, density, 4096)
    assert np.array_equal(vmap[F2], F)
    assert side % texture.ATLAS_STEP == 0 and 512 <= side <= 1024
    extent = (UV.max(0) - UV.min(0)) * side  # texels spanned by the charts
    assert extent.max() >= 0.9 * density  # a chart spans at least one unit at the requested density
    # a cap smaller than the need shrinks the charts into the capped atlas
    _, _, UV_small, side_small = texture.unwrap(V, F, density * 4, 1024)
    assert side_small == 1024 and UV_small.max() <= 1.0 + 1e-9


def test_seam_blending_closes_a_step_between_patches_and_leaves_the_rest_alone():
    rng = np.random.default_rng(5)
    detail = rng.normal(0, 8, (64, 64, 3)).astype(np.float32)
    colour = 120 + detail
    labels = np.zeros((64, 64), np.int16)
    labels[:, 32:] = 1
    colour[:, 32:] += 30  # photo 1 is brighter: a step at column 32
    labels[:, 60:] = -1  # padding: never touched
    out = texture_seams.blend_seams(colour, labels)
    step_before = np.abs(colour[:, 32] - colour[:, 31]).mean()
    step_after = np.abs(out[:, 32] - out[:, 31]).mean()
    assert step_before > 25 and step_after < 0.3 * step_before
    assert np.allclose(out[:, :20], colour[:, :20], atol=0.5)  # far from the seam: untouched
    assert np.array_equal(out[:, 60:], colour[:, 60:])
    # detail survives near the seam: the correction is smooth
    assert np.std(out[:, 28:31] - colour[:, 28:31]) < 4


def _two_charts(size: int = 64):
    """A square of two triangles cut into two charts far apart in the atlas (uvs in [0, 1], v up)."""
    F = np.array([[0, 1, 2], [0, 2, 3]])  # the mesh: the diagonal 0–2 is shared
    F2 = np.array([[0, 1, 2], [3, 4, 5]])  # after unwrapping: each triangle its own chart
    s = 24 / size
    UV = np.array([[2, 2], [2 + 24, 2], [2 + 24, 2 + 24],  # chart 1: lower-right half of a square at the left
                   [36, 2], [36 + 24, 2 + 24], [36, 2 + 24]]) / size  # chart 2 at the right, mirrored
    UV[:, 1] = 1.0 - UV[:, 1] - s / 2  # any placement will do; keep them inside the atlas
    face_of = texture.rasterize_uv(F2, UV, size)
    return F, F2, UV, face_of


def test_seams_on_chart_borders_fade_too_and_nothing_leaks_into_other_charts():
    """A seam between two photos that falls on a chart border (the two sides lie apart in the atlas) is closed
    through the 3D edge they share; without that pairing it would stay, and a third chart is left alone."""
    size = 64
    F, F2, UV, face_of = _two_charts(size)
    rng = np.random.default_rng(7)
    colour = (100 + rng.normal(0, 2, (size, size, 3))).astype(np.float32)
    labels = np.full((size, size), -1, np.int16)
    labels[face_of == 0] = 0
    labels[face_of == 1] = 1
    colour[face_of == 1] += 40  # the second chart's photo is brighter
    labels[40:60, 2:20] = 1  # an unrelated chart of photo 1, near nothing
    across = texture_seams.chart_border_points(F, F2, UV, size)
    assert len(across[0]) >= 24  # one pair per texel along the 34-texel diagonal, about
    (x1, y1), (x2, y2) = across[0].T, across[1].T
    assert set(face_of[y1, x1]) | set(face_of[y2, x2]) <= {0, 1} and (face_of[y1, x1] != face_of[y2, x2]).all()
    before = np.abs(colour[y1, x1] - colour[y2, x2]).mean()
    untouched = texture_seams.blend_seams(colour, labels)  # atlas neighbours only: the charts never touch
    assert np.abs(untouched[y1, x1] - untouched[y2, x2]).mean() > 0.9 * before
    out = texture_seams.blend_seams(colour, labels, across=across)
    after = np.abs(out[y1, x1] - out[y2, x2]).mean()
    assert before > 35 and after < 0.3 * before
    assert np.array_equal(out[40:60, 2:20], colour[40:60, 2:20])  # the other chart of photo 1
    assert np.array_equal(out[labels < 0], colour[labels < 0])
    # the same photo on both sides of the border: nothing to close
    same = np.where(labels >= 0, 0, -1).astype(np.int16)
    assert np.array_equal(texture_seams.blend_seams(colour, same, across=across), colour)


def test_a_mesh_unwrapped_in_parts_keeps_its_faces_and_charts_do_not_overlap(monkeypatch):
    """Above UNWRAP_PART_FACES the mesh goes to xatlas in compact parts, packed into one atlas: face i stays face i,
    every face keeps its own vertices and its area, and no two charts share a texel."""
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=4)  # 5 120 faces
    V, F = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    monkeypatch.setattr(texture, "UNWRAP_PART_FACES", 700)
    assert len(texture.spatial_parts(V[F].mean(axis=1), 700)) == 8
    vmap, F2, UV, side = texture.unwrap(V, F, 200.0, 4096)
    assert np.array_equal(vmap[F2], F)
    assert UV.min() >= 0 and UV.max() <= 1
    # each triangle's atlas area matches its 3D area at the requested density (no chart squashed)
    tri, uv = V[F], UV[F2] * side
    area3d = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    a, b = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    area_uv = 0.5 * np.abs(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])
    assert np.median(area_uv / (area3d * 200.0 ** 2)) == pytest.approx(1.0, rel=0.25)
    # no overlap: in the rasterised atlas every face owns the texel under its centre (a face drawn over by
    # another chart would lose it)
    ids = texture.rasterize_uv(F2, UV, side)
    centre = UV[F2].mean(axis=1) * side
    col, row = np.floor(centre[:, 0]).astype(int), np.floor(side - centre[:, 1]).astype(int)
    assert np.mean(ids[row, col] == np.arange(len(F))) > 0.98
