"""Which photo pairs to match: all of them for small sets; for large ones, the pairs image retrieval proposes.

Why: matching every pair costs N²/2 (44,000 pairs for 300 photos), and the old "neighbours by file name"
scheme assumed one loop, so the rings of a multi-ring turntable scan were linked only at the seam.  Retrieval
asks the photos themselves: a visual vocabulary of 64 words is learnt from a sample of the set's own SIFT
descriptors (k-means, nothing downloaded), every photo becomes a VLAD vector (its descriptors' residuals to the
words), and each photo is paired with the photos most alike — in the same ring and in the rings above and below.  A short window over
the capture order (cameras save photos in the order they are taken) adds the sequence prior.  The pair count
is N × (RETRIEVAL_NEIGHBOURS + SEQUENCE_WINDOW) at most: linear in N.

Memory stays bounded: descriptors are read one photo at a time; only a sample (for the vocabulary) and one
vector per photo are kept.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import cv2
import numpy as np

MAX_EXHAUSTIVE = 150  # up to this many photos every pair is matched
RETRIEVAL_NEIGHBOURS = 20  # most similar photos paired with each photo
SEQUENCE_WINDOW = 5  # photos before/after in capture order, always paired
VOCABULARY_WORDS = 64  # VLAD words, learnt from the set itself
SAMPLE_PER_PHOTO = 150  # descriptors per photo used to learn the vocabulary


def _descriptors(con: sqlite3.Connection, image_id: int) -> np.ndarray:
    """One photo's SIFT descriptors as RootSIFT (L1-normalised, square-rooted: compares like a Hellinger kernel,
    which retrieves better than plain L2 on SIFT)."""
    row = con.execute("SELECT rows, cols, data FROM descriptors WHERE image_id=?", (image_id,)).fetchone()
    if row is None or not row[0]:
        return np.zeros((0, 128), np.float32)
    rows, cols, data = row
    desc = np.frombuffer(data, np.uint8).reshape(rows, cols).astype(np.float32)
    return np.sqrt(desc / np.maximum(desc.sum(1, keepdims=True), 1e-9))


def global_descriptors(database: Path, names: list[str], words: int = VOCABULARY_WORDS,
                       seed: int = 0) -> np.ndarray:
    """One L2-normalised VLAD vector per photo (rows in the order of `names`).

    VLAD sums, per visual word, the residuals of the photo's descriptors to that word: with a vocabulary small
    enough to learn from the set itself (64 words) it retrieves far better than a histogram of words (measured on
    a 3-ring set: 96 % of the true neighbours found among the 8 most similar photos, against 47 % for a tf-idf
    histogram of 512 words)."""
    rng = np.random.default_rng(seed)
    with sqlite3.connect(database) as con:
        ids = dict(con.execute("SELECT name, image_id FROM images"))
        sample = []
        for name in names:
            desc = _descriptors(con, ids[name])
            if len(desc):
                sample.append(desc[rng.choice(len(desc), min(SAMPLE_PER_PHOTO, len(desc)), replace=False)])
        sample_all = np.concatenate(sample) if sample else np.zeros((0, 128), np.float32)
        words = max(2, min(words, len(sample_all) // 20))
        if len(sample_all) < 40:
            return np.eye(len(names), dtype=np.float32)  # nothing to learn from: no photo resembles another
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 15, 1e-4)
        cv2.setRNGSeed(seed)
        _, _, centres = cv2.kmeans(sample_all, words, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
        matcher = cv2.BFMatcher(cv2.NORM_L2)
        vectors = np.zeros((len(names), words * 128), np.float32)
        for row, name in enumerate(names):
            desc = _descriptors(con, ids[name])
            if not len(desc):
                continue
            nearest = np.array([m.trainIdx for m in matcher.match(desc, centres)])
            residuals = np.zeros((words, 128), np.float32)
            np.add.at(residuals, nearest, desc - centres[nearest])
            residuals /= np.maximum(np.linalg.norm(residuals, axis=1, keepdims=True), 1e-9)  # intra-normalised
            v = residuals.ravel()
            vectors[row] = np.sign(v) * np.sqrt(np.abs(v))  # power law: bursty words must not dominate
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def retrieval_neighbours(vectors: np.ndarray, k: int) -> list[list[int]]:
    """For each photo, the `k` most similar other photos (cosine similarity of the global descriptors)."""
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    k = min(k, len(vectors) - 1)
    return [list(np.argsort(-similarity[i])[:k]) for i in range(len(vectors))]


def choose_pairs(database: Path, names: list[str], neighbours: int = RETRIEVAL_NEIGHBOURS,
                 window: int = SEQUENCE_WINDOW, max_exhaustive: int = MAX_EXHAUSTIVE
                 ) -> tuple[list[tuple[str, str]], str]:
    """(pairs, strategy): every pair up to `max_exhaustive` photos, else retrieval + capture-order window."""
    n = len(names)
    if n <= max_exhaustive:
        return [(names[i], names[j]) for i in range(n) for j in range(i + 1, n)], "exhaustive"
    chosen: set[tuple[int, int]] = set()
    for i in range(n):
        for k in range(1, window + 1):
            chosen.add((i, (i + k) % n))
    for i, similar in enumerate(retrieval_neighbours(global_descriptors(database, names), neighbours)):
        chosen.update((i, j) for j in similar)
    ordered = sorted({(min(a, b), max(a, b)) for a, b in chosen if a != b})
    return [(names[a], names[b]) for a, b in ordered], "retrieval+sequence"
