"""Local seam blending in the atlas: what global levelling leaves at a seam is faded out over a few texels.

Why: global levelling (texture_levelling.py) works on vertices, so a seam keeps a small residual colour step
between its vertices and wherever the photos' colours vary faster than the mesh.  Waechter et al. follow the
global step with local Poisson editing in a strip along each seam; this is the same idea in its cheapest form:
at every texel where two photos meet inside a chart, each side is pulled to the mean of both sides, and that
correction fades out with a Gaussian profile (σ = `sigma` texels) into its own patch only.  Detail is untouched
(the correction is smooth), texels far from seams are untouched, and the other side's colours are never mixed in.
"""

from __future__ import annotations

import cv2
import numpy as np

DEFAULT_SIGMA = 3.0


def boundary_correction(colour: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(correction (H, W, 3), boundary mask): at texels touching another photo's texel (4-neighbourhood),
    half the mean difference to those neighbours; zero elsewhere."""
    h, w = labels.shape
    acc = np.zeros((h, w, 3), np.float32)
    count = np.zeros((h, w), np.uint8)
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
    boundary = count > 0
    acc[boundary] *= 0.5 / count[boundary, None]  # in place: a 8192² atlas must not need two more copies
    return acc, boundary


def blend_seams(colour: np.ndarray, labels: np.ndarray, sigma: float = DEFAULT_SIGMA) -> np.ndarray:
    """`colour` (H, W, 3 float32, atlas) with the seams between photo patches faded out; `labels` (H, W) is the
    photo of each texel (−1 = none)."""
    corr, boundary = boundary_correction(colour, labels)
    if not boundary.any():
        return colour
    out = colour.copy()
    peak = 1.0 / (np.sqrt(2 * np.pi) * sigma)  # a straight boundary line blurred, at the line
    radius = int(np.ceil(3 * sigma))
    for label in np.unique(labels[boundary]):
        ys, xs = np.nonzero(boundary & (labels == label))
        y0, y1 = max(0, ys.min() - radius), min(labels.shape[0], ys.max() + radius + 1)
        x0, x1 = max(0, xs.min() - radius), min(labels.shape[1], xs.max() + radius + 1)
        region = labels[y0:y1, x0:x1] == label
        b = (boundary[y0:y1, x0:x1] & region).astype(np.float32)
        weight = cv2.GaussianBlur(b, (0, 0), sigma)
        spread = cv2.GaussianBlur(corr[y0:y1, x0:x1] * b[..., None], (0, 0), sigma)
        field = spread / np.maximum(weight, 1e-6)[..., None]
        falloff = np.clip(weight / peak, 0, 1)
        patch = out[y0:y1, x0:x1]
        patch[region] += field[region] * falloff[region, None]
    return out
