"""PatchMatch multi-view stereo on the CPU: a depth *and a normal* per pixel, compiled with numba.

Why this algorithm (the family of COLMAP's patch_match_stereo, Gipuma/ACMH/ACMM and OpenMVS):
- every pixel carries a plane hypothesis (depth along its ray + a normal), so the support window is warped into
  each source photo by the plane's homography: slanted, grazing and downward-facing surfaces match as well as
  fronto-parallel ones (a fronto-parallel plane sweep cannot match them);
- good hypotheses spread to neighbours by *checkerboard propagation*: the pixels of one colour are updated in
  parallel from the pixels of the other colour, picking in each of eight regions around the pixel (four near
  "V" areas, four far strips — ACMH's adaptive sampling) the neighbour whose own cost is lowest;
- *random refinement* tries perturbed and random depths/normals around the current one, with a shrinking range;
- the photometric cost is 1 − NCC over a bilateral-weighted window (pixels of another colour than the centre count
  less, so windows straddling a depth edge still match), per source photo; per pixel the mean of the `k_best`
  lowest source costs is used, which ignores sources where the pixel is occluded or outside (view selection);
- coarse-to-fine: a pass at reduced resolution (where weakly textured areas have enough texture inside the window)
  initialises the full-resolution pass by plane transfer, which then needs only a few iterations.

Conventions: images are float32 grey in [0, 1]; intrinsics use OpenCV pixel centres (integer (u, v) is a pixel's
centre); poses are source-from-reference (x_src = R·x_ref + t); normals are in the reference camera frame and face
the camera (n · ray < 0). Depth is the z coordinate in the reference camera.

Why numba and not a C extension: the engine is pure Python + wheels; numba compiles the same readable Python to
native code on first use (`cache=True` keeps the machine code between runs), runs the parallel loops on every
core with `prange`, and needs no compiler on the user's machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from numba import config as numba_config
from numba import njit, prange

# OpenMP first: thread-safe when several jobs run in one process, and no warning about an old TBB library
numba_config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]

INVALID_COST = 2.0  # 1 − NCC lies in [0, 2]; this marks "no match possible" (outside, untextured, behind)


@dataclass(frozen=True)
class PatchMatchParams:
    """The knobs of one PatchMatch run (presets choose them; the defaults suit ~0.1–0.5 MP per view)."""

    window_radius: int = 3  # samples on each side of the centre (window = 2r+1 samples per axis)
    window_step: int = 2  # pixels between window samples (a sparse window covers more texture per sample)
    sigma_color: float = 0.12  # bilateral weight: grey difference (0–1) at which a sample counts e^-½ as much
    k_best: int = 2  # per pixel, the mean of this many lowest source costs is the matching cost
    iterations: int = 4  # propagation + refinement sweeps at full resolution
    coarse_iterations: int = 5  # sweeps at the coarse level (0 = no coarse level)
    coarse_factor: int = 2  # coarse level = full resolution / this
    max_cost: float = 0.65  # depths whose cost stays above this are dropped (NCC < 0.35)
    fine_first_trial: int = 2  # after a coarse pass, refinement skips the random hypotheses (0 and 1) — saves time
    min_texture: float = 1e-5  # weighted grey variance below this: no reliable match (left empty)
    geometric_weight: float = 0.3  # geometric pass: cost per pixel of forward-backward reprojection error (COLMAP's)
    geometric_max_error: float = 3.0  # … counted up to this many pixels (beyond: occluded or wrong, same penalty)
    seed: int = 1


@dataclass
class SourceView:
    """A neighbour photo used to check the reference's hypotheses."""

    gray: np.ndarray  # float32 (h, w) in [0, 1]
    K: np.ndarray  # 3×3, OpenCV pixel centres
    R: np.ndarray  # source-from-reference rotation
    t: np.ndarray  # source-from-reference translation


@dataclass
class DepthNormalMap:
    depth: np.ndarray  # float32 (H, W), 0 = unknown
    normal: np.ndarray  # float32 (H, W, 3), reference camera frame, facing the camera
    cost: np.ndarray  # float32 (H, W), 1 − NCC (INVALID_COST where unknown)
    stats: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------------------
# compiled kernels
# ----------------------------------------------------------------------------------------------------------------


@njit(cache=True, fastmath=True)
def _sample(img, h, w, x, y):
    """Bilinear grey value at (x, y) (pixel centres at integers), −1 outside the image."""
    if x < 0.0 or y < 0.0 or x > w - 1.0 or y > h - 1.0:
        return -1.0
    x0 = int(x)
    y0 = int(y)
    x1 = min(x0 + 1, w - 1)
    y1 = min(y0 + 1, h - 1)
    fx = x - x0
    fy = y - y0
    top = img[y0, x0] * (1.0 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1.0 - fx) + img[y1, x1] * fx
    return top * (1.0 - fy) + bottom * fy


@njit(cache=True, fastmath=True)
def _ref_window(ref, x, y, radius, step, sigma_color, vals, wts):
    """Grey values and bilateral weights of the reference window; returns (Σw, weighted mean, weighted var)."""
    h, w = ref.shape
    centre = ref[y, x]
    sig_c = 1.0 / (2.0 * sigma_color * sigma_color)
    half = radius * step
    sig_s = 1.0 / (2.0 * half * half + 1e-9)
    k = 0
    sw = 0.0
    sx = 0.0
    sxx = 0.0
    for j in range(-radius, radius + 1):
        yy = min(max(y + j * step, 0), h - 1)
        for i in range(-radius, radius + 1):
            xx = min(max(x + i * step, 0), w - 1)
            v = ref[yy, xx]
            dc = v - centre
            ds = float((i * step) ** 2 + (j * step) ** 2)
            wt = math.exp(-dc * dc * sig_c - ds * sig_s)
            vals[k] = v
            wts[k] = wt
            sw += wt
            sx += wt * v
            sxx += wt * v * v
            k += 1
    mean = sx / sw
    var = sxx / sw - mean * mean
    return sw, mean, var


@njit(cache=True, fastmath=True)
def _reprojection_error(x, y, u, v, s, geo_depth, geo_Kinv, geo_Rt, geo_t, K, max_error):
    """Forward-backward error (px) of reference pixel (x, y) seen at (u, v) in source s: the source's own depth
    there, lifted to 3-D and projected back into the reference, lands this far from (x, y) (`max_error` when the
    source has no depth there)."""
    iu = int(math.floor(u + 0.5))
    iv = int(math.floor(v + 0.5))
    if iu < 0 or iv < 0 or iv >= geo_depth.shape[1] or iu >= geo_depth.shape[2]:
        return max_error
    ds = geo_depth[s, iv, iu]
    if ds <= 0.0:
        return max_error
    xs = ds * (geo_Kinv[s, 0, 0] * u + geo_Kinv[s, 0, 1] * v + geo_Kinv[s, 0, 2]) - geo_t[s, 0]
    ys = ds * (geo_Kinv[s, 1, 0] * u + geo_Kinv[s, 1, 1] * v + geo_Kinv[s, 1, 2]) - geo_t[s, 1]
    zs = ds * (geo_Kinv[s, 2, 0] * u + geo_Kinv[s, 2, 1] * v + geo_Kinv[s, 2, 2]) - geo_t[s, 2]
    X = geo_Rt[s, 0, 0] * xs + geo_Rt[s, 0, 1] * ys + geo_Rt[s, 0, 2] * zs
    Y = geo_Rt[s, 1, 0] * xs + geo_Rt[s, 1, 1] * ys + geo_Rt[s, 1, 2] * zs
    Z = geo_Rt[s, 2, 0] * xs + geo_Rt[s, 2, 1] * ys + geo_Rt[s, 2, 2] * zs
    if Z <= 1e-12:
        return max_error
    px = (K[0, 0] * X + K[0, 1] * Y + K[0, 2] * Z) / Z
    py = (K[1, 0] * X + K[1, 1] * Y + K[1, 2] * Z) / Z
    return min(max_error, math.sqrt((px - x) * (px - x) + (py - y) * (py - y)))


@njit(cache=True, fastmath=True)
def _plane_cost(x, y, d, nx, ny, nz, Kinv, A, b, srcs, src_hw, radius, step, vals, wts, sw, mx, vx, k_best,
                costs, geo):
    """Multi-view cost of the plane (depth d at pixel (x, y), normal n) — mean of the k_best source costs.

    `geo` = (weight, max error, source depth maps, their K⁻¹, Rᵀ, t, reference K): with a weight > 0 (the geometric
    pass) each source's cost also counts the forward-backward reprojection error of the centre pixel through that
    source's depth map, so hypotheses the neighbouring depth maps agree with win."""
    geo_weight, geo_max, geo_depth, geo_Kinv, geo_Rt, geo_t, K = geo
    rx = Kinv[0, 0] * x + Kinv[0, 1] * y + Kinv[0, 2]
    ry = Kinv[1, 0] * x + Kinv[1, 1] * y + Kinv[1, 2]
    rz = Kinv[2, 0] * x + Kinv[2, 1] * y + Kinv[2, 2]
    c = d * (nx * rx + ny * ry + nz * rz)  # n · X for the point X = d·ray on the plane
    if d <= 0.0 or c > -1e-12:
        return INVALID_COST
    # m = Kinvᵀ n / c: the plane in pixel terms, so that H = A + b mᵀ for each source
    m0 = (Kinv[0, 0] * nx + Kinv[1, 0] * ny + Kinv[2, 0] * nz) / c
    m1 = (Kinv[0, 1] * nx + Kinv[1, 1] * ny + Kinv[2, 1] * nz) / c
    m2 = (Kinv[0, 2] * nx + Kinv[1, 2] * ny + Kinv[2, 2] * nz) / c
    n_src = srcs.shape[0]
    for s in range(n_src):
        h00 = A[s, 0, 0] + b[s, 0] * m0
        h01 = A[s, 0, 1] + b[s, 0] * m1
        h02 = A[s, 0, 2] + b[s, 0] * m2
        h10 = A[s, 1, 0] + b[s, 1] * m0
        h11 = A[s, 1, 1] + b[s, 1] * m1
        h12 = A[s, 1, 2] + b[s, 1] * m2
        h20 = A[s, 2, 0] + b[s, 2] * m0
        h21 = A[s, 2, 1] + b[s, 2] * m1
        h22 = A[s, 2, 2] + b[s, 2] * m2
        hs = src_hw[s, 0]
        ws = src_hw[s, 1]
        img = srcs[s]
        sy = 0.0
        syy = 0.0
        sxy = 0.0
        ok = True
        k = 0
        for j in range(-radius, radius + 1):
            py = y + j * step
            for i in range(-radius, radius + 1):
                px = x + i * step
                qz = h20 * px + h21 * py + h22
                if qz <= 1e-12:
                    ok = False
                    break
                u = (h00 * px + h01 * py + h02) / qz
                v = (h10 * px + h11 * py + h12) / qz
                g = _sample(img, hs, ws, u, v)
                if g < 0.0:
                    ok = False
                    break
                wt = wts[k]
                sy += wt * g
                syy += wt * g * g
                sxy += wt * g * vals[k]
                k += 1
            if not ok:
                break
        if not ok:
            costs[s] = INVALID_COST
            continue
        my = sy / sw
        vy = syy / sw - my * my
        if vy < 1e-7:
            costs[s] = INVALID_COST
            continue
        ncc = (sxy / sw - mx * my) / math.sqrt(vx * vy)
        costs[s] = 1.0 - min(1.0, max(-1.0, ncc))
        if geo_weight > 0.0:
            qz = h20 * x + h21 * y + h22
            costs[s] += geo_weight * _reprojection_error(x, y, (h00 * x + h01 * y + h02) / qz,
                                                         (h10 * x + h11 * y + h12) / qz, s, geo_depth, geo_Kinv,
                                                         geo_Rt, geo_t, K, geo_max)
    # mean of the k_best lowest (insertion sort of a handful of values)
    for a in range(1, n_src):
        v = costs[a]
        j = a - 1
        while j >= 0 and costs[j] > v:
            costs[j + 1] = costs[j]
            j -= 1
        costs[j + 1] = v
    kk = min(k_best, n_src)
    total = 0.0
    for a in range(kk):
        total += costs[a]
    return total / kk


@njit(cache=True, fastmath=True)
def _random_normal(rx, ry, rz):
    """A random unit normal facing the camera along ray r (not grazing beyond ~84°)."""
    rn = math.sqrt(rx * rx + ry * ry + rz * rz)
    while True:
        a = np.random.normal()
        b_ = np.random.normal()
        c = np.random.normal()
        n = math.sqrt(a * a + b_ * b_ + c * c)
        if n < 1e-9:
            continue
        a /= n
        b_ /= n
        c /= n
        dot = (a * rx + b_ * ry + c * rz) / rn
        if dot > 0.0:
            a, b_, c, dot = -a, -b_, -c, -dot
        if dot < -0.1:
            return a, b_, c


@njit(cache=True, fastmath=True)
def _perturb_normal(nx, ny, nz, rx, ry, rz, scale):
    rn = math.sqrt(rx * rx + ry * ry + rz * rz)
    for _ in range(8):
        a = nx + scale * np.random.normal()
        b_ = ny + scale * np.random.normal()
        c = nz + scale * np.random.normal()
        n = math.sqrt(a * a + b_ * b_ + c * c)
        if n < 1e-9:
            continue
        a /= n
        b_ /= n
        c /= n
        if (a * rx + b_ * ry + c * rz) / rn < -0.1:
            return a, b_, c
    return nx, ny, nz


@njit(cache=True, fastmath=True)
def _transfer_depth(Kinv, x, y, xo, yo, do, nx, ny, nz):
    """Depth at pixel (x, y) of the plane through pixel (xo, yo) at depth do with normal n (plane propagation)."""
    ox = do * (Kinv[0, 0] * xo + Kinv[0, 1] * yo + Kinv[0, 2])
    oy = do * (Kinv[1, 0] * xo + Kinv[1, 1] * yo + Kinv[1, 2])
    oz = do * (Kinv[2, 0] * xo + Kinv[2, 1] * yo + Kinv[2, 2])
    c = nx * ox + ny * oy + nz * oz
    rx = Kinv[0, 0] * x + Kinv[0, 1] * y + Kinv[0, 2]
    ry = Kinv[1, 0] * x + Kinv[1, 1] * y + Kinv[1, 2]
    rz = Kinv[2, 0] * x + Kinv[2, 1] * y + Kinv[2, 2]
    den = nx * rx + ny * ry + nz * rz
    if abs(den) < 1e-12:
        return -1.0
    return c / den


@njit(parallel=True, cache=True, fastmath=True)
def _initial_costs(ref, active, depth, normal, cost, Kinv, A, b, srcs, src_hw, radius, step, sigma_color,
                   k_best, min_texture, geo):
    H, W = ref.shape
    n = (2 * radius + 1) ** 2
    for y in prange(H):
        vals = np.empty(n)
        wts = np.empty(n)
        costs = np.empty(srcs.shape[0])
        for x in range(W):
            if not active[y, x]:
                cost[y, x] = INVALID_COST
                continue
            sw, mx, vx = _ref_window(ref, x, y, radius, step, sigma_color, vals, wts)
            if vx < min_texture:
                cost[y, x] = INVALID_COST
                continue
            cost[y, x] = _plane_cost(x, y, depth[y, x], normal[y, x, 0], normal[y, x, 1], normal[y, x, 2], Kinv,
                                     A, b, srcs, src_hw, radius, step, vals, wts, sw, mx, vx, k_best, costs, geo)


@njit(parallel=True, cache=True)
def _random_init(active, depth, normal, Kinv, dmin, dmax, seed):
    H, W = active.shape
    for y in prange(H):
        np.random.seed(seed + y)
        for x in range(W):
            if not active[y, x]:
                depth[y, x] = 0.0
                continue
            u = np.random.random()
            depth[y, x] = 1.0 / (1.0 / dmax + u * (1.0 / dmin - 1.0 / dmax))  # uniform in inverse depth
            rx = Kinv[0, 0] * x + Kinv[0, 1] * y + Kinv[0, 2]
            ry = Kinv[1, 0] * x + Kinv[1, 1] * y + Kinv[1, 2]
            rz = Kinv[2, 0] * x + Kinv[2, 1] * y + Kinv[2, 2]
            a, b_, c = _random_normal(rx, ry, rz)
            normal[y, x, 0] = a
            normal[y, x, 1] = b_
            normal[y, x, 2] = c


@njit(parallel=True, cache=True, fastmath=True)
def _sweep(colour, ref, active, depth, normal, cost, Kinv, A, b, srcs, src_hw, radius, step, sigma_color, k_best,
           min_texture, offsets, dmin, dmax, depth_scale, normal_scale, seed, first_trial, geo):
    """One red or black half-sweep: propagation from eight adaptive regions, then random refinement."""
    H, W = ref.shape
    n = (2 * radius + 1) ** 2
    n_groups = offsets.shape[0]
    for y in prange(H):
        np.random.seed(seed + 7919 * y + colour)
        vals = np.empty(n)
        wts = np.empty(n)
        costs = np.empty(srcs.shape[0])
        for x in range((y + colour) % 2, W, 2):
            if not active[y, x]:
                continue
            sw, mx, vx = _ref_window(ref, x, y, radius, step, sigma_color, vals, wts)
            if vx < min_texture:
                continue
            bd = depth[y, x]
            bnx = normal[y, x, 0]
            bny = normal[y, x, 1]
            bnz = normal[y, x, 2]
            bc = cost[y, x]
            # propagation: per region, the neighbour with the lowest cost lends its plane
            for g in range(n_groups):
                best_k = -1
                best_nc = 1e9
                for k in range(offsets.shape[1]):
                    ox = x + offsets[g, k, 0]
                    oy = y + offsets[g, k, 1]
                    if ox < 0 or oy < 0 or ox >= W or oy >= H or not active[oy, ox]:
                        continue
                    c_ = cost[oy, ox]
                    if c_ < best_nc:
                        best_nc = c_
                        best_k = k
                if best_k < 0 or best_nc >= INVALID_COST:
                    continue
                ox = x + offsets[g, best_k, 0]
                oy = y + offsets[g, best_k, 1]
                nx = normal[oy, ox, 0]
                ny = normal[oy, ox, 1]
                nz = normal[oy, ox, 2]
                d = _transfer_depth(Kinv, x, y, ox, oy, depth[oy, ox], nx, ny, nz)
                if d < 0.5 * dmin or d > 2.0 * dmax:
                    continue
                if abs(d - bd) < 1e-5 * bd and nx * bnx + ny * bny + nz * bnz > 0.99999:
                    continue  # the same plane as the current one: nothing to learn
                c_ = _plane_cost(x, y, d, nx, ny, nz, Kinv, A, b, srcs, src_hw, radius, step, vals, wts, sw, mx,
                                 vx, k_best, costs, geo)
                if c_ < bc:
                    bc, bd, bnx, bny, bnz = c_, d, nx, ny, nz
            # refinement: perturbed and random hypotheses around the best one
            rx = Kinv[0, 0] * x + Kinv[0, 1] * y + Kinv[0, 2]
            ry = Kinv[1, 0] * x + Kinv[1, 1] * y + Kinv[1, 2]
            rz = Kinv[2, 0] * x + Kinv[2, 1] * y + Kinv[2, 2]
            for trial in range(first_trial, 5):
                d = bd
                nx, ny, nz = bnx, bny, bnz
                if trial == 0:  # random depth and normal
                    u = np.random.random()
                    d = 1.0 / (1.0 / dmax + u * (1.0 / dmin - 1.0 / dmax))
                    nx, ny, nz = _random_normal(rx, ry, rz)
                elif trial == 1:  # random normal at the current depth
                    nx, ny, nz = _random_normal(rx, ry, rz)
                elif trial == 2:  # perturbed depth
                    d = bd * (1.0 + depth_scale * (2.0 * np.random.random() - 1.0))
                elif trial == 3:  # perturbed normal
                    nx, ny, nz = _perturb_normal(bnx, bny, bnz, rx, ry, rz, normal_scale)
                else:  # both perturbed
                    d = bd * (1.0 + depth_scale * (2.0 * np.random.random() - 1.0))
                    nx, ny, nz = _perturb_normal(bnx, bny, bnz, rx, ry, rz, normal_scale)
                c_ = _plane_cost(x, y, d, nx, ny, nz, Kinv, A, b, srcs, src_hw, radius, step, vals, wts, sw, mx,
                                 vx, k_best, costs, geo)
                if c_ < bc:
                    bc, bd, bnx, bny, bnz = c_, d, nx, ny, nz
            depth[y, x] = bd
            normal[y, x, 0] = bnx
            normal[y, x, 1] = bny
            normal[y, x, 2] = bnz
            cost[y, x] = bc


@njit(parallel=True, cache=True)
def _upsample_planes(active, coarse_depth, coarse_normal, coarse_Kinv, Kinv, factor, depth, normal):
    """Initialise the fine level: each fine pixel takes the plane of its coarse pixel (plane transfer)."""
    H, W = active.shape
    ch, cw = coarse_depth.shape
    for y in prange(H):
        for x in range(W):
            cx = min(max(int((x + 0.5) / factor), 0), cw - 1)
            cy = min(max(int((y + 0.5) / factor), 0), ch - 1)
            d0 = coarse_depth[cy, cx]
            nx = coarse_normal[cy, cx, 0]
            ny = coarse_normal[cy, cx, 1]
            nz = coarse_normal[cy, cx, 2]
            depth[y, x] = 0.0
            normal[y, x, 0] = nx
            normal[y, x, 1] = ny
            normal[y, x, 2] = nz
            if not active[y, x] or d0 <= 0.0:
                continue
            # the coarse pixel's 3-D point, then the plane through it along the fine pixel's ray
            px = d0 * (coarse_Kinv[0, 0] * cx + coarse_Kinv[0, 1] * cy + coarse_Kinv[0, 2])
            py = d0 * (coarse_Kinv[1, 0] * cx + coarse_Kinv[1, 1] * cy + coarse_Kinv[1, 2])
            pz = d0 * (coarse_Kinv[2, 0] * cx + coarse_Kinv[2, 1] * cy + coarse_Kinv[2, 2])
            c = nx * px + ny * py + nz * pz
            rx = Kinv[0, 0] * x + Kinv[0, 1] * y + Kinv[0, 2]
            ry = Kinv[1, 0] * x + Kinv[1, 1] * y + Kinv[1, 2]
            rz = Kinv[2, 0] * x + Kinv[2, 1] * y + Kinv[2, 2]
            den = nx * rx + ny * ry + nz * rz
            d = c / den if abs(den) > 1e-12 else d0
            depth[y, x] = d if 0.5 * d0 < d < 2.0 * d0 else d0


# ----------------------------------------------------------------------------------------------------------------
# adaptive propagation regions (ACMH): four near "V" areas and four far strips, as offsets of the other colour
# ----------------------------------------------------------------------------------------------------------------


def _propagation_offsets() -> np.ndarray:
    """(8, 8, 2) integer offsets: every offset has odd dx+dy, i.e. points at a pixel of the other colour."""
    near = [(1, 0), (2, -1), (2, 1), (3, -2), (3, 0), (3, 2), (4, -1), (4, 1)]
    far = [(5, 0), (7, 0), (9, 0), (11, 0), (13, 0), (15, 0), (17, 0), (19, 0)]
    groups = []
    for pattern in (near, far):
        for rot in range(4):
            g = []
            for dx, dy in pattern:
                for _ in range(rot):
                    dx, dy = -dy, dx
                g.append((dx, dy))
            groups.append(g)
    offsets = np.array(groups, dtype=np.int64)
    assert np.all((offsets.sum(-1) % 2) == 1)
    return offsets


OFFSETS = _propagation_offsets()


# ----------------------------------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------------------------------


def _homography_parts(K_ref: np.ndarray, sources: list[SourceView]) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                             np.ndarray]:
    """Per source A = K_s R K_ref⁻¹ and b = K_s t (H = A + b mᵀ for a plane m), plus the stacked images."""
    Kinv = np.linalg.inv(K_ref)
    A = np.stack([s.K @ s.R @ Kinv for s in sources]).astype(np.float64)
    b = np.stack([s.K @ s.t for s in sources]).astype(np.float64)
    hmax = max(s.gray.shape[0] for s in sources)
    wmax = max(s.gray.shape[1] for s in sources)
    stack = np.zeros((len(sources), hmax, wmax), np.float32)
    hw = np.zeros((len(sources), 2), np.int64)
    for i, s in enumerate(sources):
        h, w = s.gray.shape
        stack[i, :h, :w] = s.gray
        hw[i] = (h, w)
    return A, b, stack, hw


def _no_geometry(K_ref: np.ndarray) -> tuple:
    """The `geo` argument of the kernels for a photometric-only pass (weight 0: the arrays are never read)."""
    return (0.0, 0.0, np.zeros((1, 1, 1), np.float32), np.zeros((1, 3, 3)), np.zeros((1, 3, 3)), np.zeros((1, 3)),
            np.ascontiguousarray(K_ref, np.float64))


def _geometry_parts(K_ref: np.ndarray, sources: list[SourceView], source_depths: list[np.ndarray],
                    params: PatchMatchParams) -> tuple:
    """The `geo` argument of the kernels for the geometric pass: the sources' depth maps (stacked, 0 = unknown)
    with each source's K⁻¹, Rᵀ and t (source-from-reference) to lift their depths back into the reference."""
    hmax = max(d.shape[0] for d in source_depths)
    wmax = max(d.shape[1] for d in source_depths)
    stack = np.zeros((len(sources), hmax, wmax), np.float32)
    for i, d in enumerate(source_depths):
        stack[i, :d.shape[0], :d.shape[1]] = d
    Kinv = np.stack([np.linalg.inv(s.K) for s in sources]).astype(np.float64)
    Rt = np.stack([s.R.T for s in sources]).astype(np.float64)
    t = np.stack([np.asarray(s.t, np.float64).reshape(3) for s in sources])
    return (float(params.geometric_weight), float(params.geometric_max_error), stack, Kinv, Rt, t,
            np.ascontiguousarray(K_ref, np.float64))


def scale_intrinsics(K: np.ndarray, factor: float) -> np.ndarray:
    """Intrinsics of the image resized by `factor` (OpenCV pixel centres: x' = (x + ½)·f − ½)."""
    Ks = K.astype(np.float64).copy()
    Ks[0, 0] *= factor
    Ks[1, 1] *= factor
    Ks[0, 1] *= factor
    Ks[0, 2] = (K[0, 2] + 0.5) * factor - 0.5
    Ks[1, 2] = (K[1, 2] + 0.5) * factor - 0.5
    return Ks


def _run_level(ref: np.ndarray, K: np.ndarray, active: np.ndarray, sources: list[SourceView], depth_range,
               params: PatchMatchParams, iterations: int, depth: np.ndarray, normal: np.ndarray,
               fresh: bool, geo: tuple | None = None) -> np.ndarray:
    Kinv = np.linalg.inv(K)
    A, b, stack, hw = _homography_parts(K, sources)
    geo = _no_geometry(K) if geo is None else geo
    dmin, dmax = depth_range
    if fresh:
        _random_init(active, depth, normal, Kinv, dmin, dmax, params.seed)
    cost = np.empty(ref.shape, np.float32)
    k_best = max(1, min(params.k_best, len(sources)))
    _initial_costs(ref, active, depth, normal, cost, Kinv, A, b, stack, hw, params.window_radius,
                   params.window_step, params.sigma_color, k_best, params.min_texture, geo)
    for it in range(iterations):
        # the refinement range shrinks: wide jumps early, fine polishing late
        depth_scale = 0.1 * 0.5 ** it if fresh else 0.02 * 0.5 ** it
        normal_scale = 0.4 * 0.6 ** it if fresh else 0.15 * 0.6 ** it
        for colour in (0, 1):
            _sweep(colour, ref, active, depth, normal, cost, Kinv, A, b, stack, hw, params.window_radius,
                   params.window_step, params.sigma_color, k_best, params.min_texture, OFFSETS, dmin, dmax,
                   depth_scale, normal_scale, params.seed * 1_000_003 + it * 2 + colour,
                   0 if fresh else params.fine_first_trial, geo)
    return cost


def patch_match(ref: np.ndarray, K: np.ndarray, sources: list[SourceView], depth_range: tuple[float, float],
                active: np.ndarray | None = None, params: PatchMatchParams = PatchMatchParams()) -> DepthNormalMap:
    """Depth and normal map of `ref` (float32 grey in [0, 1]) against the source views.

    `active` limits the work to the object's pixels (others stay 0); `depth_range` bounds random hypotheses
    (propagation may leave it by a factor of two)."""
    if not sources:
        raise ValueError("PatchMatch needs at least one source view")
    H, W = ref.shape
    ref = np.ascontiguousarray(ref, np.float32)
    active = np.ones((H, W), bool) if active is None else np.ascontiguousarray(active, bool)
    depth = np.zeros((H, W), np.float32)
    normal = np.zeros((H, W, 3), np.float32)
    f = params.coarse_factor
    fresh = True
    if params.coarse_iterations > 0 and f > 1 and min(H, W) >= 16 * f:
        cw, ch = max(8, round(W / f)), max(8, round(H / f))
        factor = cw / W
        cref = cv2.resize(ref, (cw, ch), interpolation=cv2.INTER_AREA)
        cK = scale_intrinsics(K, factor)
        cactive = cv2.resize(active.astype(np.uint8), (cw, ch), interpolation=cv2.INTER_AREA) > 0
        csources = []
        for s in sources:
            h, w = s.gray.shape
            sw_, sh_ = max(8, round(w * factor)), max(8, round(h * factor))
            csources.append(SourceView(cv2.resize(s.gray, (sw_, sh_), interpolation=cv2.INTER_AREA),
                                       scale_intrinsics(s.K, sw_ / w), s.R, s.t))
        cdepth = np.zeros((ch, cw), np.float32)
        cnormal = np.zeros((ch, cw, 3), np.float32)
        ccost = _run_level(cref, cK, cactive, csources, depth_range, params, params.coarse_iterations, cdepth,
                           cnormal, True)
        cdepth[ccost >= INVALID_COST] = 0.0
        _upsample_planes(active, cdepth, cnormal, np.linalg.inv(cK), np.linalg.inv(K), 1.0 / factor, depth,
                         normal)
        # pixels the coarse level could not place start from random planes
        missing = active & (depth <= 0)
        if missing.any():
            rd = np.zeros_like(depth)
            rn = np.zeros_like(normal)
            _random_init(missing, rd, rn, np.linalg.inv(K), depth_range[0], depth_range[1], params.seed + 17)
            depth[missing] = rd[missing]
            normal[missing] = rn[missing]
        fresh = False
    cost = _run_level(ref, K, active, sources, depth_range, params, params.iterations, depth, normal, fresh)
    ok = active & (cost < params.max_cost) & (depth > 0)
    depth = np.where(ok, depth, 0).astype(np.float32)
    normal = np.where(ok[..., None], normal, 0).astype(np.float32)
    return DepthNormalMap(depth, normal, cost.astype(np.float32),
                          {"pixels": int(active.sum()), "valid": int(ok.sum())})


def geometric_pass(ref: np.ndarray, K: np.ndarray, sources: list[SourceView], source_depths: list[np.ndarray],
                   prior: DepthNormalMap, depth_range: tuple[float, float], active: np.ndarray | None = None,
                   params: PatchMatchParams = PatchMatchParams(), iterations: int = 1) -> DepthNormalMap:
    """Second PatchMatch pass with geometric consistency (COLMAP's `geom_consistency`, ACMM's geometric pass).

    Why: the photometric cost alone is flat where texture is weak or repeats, so noise and a wrong depth cost
    about the same there; once every view has a depth map, a hypothesis that the neighbours' depth maps agree
    with (a small forward-backward reprojection error) is preferred. Starts from the photometric result
    (`prior`) on the pixels it placed; a new plane is kept only when it still passes the photometric threshold,
    else the pixel keeps its photometric plane: consistency steers the choice, it never lets a mismatch in nor
    takes a depth away.
    `source_depths[i]` is the depth map of `sources[i]` in that source's own pixels (same K and size)."""
    if not sources or len(source_depths) != len(sources):
        raise ValueError("the geometric pass needs one depth map per source view")
    H, W = ref.shape
    ref = np.ascontiguousarray(ref, np.float32)
    active = np.ones((H, W), bool) if active is None else np.ascontiguousarray(active, bool)
    depth = np.ascontiguousarray(prior.depth, np.float32).copy()
    normal = np.ascontiguousarray(prior.normal, np.float32).copy()
    active = active & (depth > 0)  # pixels the first pass left empty stay empty (filling them gained nothing)
    geo = _geometry_parts(K, sources, source_depths, params)
    _run_level(ref, K, active, sources, depth_range, params, iterations, depth, normal, False, geo)
    # the photometric cost of the planes chosen, for the same threshold as the photometric pass
    Kinv = np.linalg.inv(K)
    A, b, stack, hw = _homography_parts(K, sources)
    photometric = np.empty(ref.shape, np.float32)
    _initial_costs(ref, active, depth, normal, photometric, Kinv, A, b, stack, hw, params.window_radius,
                   params.window_step, params.sigma_color, max(1, min(params.k_best, len(sources))),
                   params.min_texture, _no_geometry(K))
    ok = active & (photometric < params.max_cost) & (depth > 0)
    # a pixel whose new plane fails the threshold keeps the photometric pass's plane: the geometric pass never
    # empties a pixel (fusion's consistency check decides which depths enter the cloud)
    kept = ~ok & (prior.depth > 0)
    depth = np.where(ok, depth, np.where(kept, prior.depth, 0)).astype(np.float32)
    normal = np.where(ok[..., None], normal, np.where(kept[..., None], prior.normal, 0)).astype(np.float32)
    photometric = np.where(kept, prior.cost, photometric).astype(np.float32) if prior.cost is not None \
        else photometric
    return DepthNormalMap(depth, normal, photometric, {"pixels": int(active.sum()), "valid": int((depth > 0).sum()),
                                                      "moved": int(ok.sum()), "kept": int(kept.sum())})
