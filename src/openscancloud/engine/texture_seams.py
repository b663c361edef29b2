"""Local seam blending in the atlas: what global levelling leaves at a seam is faded out over a few texels.

Why: global levelling (texture_levelling.py) works on vertices, so a seam keeps a small residual colour step
between its vertices and wherever the photos' colours vary faster than the mesh.  Waechter et al. follow the
global step with local Poisson editing in a strip along each seam; this is the same idea in its cheapest form:
at every texel where two photos meet, each side is pulled to the mean of both sides, and that correction fades
out with a Gaussian profile (σ = `sigma` texels) into its own patch only.  Detail is untouched (the correction is
smooth), texels far from seams are untouched, and the other side's colours are never mixed in.

Two photos meet either inside a chart (neighbouring texels of the atlas) or on a chart border, where the two sides
of one mesh edge lie in different places of the atlas; there the texels are paired through the edge they share
(`chart_border_points`).  Without that pairing the seams on chart borders — most of them, as xatlas cuts charts
where the surface bends, which is also where the chosen photo changes — stayed as levelling left them.
"""

from __future__ import annotations

import cv2
import numpy as np

DEFAULT_SIGMA = 3.0


def chart_border_points(F: np.ndarray, F2: np.ndarray, UV: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Texels facing each other across the atlas' chart borders: ((n, 2), (n, 2)) integer (x, y) atlas texels, one
    pair per texel of length along every border edge, each half a texel inside its own triangle.

    A chart border is a mesh edge (shared by two faces of `F`, the unsplit mesh) whose two faces have different uvs
    there (`F2`/`UV`: the same faces after unwrapping, UV in [0, 1] with v up)."""
    e = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])
    corner = np.repeat([[0, 1], [1, 2], [2, 0]], len(F), axis=0)  # each edge's two corners in its face
    face = np.tile(np.arange(len(F)), 3)
    swap = e[:, 0] > e[:, 1]  # both sides list the edge's vertices in the same order
    e = np.where(swap[:, None], e[:, ::-1], e)
    corner = np.where(swap[:, None], corner[:, ::-1], corner)
    order = np.lexsort((e[:, 1], e[:, 0]))
    e, corner, face = e[order], corner[order], face[order]
    i = np.nonzero((e[1:, 0] == e[:-1, 0]) & (e[1:, 1] == e[:-1, 1]))[0]
    f1, f2 = face[i], face[i + 1]
    px = np.stack([UV[:, 0] * size, (1.0 - UV[:, 1]) * size], 1)  # texel coordinates (texel x covers [x, x + 1))
    a1, b1 = px[F2[f1, corner[i, 0]]], px[F2[f1, corner[i, 1]]]
    a2, b2 = px[F2[f2, corner[i + 1, 0]]], px[F2[f2, corner[i + 1, 1]]]
    border = (np.abs(a1 - a2).max(1) > 1e-4) | (np.abs(b1 - b2).max(1) > 1e-4)
    f1, f2, a1, b1, a2, b2 = f1[border], f2[border], a1[border], b1[border], a2[border], b2[border]
    steps = np.maximum(1, np.ceil(np.maximum(np.linalg.norm(b1 - a1, axis=1), np.linalg.norm(b2 - a2, axis=1))))
    steps = steps.astype(np.int64)
    edge = np.repeat(np.arange(len(f1)), steps)
    t = ((np.arange(len(edge)) - np.repeat(np.cumsum(steps) - steps, steps)) + 0.5) / steps[edge]

    def inside(a, b, f):
        p = a[edge] + t[:, None] * (b[edge] - a[edge])
        towards = px[F2[f[edge]]].mean(axis=1) - p
        p += 0.5 * towards / np.maximum(np.linalg.norm(towards, axis=1, keepdims=True), 1e-9)
        return np.clip(np.floor(p), 0, size - 1).astype(np.int64)

    return inside(a1, b1, f1), inside(a2, b2, f2)


def boundary_correction(colour: np.ndarray, labels: np.ndarray, across: tuple[np.ndarray, np.ndarray] | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(correction (H, W, 3), boundary mask): at texels touching another photo's texel — 4-neighbours in the atlas,
    and with `across` (chart_border_points) the texel on the other side of a chart border — half the mean
    difference to those neighbours; zero elsewhere."""
    h, w = labels.shape
    acc = np.zeros((h, w, 3), np.float32)
    count = np.zeros((h, w), np.uint16)
    for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        ys = slice(max(0, dy), h + min(0, dy))
        xs = slice(max(0, dx), w + min(0, dx))
        yo = slice(max(0, -dy), h + min(0, -dy))
        xo = slice(max(0, -dx), w + min(0, -dx))
        own, other = labels[yo, xo], labels[ys, xs]
        meet = (own >= 0) & (other >= 0) & (own != other)
        diff = colour[ys, xs] - colour[yo, xo]
        acc[yo, xo] += np.where(meet[..., None], diff, 0)
        count[yo, xo] += meet
    if across is not None and len(across[0]):
        (x1, y1), (x2, y2) = across[0].T, across[1].T
        l1, l2 = labels[y1, x1], labels[y2, x2]
        meet = (l1 >= 0) & (l2 >= 0) & (l1 != l2)  # the same photo on both sides: no seam to close
        x1, y1, x2, y2 = x1[meet], y1[meet], x2[meet], y2[meet]
        diff = colour[y2, x2] - colour[y1, x1]
        for x, y, d in ((x1, y1, diff), (x2, y2, -diff)):
            np.add.at(acc, (y, x), d)
            np.add.at(count, (y, x), 1)
    boundary = count > 0
    acc[boundary] *= 0.5 / count[boundary, None]  # in place: a 8192² atlas must not need two more copies
    return acc, boundary


def blend_seams(colour: np.ndarray, labels: np.ndarray, sigma: float = DEFAULT_SIGMA,
                across: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """`colour` (H, W, 3 float32, atlas) with the seams between photo patches faded out; `labels` (H, W) is the
    photo of each texel (−1 = none); `across`: chart_border_points, so that seams on chart borders fade too.

    The correction spreads only within the connected patch of texels of one photo that it starts from, so that it
    never leaks across the padding into a neighbouring chart."""
    corr, boundary = boundary_correction(colour, labels, across)
    if not boundary.any():
        return colour
    out = colour.copy()
    peak = 1.0 / (np.sqrt(2 * np.pi) * sigma)  # a straight boundary line blurred, at the line
    radius = int(np.ceil(3 * sigma))
    for label in np.unique(labels[boundary]):
        ys, xs = np.nonzero(boundary & (labels == label))
        y0, y1 = max(0, ys.min() - radius), min(labels.shape[0], ys.max() + radius + 1)
        x0, x1 = max(0, xs.min() - radius), min(labels.shape[1], xs.max() + radius + 1)
        _, patch_id, stats, _ = cv2.connectedComponentsWithStats(
            (labels[y0:y1, x0:x1] == label).astype(np.uint8), connectivity=4)
        seeded = np.unique(patch_id[boundary[y0:y1, x0:x1] & (patch_id > 0)])
        for k in seeded:
            px, py, pw, ph = stats[k, :4]
            sy = slice(y0 + py, y0 + py + ph)
            sx = slice(x0 + px, x0 + px + pw)
            region = patch_id[py:py + ph, px:px + pw] == k
            b = (boundary[sy, sx] & region).astype(np.float32)
            # blurred with the patch's own seeds only (a border of zeros around it: no leak from neighbours)
            b = np.pad(b, radius)
            weight = cv2.GaussianBlur(b, (0, 0), sigma)[radius:-radius, radius:-radius]
            seeds = np.pad(corr[sy, sx], ((radius, radius), (radius, radius), (0, 0))) * b[..., None]
            spread = cv2.GaussianBlur(seeds, (0, 0), sigma)[radius:-radius, radius:-radius]
            field = spread / np.maximum(weight, 1e-6)[..., None]
            falloff = np.clip(weight / peak, 0, 1)
            patch = out[sy, sx]
            patch[region] += field[region] * falloff[region, None]
    return out
