"""Stage 6 — texture: a UV atlas (xatlas) filled with colour from the photos that see each triangle best.

Why: per-vertex colours look blurry at a sane face count; a texture keeps the photos' sharpness.  For every face
the views are ranked by how large and how frontal the face appears in them (and whether the face is actually
visible: a ray-cast depth image per view, Open3D's Embree scene, CPU), then every texel blends its face's best
three views with weights that strongly favour the best one — sharp inside a face, smooth across seams.  Empty
texels around the charts are filled by pull-push so mip-mapping does not bleed black into the model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .context import StageContext, StageResult, load_done, save_done
from .errors import EngineError
from .ingest import IngestResult
from .mesh import MeshResult
from .sparse import SparseResult, camera_arrays

log = logging.getLogger(__name__)

VIEWS_PER_FACE = 3
MIN_COS = 0.1
VISIBILITY_TOLERANCE = 0.01  # relative depth difference still counted as "this surface"


@dataclass
class TextureResult(StageResult):
    mesh_path: Path  # npz: vertices (SfM frame), faces, uvs (OBJ convention, v up)
    texture_path: Path  # PNG atlas
    texture_size: int
    textured_fraction: float  # share of atlas texels that got a colour from a photo

    def load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        data = np.load(self.mesh_path)
        return data["vertices"], data["faces"], data["uvs"]


def unwrap(vertices: np.ndarray, faces: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xatlas charts packed into a `size`² atlas: (vertex index map, new faces, uvs in [0,1], v up)."""
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(vertices.astype(np.float32), faces.astype(np.uint32))
    chart = xatlas.ChartOptions()
    chart.max_iterations = 1  # the default 4 refinement passes cost a lot and change little
    pack = xatlas.PackOptions()
    pack.resolution = size
    pack.padding = 2
    pack.bilinear = True
    pack.blockAlign = True
    atlas.generate(chart, pack)
    vmapping, indices, uvs = atlas[0]
    return vmapping.astype(np.int64), indices.astype(np.int64), uvs.astype(np.float64)


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
                    fid: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """3D point (float32) under each texel centre, by barycentric interpolation; in chunks to bound memory."""
    P = np.stack([UV[:, 0] * size, (1.0 - UV[:, 1]) * size], 1)
    X = np.empty((len(xs), 3), np.float32)
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
    return X


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


def _project(cam: dict, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (with the camera's radial distortion) and depth of world points."""
    Xc = X @ cam["R"].T + cam["t"]
    z = Xc[:, 2]
    zs = np.where(np.abs(z) > 1e-12, z, 1e-12)
    x, y = Xc[:, 0] / zs, Xc[:, 1] / zs
    p = cam["params"]
    K = cam["K"]
    if cam["model"] in ("SIMPLE_RADIAL", "RADIAL"):
        r2 = x * x + y * y
        f = 1 + p[3] * r2 + (p[4] * r2 * r2 if cam["model"] == "RADIAL" else 0)
        x, y = x * f, y * f
    u = K[0, 0] * x + K[0, 2]
    v = K[1, 1] * y + K[1, 2]
    return np.stack([u, v], 1), z


def _depth_image(scene, cam: dict, scale: float) -> tuple[np.ndarray, float]:
    import open3d as o3d

    w, h = max(8, round(cam["width"] * scale)), max(8, round(cam["height"] * scale))
    K = cam["K"].copy()
    K[0] *= w / cam["width"]
    K[1] *= h / cam["height"]
    E = np.eye(4)
    E[:3, :3] = cam["R"]
    E[:3, 3] = cam["t"]
    rays = o3d.t.geometry.RaycastingScene.create_rays_pinhole(
        o3d.core.Tensor(K), o3d.core.Tensor(E), w, h)
    ans = scene.cast_rays(rays)
    t = ans["t_hit"].numpy()
    r = rays.numpy()
    hit = r[..., :3] + r[..., 3:] * np.where(np.isfinite(t), t, 0)[..., None]
    z = (hit.reshape(-1, 3) @ cam["R"].T + cam["t"])[:, 2].reshape(h, w)
    z[~np.isfinite(t)] = np.inf
    return z.astype(np.float32), w / cam["width"]


def _sample(img: np.ndarray, uv: np.ndarray) -> np.ndarray:
    n = len(uv)
    cols = 4096
    rows = (n + cols - 1) // cols
    pad = rows * cols - n
    mx = np.concatenate([uv[:, 0], np.zeros(pad)]).astype(np.float32).reshape(rows, cols)
    my = np.concatenate([uv[:, 1], np.zeros(pad)]).astype(np.float32).reshape(rows, cols)
    out = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1, img.shape[2])[:n]


def run(mesh: MeshResult, sparse: SparseResult, ingest: IngestResult, ctx: StageContext) -> TextureResult:
    import open3d as o3d

    size = ctx.preset.texture_size
    key = {"mesh": mesh.to_dict(), "size": size, "sparse": sparse.to_dict()}
    if (saved := load_done(ctx.work_dir, key)) is not None:
        return TextureResult.from_dict(saved)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    m = o3d.io.read_triangle_mesh(str(mesh.mesh_path))
    V = np.asarray(m.vertices, dtype=np.float64)
    F = np.asarray(m.triangles, dtype=np.int64)
    if len(F) == 0:
        raise EngineError("There is no surface to texture.")
    ctx.report(0.02, f"unwrapping {len(F)} triangles")
    vmap, F2, UV = unwrap(V, F, size)
    V2 = V[vmap]
    ctx.check_cancelled()
    ctx.report(0.3, "rasterising the atlas")
    face_of = rasterize_uv(F2, UV, size)
    ys, xs = np.nonzero(face_of >= 0)
    ys, xs = ys.astype(np.int32), xs.astype(np.int32)
    fid = face_of[ys, xs]
    del face_of
    X = texel_positions(V2, F2, UV, size, xs, ys, fid)
    ctx.check_cancelled()

    # rank views per face
    cams = camera_arrays(sparse.load())
    names = sorted(cams)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(V.astype(np.float32)), o3d.core.Tensor(F.astype(np.uint32)))
    tri = V[F]
    centers = tri.mean(1)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-18)
    weights = np.zeros((len(F), len(names)), np.float32)
    depth_images = {}
    for k, name in enumerate(names):
        cam = cams[name]
        zimg, s = _depth_image(scene, cam, 0.5)
        depth_images[name] = (zimg, s)
        uv, z = _project(cam, centers)
        to_cam = cam["center"] - centers
        dist = np.linalg.norm(to_cam, axis=1)
        cos = np.sum(normals * to_cam, 1) / np.maximum(dist, 1e-18)
        ui = np.clip(np.round(uv[:, 0] * s).astype(np.int64), 0, zimg.shape[1] - 1)
        vi = np.clip(np.round(uv[:, 1] * s).astype(np.int64), 0, zimg.shape[0] - 1)
        inside = (uv[:, 0] >= 1) & (uv[:, 1] >= 1) & (uv[:, 0] < cam["width"] - 2) & (uv[:, 1] < cam["height"] - 2)
        visible = inside & (z > 0) & (z <= zimg[vi, ui] * (1 + VISIBILITY_TOLERANCE) + 1e-12)
        # projected area per unit surface ∝ cos · (f / z)²
        w = np.where(visible & (cos > MIN_COS), cos * (cam["K"][0, 0] / np.maximum(z, 1e-12)) ** 2, 0)
        weights[:, k] = w
        ctx.report(0.35 + 0.2 * (k + 1) / len(names), f"visibility in {k + 1}/{len(names)} photos")
        ctx.check_cancelled()
    weights /= max(float(weights.max()), 1e-18)
    top = np.argsort(-weights, axis=1)[:, :VIEWS_PER_FACE]
    top_w = np.take_along_axis(weights, top, 1)

    acc = np.zeros((len(X), 3), np.float32)
    wsum = np.zeros(len(X), np.float32)
    for k, name in enumerate(names):
        sel_face = np.any(top == k, axis=1) & (weights[:, k] > 0)
        texels = np.nonzero(sel_face[fid])[0]
        if len(texels) == 0:
            continue
        cam = cams[name]
        img = cv2.imread(str(ingest.images_dir / name), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if img is None:
            continue
        sx, sy = img.shape[1] / cam["width"], img.shape[0] / cam["height"]
        uv, z = _project(cam, X[texels])
        zimg, s = depth_images[name]
        ui = np.clip(np.round(uv[:, 0] * s).astype(np.int64), 0, zimg.shape[1] - 1)
        vi = np.clip(np.round(uv[:, 1] * s).astype(np.int64), 0, zimg.shape[0] - 1)
        ok = (z > 0) & (z <= zimg[vi, ui] * (1 + VISIBILITY_TOLERANCE) + 1e-12)
        texels, uv = texels[ok], uv[ok]
        uv = uv * [sx, sy]
        color = _sample(img, uv).astype(np.float32)
        # weight of this view for each texel's face (strongly favours the best view)
        wf = weights[fid[texels], k] ** 2
        acc[texels] += color * wf[:, None]
        wsum[texels] += wf
        ctx.report(0.55 + 0.35 * (k + 1) / len(names), f"colour from {k + 1}/{len(names)} photos")
        ctx.check_cancelled()
    del top_w
    known_texels = wsum > 0
    atlas = np.zeros((size, size, 3), np.uint8)
    known = np.zeros((size, size), bool)
    atlas[ys[known_texels], xs[known_texels]] = np.clip(
        acc[known_texels] / wsum[known_texels, None], 0, 255).astype(np.uint8)
    known[ys[known_texels], xs[known_texels]] = True
    ctx.report(0.92, "filling seams")
    atlas = pull_push_fill(atlas, known)
    tex_path = ctx.work_dir / "texture.png"
    cv2.imwrite(str(tex_path), atlas)
    mesh_path = ctx.work_dir / "textured.npz"
    np.savez(mesh_path, vertices=V2, faces=F2, uvs=UV)
    result = TextureResult(mesh_path, tex_path, size, float(known_texels.mean()) if len(known_texels) else 0.0)
    save_done(ctx.work_dir, key, result.to_dict())
    ctx.report(1.0, "texture baked")
    return result
