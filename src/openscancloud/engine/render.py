"""A small, display-free renderer for `preview.png`: ray casting (Open3D's Embree scene) + texture lookup.

Why not Open3D's OffscreenRenderer: it needs EGL/OpenGL, which servers and containers often lack.  Ray casting
on the CPU needs nothing and takes a second for a 1024×768 image.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World→camera rotation R and translation t (OpenCV axes: x right, y down, z forward)."""
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:
        x = np.cross(z, [1.0, 0, 0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return R, -R @ eye


def render_textured(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, texture_bgr: np.ndarray,
                    view_dir: np.ndarray, up: np.ndarray, size: tuple[int, int] = (1024, 768),
                    fov_deg: float = 35.0) -> np.ndarray:
    """BGR image of the textured mesh seen along `view_dir` (from the camera towards the object), `up` up."""
    import open3d as o3d

    w, h = size
    V = vertices.astype(np.float32)
    lo, hi = V.min(0), V.max(0)
    center = (lo + hi) / 2
    radius = float(np.linalg.norm(hi - lo)) / 2 or 1.0
    f = 0.5 * h / math.tan(math.radians(fov_deg) / 2)
    dist = radius / math.sin(math.radians(fov_deg) / 2) * 1.05
    view_dir = view_dir / np.linalg.norm(view_dir)
    eye = center - view_dir * dist
    R, t = look_at(eye, center, up)
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
    E = np.eye(4)
    E[:3, :3], E[:3, 3] = R, t
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(V), o3d.core.Tensor(faces.astype(np.uint32)))
    # frame the model: project its vertices, then zoom so their extent fills ~85 % of the image
    cam_pts = V.astype(np.float64) @ R.T + t
    in_front = cam_pts[:, 2] > 1e-9
    if in_front.sum() > 3:
        uv = cam_pts[in_front] @ K.T
        uv = uv[:, :2] / uv[:, 2:3]
        (u0, v0), (u1, v1) = np.percentile(uv, 0.5, axis=0), np.percentile(uv, 99.5, axis=0)
        zoom = 0.85 * min(w / max(u1 - u0, 1.0), h / max(v1 - v0, 1.0))
        zoom = float(np.clip(zoom, 0.5, 8.0))
        K = np.array([[f * zoom, 0, w / 2 - zoom * ((u0 + u1) / 2 - w / 2)],
                      [0, f * zoom, h / 2 - zoom * ((v0 + v1) / 2 - h / 2)], [0, 0, 1]])
    rays = o3d.t.geometry.RaycastingScene.create_rays_pinhole(o3d.core.Tensor(K), o3d.core.Tensor(E), w, h)
    ans = scene.cast_rays(rays)
    hit = np.isfinite(ans["t_hit"].numpy())
    prim = ans["primitive_ids"].numpy().astype(np.int64)
    bu = ans["primitive_uvs"].numpy()
    normals = ans["primitive_normals"].numpy()
    # background: soft vertical gradient
    grad = np.linspace(235, 190, h, dtype=np.float32)[:, None, None]
    img = np.repeat(np.repeat(grad, w, 1), 3, 2)
    if hit.any():
        pid = prim[hit]
        b = bu[hit]
        tri_uv = uvs[faces[pid]]  # (n,3,2)
        uv = tri_uv[:, 0] * (1 - b[:, 0:1] - b[:, 1:2]) + tri_uv[:, 1] * b[:, 0:1] + tri_uv[:, 2] * b[:, 1:2]
        th, tw = texture_bgr.shape[:2]
        mx = (uv[:, 0] * tw - 0.5).astype(np.float32)
        my = ((1 - uv[:, 1]) * th - 0.5).astype(np.float32)
        n = len(mx)
        cols = 2048
        rows = (n + cols - 1) // cols
        pad = rows * cols - n
        mx2 = np.concatenate([mx, np.zeros(pad, np.float32)]).reshape(rows, cols)
        my2 = np.concatenate([my, np.zeros(pad, np.float32)]).reshape(rows, cols)
        color = cv2.remap(texture_bgr, mx2, my2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        color = color.reshape(-1, 3)[:n].astype(np.float32)
        ray_dirs = rays.numpy()[..., 3:][hit]
        ray_dirs /= np.linalg.norm(ray_dirs, axis=1, keepdims=True)
        nn = normals[hit]
        shade = np.abs(np.sum(nn * ray_dirs, 1))  # head-light; abs() so open surfaces show both sides
        color *= (0.55 + 0.45 * shade)[:, None]
        img[hit] = color
    return np.clip(img, 0, 255).astype(np.uint8)
