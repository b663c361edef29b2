"""What each photo offers each triangle: visibility, a quality score (the data term) and the triangle's colour.

Why: choosing one photo per triangle (see texture_labels.py) needs, for every (triangle, photo) pair, how good a
source that photo is.  Following Waechter et al. ("Let There Be Color!", 2014) the score is the *gradient
magnitude integral* over the triangle's projection: it grows with the projected size (close, frontal views give
more pixels) and with image sharpness (a blurred or motion-smeared photo has weaker gradients), so the sharpest
close-up wins.  A triangle counts as visible in a photo only when its centre and its three corners all pass a
ray-cast depth test, so the chosen photo never shows something in front of it.  Views where the triangle is burnt
out or black get a much lower score, and views whose colour for the triangle disagrees strongly with the
consensus of the other views (a passing shadow, a specular highlight, an unmasked occluder) are rejected.

Everything here reads the *working-size* photos (one at a time): scores and colours only need to rank and
compare; the texels themselves are later sampled from the full-resolution originals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

MIN_COS = 0.1  # views more grazing than ~84° give smeared texels
VISIBILITY_TOLERANCE = 0.01  # relative depth difference still counted as "this surface"
DEPTH_SCALE = 0.5  # depth images for the visibility test at half the working size
SATURATED = 250  # a triangle this bright in a view (any channel) is probably a highlight
DARK = 6  # ... this dark, under-exposed
BADLY_EXPOSED_FACTOR = 0.1
OUTLIER_MIN_VIEWS = 3  # consensus needs at least this many views
OUTLIER_ABS = 40.0  # colour distance (8-bit levels) below which a view is never an outlier
OUTLIER_REL = 3.0  # ... and above this many times the median distance it is one


@dataclass
class FaceViews:
    """Per (face, view) arrays, dense: quality 0 means "not usable"."""

    quality: np.ndarray  # (F, L) float32, gradient magnitude integral (≥ 0)
    colour: np.ndarray  # (F, L, 3) float32 mean BGR colour of the face in the view (working image)
    area_px: np.ndarray  # (F, L) float32 projected area in working-size pixels
    names: list[str]


def project(cam: dict, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (working size, with the camera's radial distortion) and depth of world points."""
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


def depth_image(scene, cam: dict, scale: float = DEPTH_SCALE) -> tuple[np.ndarray, float]:
    """Ray-cast depth (camera z) of the mesh seen by `cam`, at `scale` × the working size; inf = background."""
    import open3d as o3d

    w, h = max(8, round(cam["width"] * scale)), max(8, round(cam["height"] * scale))
    K = cam["K"].copy()
    K[0] *= w / cam["width"]
    K[1] *= h / cam["height"]
    E = np.eye(4)
    E[:3, :3] = cam["R"]
    E[:3, 3] = cam["t"]
    rays = o3d.t.geometry.RaycastingScene.create_rays_pinhole(o3d.core.Tensor(K), o3d.core.Tensor(E), w, h)
    ans = scene.cast_rays(rays)
    t = ans["t_hit"].numpy()
    r = rays.numpy()
    hit = r[..., :3] + r[..., 3:] * np.where(np.isfinite(t), t, 0)[..., None]
    z = (hit.reshape(-1, 3) @ cam["R"].T + cam["t"])[:, 2].reshape(h, w)
    z[~np.isfinite(t)] = np.inf
    return z.astype(np.float32), w / cam["width"]


def passes_depth_test(uv: np.ndarray, z: np.ndarray, zimg: np.ndarray, s: float, cam: dict) -> np.ndarray:
    """Inside the photo, in front of the camera, and not behind the ray-cast surface."""
    ui = np.clip(np.round(uv[:, 0] * s).astype(np.int64), 0, zimg.shape[1] - 1)
    vi = np.clip(np.round(uv[:, 1] * s).astype(np.int64), 0, zimg.shape[0] - 1)
    inside = (uv[:, 0] >= 1) & (uv[:, 1] >= 1) & (uv[:, 0] < cam["width"] - 2) & (uv[:, 1] < cam["height"] - 2)
    return inside & (z > 0) & (z <= zimg[vi, ui] * (1 + VISIBILITY_TOLERANCE) + 1e-12)


def bilinear(img: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear samples of `img` at pixel coordinates (float32, (n, channels))."""
    n = len(uv)
    if n == 0:
        return np.zeros((0, img.shape[2] if img.ndim == 3 else 1), np.float32)
    cols = 4096
    rows = (n + cols - 1) // cols
    pad = rows * cols - n
    mx = np.concatenate([uv[:, 0], np.zeros(pad)]).astype(np.float32).reshape(rows, cols)
    my = np.concatenate([uv[:, 1], np.zeros(pad)]).astype(np.float32).reshape(rows, cols)
    out = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(rows * cols, -1)[:n].astype(np.float32)


def score_view(cam: dict, image: np.ndarray, V: np.ndarray, F: np.ndarray, centers: np.ndarray,
               normals: np.ndarray, zimg: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(quality, colour, projected area) of every face in one view; quality 0 where the face is not usable."""
    uvc, zc = project(cam, centers)
    ok = passes_depth_test(uvc, zc, zimg, s, cam)
    to_cam = cam["center"] - centers
    cos = np.sum(normals * to_cam, 1) / np.maximum(np.linalg.norm(to_cam, axis=1), 1e-18)
    ok &= cos > MIN_COS
    uvv, zv = project(cam, V)
    vis_v = passes_depth_test(uvv, zv, zimg, s, cam)
    ok &= vis_v[F].all(1)
    a, b, c = uvv[F[:, 0]], uvv[F[:, 1]], uvv[F[:, 2]]
    area = 0.5 * np.abs((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1]))
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    # numpy, not cv2.magnitude: OpenCV's differed in the last bits from run to run (its vector and scalar paths
    # split the image by threads), enough for the graph cuts to choose other photos for whole patches
    grad = cv2.blur(np.sqrt(gx * gx + gy * gy), (5, 5))
    smooth = cv2.blur(image, (5, 5))
    quality = np.zeros(len(F), np.float32)
    colour = np.zeros((len(F), 3), np.float32)
    idx = np.nonzero(ok)[0]
    if len(idx):
        g = bilinear(grad, uvc[idx])[:, 0]
        col = bilinear(smooth, uvc[idx])
        # + 1: a perfectly flat region still prefers the larger projection
        q = (g + 1.0) * area[idx]
        exposed = (col.max(1) < SATURATED) & (col.max(1) > DARK)
        quality[idx] = np.where(exposed, q, q * BADLY_EXPOSED_FACTOR)
        colour[idx] = col
    return quality, colour, area.astype(np.float32) * ok


def reject_outliers(quality: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Zero the quality of views whose colour for a face is far from the face's robust colour consensus.

    Consensus = per-channel median over the usable views; a view is an outlier when its distance exceeds both
    OUTLIER_ABS levels and OUTLIER_REL × the median distance.  Faces seen by fewer than OUTLIER_MIN_VIEWS views
    are left alone (two views cannot out-vote each other).  Returns a copy of `quality`."""
    q = quality.copy()
    usable = q > 0
    many = usable.sum(1) >= OUTLIER_MIN_VIEWS
    if not many.any():
        return q
    rows = np.nonzero(many)[0]
    for start in range(0, len(rows), 20000):
        r = rows[start:start + 20000]
        c = np.where(usable[r][..., None], colour[r], np.nan)
        med = np.nanmedian(c, axis=1)
        d = np.linalg.norm(colour[r] - med[:, None, :], axis=2)
        d = np.where(usable[r], d, np.nan)
        typical = np.nanmedian(d, axis=1)
        out = usable[r] & (d > np.maximum(OUTLIER_ABS, OUTLIER_REL * typical)[:, None])
        q[r] = np.where(out, 0.0, q[r])
    return q


def gather(cams: dict[str, dict], names: list[str], read_image: Callable[[str], np.ndarray | None],
           V: np.ndarray, F: np.ndarray, scene, progress: Callable[[float, str], None]
           ) -> tuple[FaceViews, dict[str, tuple[np.ndarray, float]]]:
    """Score every face in every view (photos read one at a time); also return the depth images."""
    tri = V[F]
    centers = tri.mean(1)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-18)
    L = len(names)
    quality = np.zeros((len(F), L), np.float32)
    colour = np.zeros((len(F), L, 3), np.float32)
    area = np.zeros((len(F), L), np.float32)
    depths = {}
    for k, name in enumerate(names):
        cam = cams[name]
        zimg, s = depth_image(scene, cam)
        depths[name] = (zimg, s)
        image = read_image(name)
        if image is not None:
            quality[:, k], colour[:, k], area[:, k] = score_view(cam, image, V, F, centers, normals, zimg, s)
        progress((k + 1) / L, f"scoring {k + 1}/{L} photos")
    quality = reject_outliers(quality, colour)
    return FaceViews(quality, colour, area, names), depths
