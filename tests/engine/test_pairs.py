"""Pair selection that scales: image retrieval on the set's own features finds the true neighbours of each photo
on a multi-ring turntable set (in its ring and in the rings above and below), with a pair count linear in N."""

from __future__ import annotations

import json

import numpy as np

from openscancloud.engine import ingest, masks, pairs, sparse


def _true_neighbours(root, names: list[str], k: int) -> dict[str, set[str]]:
    """The k photos whose true viewing directions are closest (angle between camera centres seen from the object)."""
    frames = {f["file"].split("/")[-1]: f for f in json.loads((root / "ground_truth" / "cameras.json").read_text())
              ["frames"]}
    dirs = np.array([frames[n]["center"] for n in names], dtype=float)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    cos = dirs @ dirs.T
    np.fill_diagonal(cos, -2)
    return {n: {names[j] for j in np.argsort(-cos[i])[:k]} for i, n in enumerate(names)}


def test_retrieval_finds_the_true_neighbours_on_a_multi_ring_set(synthetic_set, tmp_path, make_ctx):
    root = synthetic_set("small_rings_rich")  # 3 rings × 12 photos, 30° apart in a ring
    ing = ingest.run(root / "images", make_ctx("ingest", tmp_path))
    msk = masks.run(ing, make_ctx("masks", tmp_path), mode="off")
    database = tmp_path / "features.db"
    sparse.extract_features(ing, msk, make_ctx("sparse", tmp_path), database)
    names = [v.name for v in ing.views]

    vectors = pairs.global_descriptors(database, names)
    found = pairs.retrieval_neighbours(vectors, k=8)
    truth = _true_neighbours(root, names, k=4)  # left and right in the ring, above and below
    recall = [len(truth[n] & {names[j] for j in found[i]}) / 4 for i, n in enumerate(names)]
    assert np.mean(recall) >= 0.8, recall
    rings = {f["file"].split("/")[-1]: f["ring"] for f in json.loads(
        (root / "ground_truth" / "cameras.json").read_text())["frames"]}
    for i, n in enumerate(names):  # every photo is paired with a photo of another ring
        assert any(rings[names[j]] != rings[n] for j in found[i]), n

    chosen, strategy = pairs.choose_pairs(database, names, neighbours=8, window=2, max_exhaustive=10)
    assert strategy == "retrieval+sequence"
    assert len(chosen) <= len(names) * (8 + 2) < len(names) * (len(names) - 1) // 2
    exhaustive, strategy = pairs.choose_pairs(database, names)
    assert strategy == "exhaustive" and len(exhaustive) == len(names) * (len(names) - 1) // 2
