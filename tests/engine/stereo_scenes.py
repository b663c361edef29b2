"""Small analytic scenes with exact depth and normals, rendered by ray casting, for the stereo tests.

A surface (plane or sphere) carries a solid texture (a sum of random 3-D sinusoids, i.e. paint fixed to the
surface), seen by pinhole cameras in OpenCV conventions (x_cam = R·X + t, integer pixel = pixel centre).
2×2 supersampling keeps the pictures free of aliasing, as a real lens would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Camera:
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    width: int
    height: int

    @property
    def center(self) -> np.ndarray:
        return -self.R.T @ self.t


def look_at(center, target, K, width, height, up=(0.0, -1.0, 0.0)) -> Camera:
    center, target = np.asarray(center, float), np.asarray(target, float)
    z = target - center
    z /= np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, float))
    if np.linalg.norm(x) < 1e-9:
        x = np.cross(z, np.array([1.0, 0.0, 0.0]))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return Camera(K, R, -R @ center, width, height)


def intrinsics(width: int, height: int, focal: float) -> np.ndarray:
    return np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1]], float)


class SolidTexture:
    """Grey value in [0.1, 0.9] at any 3-D point: random sinusoids of wavelengths between `short` and `long`."""

    def __init__(self, short: float, long: float, count: int = 40, seed: int = 3):
        rng = np.random.default_rng(seed)
        dirs = rng.normal(size=(count, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        wavelengths = np.exp(rng.uniform(np.log(short), np.log(long), count))
        self.freq = dirs * (2 * np.pi / wavelengths)[:, None]
        self.phase = rng.uniform(0, 2 * np.pi, count)
        self.amp = rng.uniform(0.5, 1.0, count)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        v = np.sin(X @ self.freq.T + self.phase) @ self.amp / self.amp.sum()
        return 0.5 + 0.8 * v / 2


class Plane:
    def __init__(self, point, normal):
        self.point = np.asarray(point, float)
        self.normal = np.asarray(normal, float) / np.linalg.norm(normal)

    def intersect(self, origin, rays):
        den = rays @ self.normal
        with np.errstate(divide="ignore", invalid="ignore"):
            s = ((self.point - origin) @ self.normal) / den
        s[(np.abs(den) < 1e-12) | (s <= 0)] = np.inf
        return s, np.broadcast_to(self.normal, rays.shape)


class Sphere:
    def __init__(self, center, radius):
        self.center = np.asarray(center, float)
        self.radius = float(radius)

    def intersect(self, origin, rays):
        oc = origin - self.center
        b = rays @ oc
        c = oc @ oc - self.radius ** 2
        a = np.sum(rays * rays, axis=-1)
        disc = b * b - a * c
        with np.errstate(invalid="ignore"):
            s = (-b - np.sqrt(disc)) / a
        s[(disc < 0) | (s <= 0)] = np.inf
        X = origin + rays * np.where(np.isfinite(s), s, 0.0)[..., None]
        n = (X - self.center) / self.radius
        return s, n


def render(cam: Camera, surface, texture: SolidTexture, background: float = 0.0, ssaa: int = 2):
    """(grey image float32 in [0, 1], depth (z, 0 = background), normal in camera frame) of the surface."""
    h, w = cam.height, cam.width
    Kinv = np.linalg.inv(cam.K)
    img = np.zeros((h, w))
    for sy in range(ssaa):
        for sx in range(ssaa):
            oy, ox = (sy + 0.5) / ssaa - 0.5, (sx + 0.5) / ssaa - 0.5
            v, u = np.mgrid[0:h, 0:w].astype(float)
            pix = np.stack([u + ox, v + oy, np.ones_like(u)], -1)
            rays = (pix @ Kinv.T) @ cam.R  # world directions (camera z = 1)
            s, _ = surface.intersect(cam.center, rays)
            X = cam.center + rays * np.where(np.isfinite(s), s, 0)[..., None]
            val = np.where(np.isfinite(s), texture(X), background)
            img += val
    img /= ssaa * ssaa
    v, u = np.mgrid[0:h, 0:w].astype(float)
    rays = (np.stack([u, v, np.ones_like(u)], -1) @ Kinv.T) @ cam.R
    s, n = surface.intersect(cam.center, rays)
    depth = np.where(np.isfinite(s), s, 0.0)  # rays have camera z = 1, so the ray parameter is the depth
    normal_cam = np.nan_to_num(np.asarray(n)) @ cam.R.T
    flip = np.sum(normal_cam * (np.stack([u, v, np.ones_like(u)], -1) @ Kinv.T), -1) > 0
    normal_cam[flip] *= -1
    normal_cam[depth <= 0] = 0
    return img.astype(np.float32), depth.astype(np.float32), normal_cam.astype(np.float32)


def relative(ref: Camera, src: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Source-from-reference pose: x_src = R·x_ref + t."""
    R = src.R @ ref.R.T
    return R, src.t - R @ ref.t


def ring_cameras(count: int, distance: float, width: int, height: int, focal: float,
                 elevations_deg: tuple[float, ...], name: str = "v{:02d}.png") -> dict[str, dict]:
    """Cameras around the origin looking at it, in the form of sparse.camera_arrays (PINHOLE): camera i at azimuth
    2π·i/count and the elevation elevations_deg[i % len], its image up towards +z."""
    cams = {}
    K = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])  # COLMAP's: pixel corner at 0
    for i in range(count):
        elevation = np.radians(elevations_deg[i % len(elevations_deg)])
        azimuth = 2 * np.pi * i / count
        centre = distance * np.array([np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation),
                                      np.sin(elevation)])
        forward = -centre / np.linalg.norm(centre)
        right = np.cross(forward, [0, 0, 1.0])
        right /= np.linalg.norm(right)
        R = np.stack([right, np.cross(forward, right), forward])
        cams[name.format(i)] = {"K": K, "R": R, "t": -R @ centre, "center": centre, "width": width,
                                "height": height, "params": np.array([focal, width / 2, height / 2]),
                                "model": "PINHOLE"}
    return cams
