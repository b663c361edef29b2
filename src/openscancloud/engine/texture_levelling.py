"""Global colour levelling: per-vertex colour offsets per source photo that make seams vanish.

Why: each patch of triangles comes from one photo, and photos differ in exposure, white balance and — on
turntable rigs, where the light turns with the camera — shading.  Where two patches meet, the same surface point
therefore has two colours.  Following Waechter et al. 2014 ("global seam levelling"), every (vertex, photo) pair
used by a patch gets an additive colour offset g, found by one sparse least-squares problem per channel:

* at every seam vertex, the levelled colours of the photos meeting there must agree:
  (c₁ + g₁) − (c₂ + g₂) = 0;
* inside a patch, offsets of neighbouring vertices must be equal (the correction is smooth, so texture detail
  is kept): g(v, ℓ) − g(w, ℓ) = 0, weight SMOOTH_WEIGHT;
* a small pull towards zero (REGULARISATION) fixes the free constant of each patch.

Texels then add the barycentric interpolation of their triangle's three vertex offsets.  A planted exposure
step between two photos is removed entirely on the seam and spread smoothly over both patches.
"""

from __future__ import annotations

import numpy as np

SMOOTH_WEIGHT = 1.0
SEAM_WEIGHT = 1.0
REGULARISATION = 0.01


def vertex_label_pairs(F: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique (vertex, label) pairs used by labelled faces, and for each face corner its pair index.

    Returns (pair_vertex, pair_label, corner_pair (F, 3), −1 on unlabelled faces)."""
    lab = np.repeat(labels[:, None], 3, 1)
    keys = F.astype(np.int64) * (int(labels.max()) + 2) + (lab + 1)
    valid = lab >= 0
    uniq, inverse = np.unique(keys[valid], return_inverse=True)
    corner = np.full(F.shape, -1, np.int64)
    corner[valid] = inverse
    n_labels = int(labels.max()) + 2
    return uniq // n_labels, uniq % n_labels - 1, corner


def solve_offsets(F: np.ndarray, labels: np.ndarray, pair_vertex: np.ndarray, pair_label: np.ndarray,
                  corner_pair: np.ndarray, pair_colour: np.ndarray, pair_valid: np.ndarray) -> np.ndarray:
    """(P, 3) colour offsets per (vertex, label) pair, minimising seam jumps with smooth corrections.

    `pair_colour` is each pair's colour (the vertex seen in that photo); pairs with `pair_valid` False (the
    vertex could not be sampled in that photo) take part in smoothness only."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import factorized

    P = len(pair_vertex)
    if P == 0:
        return np.zeros((0, 3))
    rows_a, rows_b, weights, targets = [], [], [], []
    # seams: pairs sharing a vertex, each against the next (a chain links all photos meeting at the vertex)
    order = np.lexsort((pair_label, pair_vertex))
    pv = pair_vertex[order]
    same = np.nonzero(pv[1:] == pv[:-1])[0]
    a, b = order[same], order[same + 1]
    ok = pair_valid[a] & pair_valid[b]
    a, b = a[ok], b[ok]
    rows_a.append(a)
    rows_b.append(b)
    weights.append(np.full(len(a), SEAM_WEIGHT))
    targets.append(pair_colour[b] - pair_colour[a])  # g_a − g_b = c_b − c_a
    # smoothness inside patches: the three edges of each labelled face
    lab = labels >= 0
    for i, j in ((0, 1), (1, 2), (2, 0)):
        pa, pb = corner_pair[lab, i], corner_pair[lab, j]
        rows_a.append(pa)
        rows_b.append(pb)
        weights.append(np.full(len(pa), SMOOTH_WEIGHT))
        targets.append(np.zeros((len(pa), 3)))
    a = np.concatenate(rows_a)
    b = np.concatenate(rows_b)
    w = np.sqrt(np.concatenate(weights))
    t = np.concatenate(targets) * w[:, None]
    m = len(a)
    A = sp.csr_matrix((np.concatenate([w, -w]), (np.concatenate([np.arange(m)] * 2), np.concatenate([a, b]))),
                      shape=(m, P))
    AtA = (A.T @ A + REGULARISATION * sp.identity(P)).tocsc()
    Atb = A.T @ t
    solve = factorized(AtA)  # one factorisation, three channels
    return np.stack([solve(np.ascontiguousarray(Atb[:, c])) for c in range(3)], 1)
