"""Masks benchmark: how much of the object the automatic masks keep, against the generator's true silhouettes.

    python bench/masks.py SET_DIR [SET_DIR ...]            # sets with images/ and ground_truth/masks/
    PYTHONPATH=/path/to/other/src python bench/masks.py ...   # the same measurement with another engine version

For every set: ingest (preset standard) and the masks stage, then per photo the share of the true object pixels
the mask keeps ("kept", the target is a median of at least 98 %) and the share of the backdrop it keeps
("backdrop": lower is better, what is left is filtered again by the sparse stage).  Prints one JSON line per set.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def measure(root: Path) -> dict:
    from openscancloud.engine import ingest, masks
    from openscancloud.engine.context import StageContext
    from openscancloud.engine.presets import PRESETS

    with tempfile.TemporaryDirectory() as tmp:
        def ctx(stage: str) -> StageContext:
            return StageContext(stage=stage, work_dir=Path(tmp) / stage, preset=PRESETS["standard"], num_threads=2)

        ing = ingest.run(root / "images", ctx("ingest"))
        t0 = time.perf_counter()
        result = masks.run(ing, ctx("masks"))
        seconds = time.perf_counter() - t0
        kept, backdrop = [], []
        for view in ing.views:
            gt_path = root / "ground_truth" / "masks" / (Path(view.source).stem + ".png")
            gt = cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE)
            if gt is None:
                continue
            gt = cv2.resize(gt, (view.width, view.height), interpolation=cv2.INTER_NEAREST) > 127
            path = result.mask_path(view.name)
            mask = (cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 0) if path else np.ones_like(gt)
            kept.append(float((mask & gt).sum() / max(1, gt.sum())))
            backdrop.append(float(mask[~gt].mean()))
    return {"set": root.name, "mode": result.mode, "views": len(kept),
            "kept_median": round(float(np.median(kept)), 4), "kept_min": round(float(np.min(kept)), 4),
            "backdrop_kept_median": round(float(np.median(backdrop)), 4), "seconds": round(seconds, 1)}


def main(argv: list[str]) -> int:
    for arg in argv:
        print(json.dumps(measure(Path(arg))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
