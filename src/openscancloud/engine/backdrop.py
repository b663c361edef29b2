"""Tight silhouettes on a static rig: in each photo the object is what differs from the backdrop behind it.

Why: the automatic masks (masks.py) are generous on purpose — they keep what moves and, on a plain object, the
smooth still pixels near it — so they bound nothing, and a plain object's surface has nothing else to hold it:
the white dome of a plaster head gives the depth maps no point at all.  But on a static rig the backdrop is the
same picture in every photo while the object turns in front of it, so at most pixels some photos show the
backdrop.  The colour that recurs at a pixel in the most photos is the backdrop's: it is identical there up to
sensor noise, while the turning object shows a different part of itself, differently lit, from photo to photo.  A
photo's object is then where it differs from that colour, together with what its outline encloses (a plain
object's inside may match a backdrop estimate that is really the object itself, where the object covers the
pixel in most photos).  Where no two photos agree — the middle of the frame that the object covers in every
photo, the turning plate — the backdrop is unknown and the pixel counts as object: by that rule a silhouette may
be too big, never too small.

The silhouettes are used like a user's masks by the mesh stage (silhouettes.py: the surface stays inside them, and
their hull fills what the depth maps found nothing on); each is checked against the object's sparse points first
(masks.verify), and one that leaves points out is not used.

Memory: at most MAX_REFERENCES photos at ANALYSIS_LONG_SIDE, one backdrop image at the working size, and one photo
at a time for its silhouette.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

ANALYSIS_LONG_SIDE = 640  # the recurring colour is looked for at this size ...
MAX_REFERENCES = 40  # ... among at most this many photos
AGREE_MEAN_LEVELS = 4.0  # two photos show the same backdrop at a pixel when their largest channel difference,
# averaged over its 3 × 3 neighbourhood, stays below this. Measured: between photos of static-rig sets that
# average is 1.2–2.7 levels on a fifth of the frame (the backdrop: noise and JPEG); a plain blob's white turning
# in front of the same pixels matched itself at 6 and ate up to 55 % of the object in 5 of 24 photos, at 4 none.
# Noisier photos agree less, so their silhouettes get looser (unknown backdrop counts as object), never tighter
DIFFER_LEVELS = 12  # a photo shows something else than the backdrop where a channel differs by this many levels
MIN_AGREEING_SHARE = 0.25  # the backdrop is known at a pixel when this share of the other photos (and at least
# two) agree with one colour: a real backdrop recurs wherever the object leaves it free, while a plain object's
# shading matches itself by chance in a pair of photos here and there
OPEN_SHARE = 0.0025  # speckle removed with an opening of this share of the long side (3 px at 1280)
CLOSE_SHARE = 0.01  # gaps in the outline (object and backdrop alike for a few pixels) closed by this share
MIN_REGION_SHARE = 0.002  # regions smaller than this share of the photo are noise, not the object


def recurring_colour(references: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel (at the references' size): which reference shows the colour that most other references agree
    with (AGREE_MEAN_LEVELS over 3 × 3 neighbourhoods: a plain object's colour can match by chance at one pixel,
    not as closely around it), and whether enough others agree (MIN_AGREEING_SHARE: the backdrop is known there)."""
    height, width = references[0].shape[:2]
    counts = np.zeros((len(references), height, width), np.int16)
    for i in range(len(references)):
        for j in range(i + 1, len(references)):  # agreement is symmetric: each pair once
            difference = cv2.absdiff(references[i], references[j]).max(-1).astype(np.float32)
            agree = cv2.blur(difference, (3, 3)) < AGREE_MEAN_LEVELS
            counts[i] += agree
            counts[j] += agree
    best = counts.argmax(0)
    best_count = np.take_along_axis(counts, best[None], 0)[0]
    return best, best_count >= max(2, MIN_AGREEING_SHARE * (len(references) - 1))


def backdrop_image(best: np.ndarray, known: np.ndarray, read: Callable[[int], np.ndarray],
                   size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The backdrop at the working size (w, h): each pixel taken from the full photo of the reference chosen
    there (one photo read at a time), and where it is known."""
    width, height = size
    best_full = cv2.resize(best.astype(np.float32), (width, height), interpolation=cv2.INTER_NEAREST).astype(np.int32)
    known_full = cv2.resize(known.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
    backdrop = np.zeros((height, width, 3), np.uint8)
    for index in np.unique(best_full[known_full]):
        chosen = known_full & (best_full == index)
        backdrop[chosen] = read(int(index))[chosen]
    return backdrop, known_full


def silhouette(image: np.ndarray, backdrop: np.ndarray, known: np.ndarray) -> np.ndarray:
    """255 where the photo differs from the backdrop or the backdrop is unknown, cleaned, outline closed and
    filled."""
    side = max(image.shape[:2])
    differs = np.abs(image.astype(np.int16) - backdrop.astype(np.int16)).max(-1) >= DIFFER_LEVELS
    mask = np.where(differs | ~known, 255, 0).astype(np.uint8)
    k_open = max(3, int(OPEN_SHARE * side) | 1)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((k_open, k_open), np.uint8))
    k_close = max(5, int(CLOSE_SHARE * side) | 1)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k_close, k_close)))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    contours = [c for c in contours if cv2.contourArea(c) >= MIN_REGION_SHARE * mask.size]
    filled = np.zeros_like(mask)
    cv2.drawContours(filled, contours, -1, 255, thickness=cv2.FILLED)
    return filled


def write_silhouettes(paths: Sequence[Path], out_dir: Path, report: Callable[[float], None] = lambda f: None,
                      check_cancelled: Callable[[], None] = lambda: None) -> dict[str, float]:
    """Each photo's silhouette as `out_dir/<name>.png` (photos of one size, from a static rig); the share of
    each photo it keeps."""
    out_dir.mkdir(parents=True, exist_ok=True)
    first = read_photo(paths[0])
    height, width = first.shape[:2]
    scale = min(1.0, ANALYSIS_LONG_SIDE / max(width, height))
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    step = max(1, -(-len(paths) // MAX_REFERENCES))
    reference_paths = list(paths[::step])
    references = [cv2.resize(read_photo(p), small_size, interpolation=cv2.INTER_AREA) for p in reference_paths]
    check_cancelled()
    best, known = recurring_colour(references)
    del references
    report(0.5)
    backdrop, known_full = backdrop_image(best, known, lambda i: read_photo(reference_paths[i]), (width, height))
    coverage = {}
    for n, path in enumerate(paths):
        check_cancelled()
        mask = silhouette(read_photo(path), backdrop, known_full)
        cv2.imwrite(str(out_dir / f"{path.name}.png"), mask)
        coverage[path.name] = float((mask > 0).mean())
        report(0.5 + 0.5 * (n + 1) / len(paths))
    return coverage


def read_photo(path: Path) -> np.ndarray:
    """A photo as 8-bit BGR, as stored (the working images are already upright)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise OSError(f"cannot read {path}")
    return image
