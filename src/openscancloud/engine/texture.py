"""Stage 6 — texture: a UV atlas (xatlas) filled from the one photo that shows each triangle best.

Why: the texture is what people look at first, and it should be as sharp as the photos.  The stage follows
Waechter et al. 2014 ("Let There Be Color!", the method of mvs-texturing, OpenMVS and ODM):

1. every (triangle, photo) pair is scored on the working-size photos — visibility by ray casting, gradient
   magnitude integral (sharp, close, frontal), exposure, photo-consistency outliers (texture_views.py);
2. one photo per triangle is chosen by an MRF (data + Potts smoothness) solved with α-expansion graph cuts
   (texture_labels.py) — no blending, so no blur and no ghosting;
3. per-vertex colour offsets level the patches against each other so seams vanish (texture_levelling.py);
4. the atlas size follows the object's size in the photos (no blurry 8k atlas of a small object, capped by the
   preset/user size), and texels are sampled from the full-resolution originals, one photo at a time, decoded
   at the power-of-two reduction that matches the texel density and cropped to the object;
5. empty texels around the charts are filled by pull-push so mip-mapping does not bleed black into the model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from . import texture_labels, texture_levelling, texture_seams, texture_views
from .context import StageContext, StageResult, load_done, save_done
from .errors import EngineError
from .ingest import IngestResult
from .mesh import MeshResult
from .sparse import SparseResult, camera_arrays

log = logging.getLogger(__name__)

METHOD = "mrf-levelled-blended-borders-fullres-parts-4"  # in the resume key: a new method never reuses an atlas
MIN_ATLAS = 512
ATLAS_STEP = 256  # atlas sides are multiples of this
OVERSAMPLE = 1.15  # texels per photo pixel (linear): a little more than 1 survives bilinear resampling
UNWRAP_PART_FACES = 25_000  # the mesh goes to xatlas in parts of at most this many faces (see `unwrap`)
CHART_PADDING = 2  # texels between charts (+ pull-push fill): no bleeding at the first mip levels; with
# ~80k triangles in thousands of small charts, more padding costs a large share of the atlas


@dataclass
class TextureResult(StageResult):
    mesh_path: Path  # npz: vertices (SfM frame), faces, uvs (OBJ convention, v up)
    texture_path: Path  # PNG atlas
    texture_size: int
    textured_fraction: float  # share of atlas texels that got a colour from a photo

    def load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        data = np.load(self.mesh_path)
        return data["vertices"], data["faces"], data["uvs"]


def unwrap(vertices: np.ndarray, faces: np.ndarray, texels_per_unit: float, max_side: int,
           padding: int = CHART_PADDING) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """xatlas charts at `texels_per_unit` (texels per unit of length) in one square atlas of at most `max_side`.

    Returns (vertex index map, new faces, uvs in [0,1] of the square atlas, v up, atlas side).  xatlas packs at
    the requested density and reports the atlas it needed; only when that exceeds `max_side` are the charts
    scaled down to fit (the density then drops by the same factor).  Face i of the result is face i of the
    input, with vertices split along seams.

    The mesh goes to xatlas in compact parts of at most UNWRAP_PART_FACES faces (all packed into the one
    atlas): its chart search grows faster than the face count, and on a 200 000-triangle mesh eight parts take a
    third of the time of one, with as many charts and the same atlas use.  A cut between parts is a chart
    border like any other."""
    import xatlas

    parts = spatial_parts(vertices[faces].mean(axis=1), UNWRAP_PART_FACES)
    atlas = xatlas.Atlas()
    part_vertices = []
    for part in parts:
        used, local = np.unique(faces[part].ravel(), return_inverse=True)
        atlas.add_mesh(vertices[used].astype(np.float32), local.reshape(-1, 3).astype(np.uint32))
        part_vertices.append(used)
    chart = xatlas.ChartOptions()
    chart.max_iterations = 1  # the default 4 refinement passes cost a lot and change little
    pack = xatlas.PackOptions()
    pack.texels_per_unit = float(texels_per_unit)
    pack.resolution = 0  # one atlas, as large as the density needs
    pack.padding = padding
    pack.bilinear = True
    pack.blockAlign = True
    atlas.generate(chart, pack)
    vmaps, uv_parts = [], []
    new_faces = np.empty((len(faces), 3), np.int64)
    offset = 0
    for i, (part, used) in enumerate(zip(parts, part_vertices)):
        vmapping, indices, part_uvs = atlas[i]
        vmaps.append(used[vmapping.astype(np.int64)])
        uv_parts.append(part_uvs)
        new_faces[part] = indices.astype(np.int64).reshape(-1, 3) + offset
        offset += len(vmapping)
    w, h = int(atlas.width), int(atlas.height)
    needed = max(w, h, 1)
    side = int(min(max_side, max(MIN_ATLAS, int(np.ceil(needed / ATLAS_STEP)) * ATLAS_STEP)))
    # xatlas' uvs are relative to its w × h atlas; in the square atlas the charts keep their texel size (a
    # corner of it when side > needed) or shrink by side / needed when capped
    denominator = max(side, needed)
    uvs = np.concatenate(uv_parts).astype(np.float64) * [w / denominator, h / denominator]
    return np.concatenate(vmaps), new_faces, uvs, side


def spatial_parts(centres: np.ndarray, limit: int) -> list[np.ndarray]:
    """Indices of `centres` in compact groups of at most `limit`: split at the median of the longest side until
    every group is small enough (a k-d split)."""
    parts, todo = [], [np.arange(len(centres))]
    while todo:
        group = todo.pop()
        if len(group) <= limit:
            parts.append(group)
            continue
        pts = centres[group]
        order = group[np.argsort(pts[:, int(np.argmax(np.ptp(pts, axis=0)))], kind="stable")]
        todo += [order[: len(order) // 2], order[len(order) // 2:]]
    return parts


def rasterize_uv(faces: np.ndarray, uvs: np.ndarray, size: int) -> np.ndarray:
    """Face index (−1 = none) of every atlas texel. Row 0 is the top of the image (v = 1)."""
    img = np.zeros((size, size, 3), np.uint8)
    px = np.stack([uvs[:, 0] * size - 0.5, (1.0 - uvs[:, 1]) * size - 0.5], 1)
    tri = np.round(px[faces] * 16).astype(np.int32)  # 4 bits of sub-pixel precision
    ids = np.arange(1, len(faces) + 1)
    colors = np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], 1).tolist()
    for t, c in zip(tri, colors):
        cv2.fillConvexPoly(img, t, c, lineType=cv2.LINE_8, shift=4)
    out = img[..., 0].astype(np.int32)
    out |= img[..., 1].astype(np.int32) << 8
    out |= img[..., 2].astype(np.int32) << 16
    out -= 1
    return out


def texel_positions(V: np.ndarray, F: np.ndarray, UV: np.ndarray, size: int, xs: np.ndarray, ys: np.ndarray,
                    fid: np.ndarray, chunk: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """3D point and barycentric coordinates (both float32) under each texel centre; in chunks to bound memory."""
    P = np.stack([UV[:, 0] * size, (1.0 - UV[:, 1]) * size], 1)
    X = np.empty((len(xs), 3), np.float32)
    weights = np.empty((len(xs), 3), np.float32)
    for s in range(0, len(xs), chunk):
        f = fid[s:s + chunk]
        A, B, C = P[F[f, 0]], P[F[f, 1]], P[F[f, 2]]
        q = np.stack([xs[s:s + chunk] + 0.5, ys[s:s + chunk] + 0.5], 1)
        v0, v1, v2 = B - A, C - A, q - A
        den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
        den = np.where(np.abs(den) < 1e-12, 1e-12, den)
        b1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
        b2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
        bary = np.clip(np.stack([1 - b1 - b2, b1, b2], 1), 0, 1)
        bary /= np.maximum(bary.sum(1, keepdims=True), 1e-12)
        X[s:s + chunk] = (bary[:, 0:1] * V[F[f, 0]] + bary[:, 1:2] * V[F[f, 1]] + bary[:, 2:3] * V[F[f, 2]])
        weights[s:s + chunk] = bary
    return X, weights


def pull_push_fill(color: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill unknown texels with a smooth extrapolation of known ones (image pyramid pull-push).

    The pyramid starts at half resolution and the full-resolution level only writes unknown texels, so a 4096²
    atlas needs a few hundred MB, not gigabytes."""
    if known.all() or not known.any():
        return color
    h, w = known.shape
    premultiplied = color * known[..., None].astype(np.uint8)
    half = ((w + 1) // 2, (h + 1) // 2)
    c = cv2.resize(premultiplied, half, interpolation=cv2.INTER_AREA).astype(np.float32)
    wt = cv2.resize(known.astype(np.float32), half, interpolation=cv2.INTER_AREA)
    del premultiplied
    levels = []
    while min(c.shape[:2]) > 1:
        levels.append((c, wt))
        h2, w2 = (c.shape[0] + 1) // 2, (c.shape[1] + 1) // 2
        c = cv2.resize(c, (w2, h2), interpolation=cv2.INTER_AREA)
        wt = cv2.resize(wt, (w2, h2), interpolation=cv2.INTER_AREA)
    filled = c / np.maximum(wt, 1e-6)[..., None]
    for c_l, w_l in reversed(levels):
        up = cv2.resize(filled, (c_l.shape[1], c_l.shape[0]), interpolation=cv2.INTER_LINEAR)
        alpha = np.clip(w_l, 0, 1)[..., None]
        filled = c_l / np.maximum(w_l, 1e-6)[..., None] * alpha + up * (1 - alpha)
    up = cv2.resize(np.clip(filled, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    out = color.copy()
    out[~known] = up[~known]
    return out


def texel_density(face_area_px: np.ndarray, face_area: np.ndarray) -> float:
    """Texels per unit length that give the triangles about as many texels as their chosen photos have pixels.

    `face_area_px`: each labelled triangle's projected area in its photo at full resolution; `face_area`: its
    area in the mesh's units."""
    return float(OVERSAMPLE * np.sqrt(max(float(face_area_px.sum()), 1.0) / max(float(face_area.sum()), 1e-30)))


def reduction_for(pixels_per_texel: float) -> int:
    """Power-of-two JPEG decode reduction (1, 2, 4, 8) that keeps at least one photo pixel per texel."""
    for factor in (8, 4, 2):
        if pixels_per_texel >= factor:
            return factor
    return 1


_REDUCED_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                  8: cv2.IMREAD_REDUCED_COLOR_8}


def read_photo_region(path: Path, reduction: int, uv_working: np.ndarray, working_size: tuple[int, int],
                      pixels_per_texel: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The part of a full-resolution photo that the texels need, prefiltered to the texel density.

    Returns (image crop, texel pixel coordinates in the crop).  Only this one photo is decoded (at a
    power-of-two reduction when the atlas is coarser than the photo), then cropped to the texels' bounding box
    and the full decode is released, so memory stays at about one photo whatever the number of photos."""
    img = cv2.imread(str(path), _REDUCED_FLAGS[reduction] | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        return None
    sx, sy = img.shape[1] / working_size[0], img.shape[0] / working_size[1]
    uv = uv_working * [sx, sy]
    margin = 4
    x0 = int(max(0, np.floor(uv[:, 0].min()) - margin))
    y0 = int(max(0, np.floor(uv[:, 1].min()) - margin))
    x1 = int(min(img.shape[1], np.ceil(uv[:, 0].max()) + margin + 1))
    y1 = int(min(img.shape[0], np.ceil(uv[:, 1].max()) + margin + 1))
    if x1 <= x0 or y1 <= y0:
        return None
    crop = img[y0:y1, x0:x1].copy()
    del img
    uv = uv - [x0, y0]
    residual = pixels_per_texel / reduction
    if residual > 1.25:  # still more photo pixels than texels: area-average first, so texels do not alias
        w, h = max(1, round(crop.shape[1] / residual)), max(1, round(crop.shape[0] / residual))
        fx, fy = w / crop.shape[1], h / crop.shape[0]
        crop = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA)
        uv = (uv + 0.5) * [fx, fy] - 0.5
    return crop, uv


def level_colours(V: np.ndarray, F: np.ndarray, labels: np.ndarray, names: list[str], cams: dict[str, dict],
                  depths: dict[str, tuple[np.ndarray, float]], working_image: Callable[[str], np.ndarray | None]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex colour offsets per chosen photo (texture_levelling.py), measured on the working-size photos.

    Returns (corner_pair (F, 3): index of each face corner's (vertex, photo) pair or −1, offsets (P, 3))."""
    pair_vertex, pair_label, corner_pair = texture_levelling.vertex_label_pairs(F, labels)
    pair_colour = np.zeros((len(pair_vertex), 3))
    pair_valid = np.zeros(len(pair_vertex), bool)
    for k in np.unique(pair_label):
        name = names[k]
        sel = np.nonzero(pair_label == k)[0]
        img = working_image(name)
        if img is None:
            continue
        uv, z = texture_views.project(cams[name], V[pair_vertex[sel]])
        zimg, s = depths[name]
        pair_valid[sel] = texture_views.passes_depth_test(uv, z, zimg, s, cams[name])
        pair_colour[sel] = texture_views.bilinear(cv2.blur(img, (3, 3)), uv)
    offsets = texture_levelling.solve_offsets(F, labels, pair_vertex, pair_label, corner_pair, pair_colour,
                                              pair_valid)
    return corner_pair, offsets


def run(mesh: MeshResult, sparse: SparseResult, ingest: IngestResult, ctx: StageContext) -> TextureResult:
    import open3d as o3d

    cap = ctx.preset.texture_size
    key = {"mesh": mesh.to_dict(), "size": cap, "sparse": sparse.to_dict(), "method": METHOD}
    if (saved := load_done(ctx.work_dir, key)) is not None:
        return TextureResult.from_dict(saved)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    m = o3d.io.read_triangle_mesh(str(mesh.mesh_path))
    V = np.asarray(m.vertices, dtype=np.float64)
    F = np.asarray(m.triangles, dtype=np.int64)
    if len(F) == 0:
        raise EngineError("There is no surface to texture.")
    cams = camera_arrays(sparse.load())
    names = sorted(cams)
    views = {v.name: v for v in ingest.views}
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(V.astype(np.float32)), o3d.core.Tensor(F.astype(np.uint32)))

    def working_image(name: str) -> np.ndarray | None:
        img = cv2.imread(str(ingest.images_dir / name), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        cam = cams[name]
        if img is not None and (img.shape[1], img.shape[0]) != (cam["width"], cam["height"]):
            img = cv2.resize(img, (cam["width"], cam["height"]), interpolation=cv2.INTER_AREA)
        return img

    # 1. what each photo offers each triangle
    fv, depths = texture_views.gather(cams, names, working_image, V, F, scene,
                                      lambda f, msg: (ctx.report(0.02 + 0.38 * f, msg), ctx.check_cancelled()))
    del scene
    # 2. one photo per triangle
    labels = texture_labels.select_views(fv.quality, F, progress=lambda f, msg: ctx.report(0.4 + 0.15 * f, msg))
    if not (labels >= 0).any():
        raise EngineError("None of the photos sees the surface clearly enough to texture it.")
    ctx.check_cancelled()
    # 3. colour levelling offsets per (vertex, photo)
    ctx.report(0.56, "levelling colours across seams")
    corner_pair, offsets = level_colours(V, F, labels, names, cams, depths, working_image)
    del depths
    ctx.check_cancelled()
    # 4. atlas sized by the object's size in the photos
    labelled = np.nonzero(labels >= 0)[0]
    scale = np.array([views[n].original_width / cams[n]["width"] if n in views else 1.0 for n in names])
    face_px = fv.area_px[labelled, labels[labelled]] * scale[labels[labelled]] ** 2
    tri = V[F[labelled]]
    face_area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    density = texel_density(face_px, face_area)
    ctx.report(0.6, f"unwrapping {len(F)} triangles")
    vmap, F2, UV, size = unwrap(V, F, density, cap)
    if len(F2) != len(F) or not np.array_equal(vmap[F2], F):
        raise EngineError("The UV unwrapper changed the triangles; the texture cannot be baked.")
    V2 = V[vmap]
    ctx.check_cancelled()
    ctx.report(0.65, "rasterising the atlas")
    face_of = rasterize_uv(F2, UV, size)
    ys, xs = np.nonzero(face_of >= 0)
    ys, xs = ys.astype(np.int32), xs.astype(np.int32)
    fid = face_of[ys, xs]
    del face_of
    X, bary = texel_positions(V2, F2, UV, size, xs, ys, fid)
    texels_per_face = np.bincount(fid, minlength=len(F))
    ctx.check_cancelled()
    # 5. texels from the full-resolution photos, one photo at a time
    colour = np.zeros((len(X), 3), np.float32)
    known_texels = np.zeros(len(X), bool)
    texel_label = labels[fid]
    used = np.unique(labels[labelled])
    for i, k in enumerate(used):
        name = names[k]
        texels = np.nonzero(texel_label == k)[0]
        faces_k = labelled[labels[labelled] == k]
        if len(texels) == 0:
            continue
        ppt = float(np.sqrt(fv.area_px[faces_k, k].sum() * scale[k] ** 2 / max(texels_per_face[faces_k].sum(), 1)))
        uv, _ = texture_views.project(cams[name], X[texels])
        region = read_photo_region(ingest.original_path(views[name]) if name in views else ingest.images_dir / name,
                                   reduction_for(ppt), uv, (cams[name]["width"], cams[name]["height"]), ppt)
        if region is None:
            continue
        crop, uv_crop = region
        c = texture_views.bilinear(crop, uv_crop)
        pairs = corner_pair[fid[texels]]
        c += np.einsum("ni,nic->nc", bary[texels], offsets[pairs].astype(np.float32))
        colour[texels] = c
        known_texels[texels] = True
        ctx.report(0.7 + 0.18 * (i + 1) / len(used), f"colour from {i + 1}/{len(used)} photos")
        ctx.check_cancelled()
    del X, bary
    ctx.report(0.9, "blending seams")
    label_image = np.full((size, size), -1, np.int16 if len(names) < 32000 else np.int32)
    label_image[ys[known_texels], xs[known_texels]] = texel_label[known_texels]
    blended = np.zeros((size, size, 3), np.float32)
    blended[ys[known_texels], xs[known_texels]] = colour[known_texels]
    del colour
    blended = texture_seams.blend_seams(blended, label_image,
                                        across=texture_seams.chart_border_points(F, F2, UV, size))
    del label_image
    known = np.zeros((size, size), bool)
    known[ys[known_texels], xs[known_texels]] = True
    atlas = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    del blended
    atlas[~known] = 0
    ctx.report(0.93, "filling seams")
    atlas = pull_push_fill(atlas, known)
    tex_path = ctx.work_dir / "texture.png"
    cv2.imwrite(str(tex_path), atlas)
    mesh_path = ctx.work_dir / "textured.npz"
    np.savez(mesh_path, vertices=V2, faces=F2, uvs=UV)
    result = TextureResult(mesh_path, tex_path, size, float(known_texels.mean()) if len(known_texels) else 0.0)
    save_done(ctx.work_dir, key, result.to_dict())
    ctx.report(1.0, f"texture baked: {size}² atlas from {len(used)} photos")
    return result
