"""One source photo per triangle: a Markov random field solved by α-expansion graph cuts.

Why: blending several photos per texel blurs (the cameras never align to the pixel) and ghosts (turntable light
moves with the camera, so shading differs per view).  Taking each triangle from a single photo keeps the photo's
sharpness; the price is seams where neighbouring triangles come from different photos.  The labelling therefore
trades, as in Waechter et al. 2014 (mvs-texturing, also used by OpenMVS and ODM):

* a data term per (triangle, photo): 1 − quality / best quality of that triangle, so the sharpest, closest,
  most frontal usable view costs 0 and unusable views are forbidden;
* a Potts smoothness term: `smoothness` for every pair of edge-adjacent triangles with different photos, so
  patches stay large and seams few.

The energy is minimised by α-expansion (Boykov, Veksler & Zabih 2001): for each photo α in turn, one min-cut
(PyMaxflow, Boykov–Kolmogorov) decides which triangles switch to α.  Potts is a metric, so every move is exact
and the energy never increases; two or three sweeps converge.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

FORBIDDEN = 1e6  # data cost of an unusable view (never chosen while any usable one exists)
# a seam along one edge costs as much as a face's worst usable view (data costs are in [0, 1]); 0.4 before:
# held-out PSNR +0.25 to +0.4 dB and about half the seam score on three sets (docs/benchmarks.md)
DEFAULT_SMOOTHNESS = 1.0
MAX_SWEEPS = 4
COST_DECIMALS = 4


def face_adjacency(F: np.ndarray) -> np.ndarray:
    """(E, 2) pairs of faces sharing an edge (non-manifold edges link consecutive faces around them)."""
    e = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])
    e.sort(1)
    face = np.tile(np.arange(len(F)), 3)
    order = np.lexsort((e[:, 1], e[:, 0]))
    e, face = e[order], face[order]
    same = (e[1:, 0] == e[:-1, 0]) & (e[1:, 1] == e[:-1, 1])
    i = np.nonzero(same)[0]
    pairs = np.stack([face[i], face[i + 1]], 1)
    return pairs[pairs[:, 0] != pairs[:, 1]]


def data_costs(quality: np.ndarray) -> np.ndarray:
    """(F, L) costs in [0, 1] for usable views (quality > 0), FORBIDDEN otherwise."""
    best = quality.max(1, keepdims=True)
    # rounded: near-ties in the graph cuts must not hang on the last bits of a score (cv2.magnitude's once
    # differed between runs), or the photos chosen for whole patches change from run to run
    cost = np.round(1.0 - quality / np.maximum(best, 1e-30), COST_DECIMALS)
    return np.where(quality > 0, cost, FORBIDDEN).astype(np.float64)


def energy(labels: np.ndarray, cost: np.ndarray, pairs: np.ndarray, smoothness: float) -> float:
    rows = np.nonzero(labels >= 0)[0]
    data = float(cost[rows, labels[rows]].sum())
    return data + smoothness * float(np.count_nonzero(labels[pairs[:, 0]] != labels[pairs[:, 1]]))


def expansion_move(labels: np.ndarray, alpha: int, cost: np.ndarray, pairs: np.ndarray,
                   smoothness: float) -> np.ndarray:
    """The optimal α-expansion of `labels` (a new array): which faces switch to photo α, by one min-cut."""
    import maxflow

    movable = (labels != alpha) & (labels >= 0) & (cost[:, alpha] < FORBIDDEN)
    nodes = np.nonzero(movable)[0]
    if len(nodes) == 0:
        return labels
    index = np.full(len(labels), -1, np.int64)
    index[nodes] = np.arange(len(nodes))
    u0 = cost[nodes, labels[nodes]].copy()  # cost if the face keeps its photo (x = 0)
    u1 = cost[nodes, alpha].copy()  # cost if it switches to α (x = 1)
    p, q = pairs[:, 0], pairs[:, 1]
    lp, lq = labels[p], labels[q]
    mp, mq = movable[p], movable[q]
    w = smoothness
    # one movable end: the other face keeps its label; the term becomes unary
    for a, la, b_lab, sel in ((p, lp, lq, mp & ~mq), (q, lq, lp, mq & ~mp)):
        ia = index[a[sel]]
        np.add.at(u0, ia, w * (la[sel] != b_lab[sel]))
        np.add.at(u1, ia, w * (b_lab[sel] != alpha))
    # both movable: E(0,0)=A, E(0,1)=E(1,0)=w, E(1,1)=0 → A + (w−A)x_p − w x_q + (2w−A)(1−x_p)x_q
    both = mp & mq
    ip, iq = index[p[both]], index[q[both]]
    A = w * (lp[both] != lq[both])
    np.add.at(u1, ip, w - A)
    np.add.at(u1, iq, -w)
    graph = maxflow.Graph[float](len(nodes), int(both.sum()))
    graph.add_nodes(len(nodes))
    if len(ip):
        graph.add_edges(ip, iq, 2 * w - A, np.zeros(len(ip)))
    m = np.minimum(u0, u1)
    # a node in the sink segment (x = 1) pays its source capacity
    graph.add_grid_tedges(np.arange(len(nodes)), u1 - m, u0 - m)
    graph.maxflow()
    switch = graph.get_grid_segments(np.arange(len(nodes)))
    out = labels.copy()
    out[nodes[switch]] = alpha
    return out


def select_views(quality: np.ndarray, F: np.ndarray, smoothness: float = DEFAULT_SMOOTHNESS,
                 progress: Callable[[float, str], None] | None = None) -> np.ndarray:
    """The photo index of every face (−1 = seen by none), minimising data + Potts smoothness."""
    cost = data_costs(quality)
    labels = np.where(quality.max(1) > 0, quality.argmax(1), -1).astype(np.int64)
    pairs = face_adjacency(F)
    best = energy(labels, cost, pairs, smoothness)
    used = np.nonzero((quality > 0).any(0))[0]
    for sweep in range(MAX_SWEEPS):
        start = best
        for k, alpha in enumerate(used):
            candidate = expansion_move(labels, int(alpha), cost, pairs, smoothness)
            e = energy(candidate, cost, pairs, smoothness)
            if e < best - 1e-9:
                labels, best = candidate, e
            if progress:
                progress((sweep + (k + 1) / len(used)) / MAX_SWEEPS, f"choosing photos: sweep {sweep + 1}")
        if start - best < 1e-3 * max(start, 1.0):
            break
    return labels
