"""Quality presets: every knob that trades time for quality, in one frozen dataclass per level.

The numbers were chosen on a 2-core machine (see docs/engine.md): `preview` answers in about two minutes for
50 photos, `standard` is the default for a good model within a few minutes, `high` spends more time on resolution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Preset:
    name: str
    max_image_size: int  # working size: photos are downscaled so their long side is at most this (px)
    sift_max_features: int  # cap on SIFT keypoints per photo (matching cost grows with its square)
    sift_upsample_below: int  # SIFT starts at 2× size (octave −1) only for photos smaller than this (px, long side)
    depth_pixels: int  # pixel budget of a depth map on the object (its crop is resampled to about this many)
    depth_max_size: int  # cap on the long side of a depth map (px)
    depth_iterations: int  # PatchMatch propagation + refinement sweeps at full resolution (after a coarse pass)
    depth_sources: int  # neighbour views compared with each reference view
    depth_best_sources: int  # per pixel, the cost is the mean over this many best sources (occlusion-robust)
    depth_geometric_iterations: int  # sweeps of the geometric-consistency pass over every depth map (0 = none)
    depth_window: int  # NCC window side in samples (odd; samples are 2 px apart)
    min_consistent_views: int  # a depth must be confirmed by this many other views to enter the dense cloud
    poisson_depth: int  # octree depth of the Poisson surface
    target_faces: int  # triangle budget of the final mesh
    texture_size: int  # side of the square texture atlas (px)

    def to_dict(self) -> dict:
        return asdict(self)

    def with_max_image_size(self, px: int | None) -> "Preset":
        return self if not px else replace(self, max_image_size=int(px))

    def with_overrides(self, **values: int | None) -> "Preset":
        """The preset with the user's explicit choices (None = keep the preset's value)."""
        chosen = {k: int(v) for k, v in values.items() if v is not None}
        return replace(self, **chosen) if chosen else self


PRESETS: dict[str, Preset] = {
    "preview": Preset(
        name="preview",
        max_image_size=1024,
        sift_max_features=3000,
        sift_upsample_below=1000,
        depth_pixels=40_000,  # ~200 px across the object: a footprint under 0.5 % of its size (15 000 gave F@0.5 % 0.77)
        depth_max_size=400,
        depth_iterations=2,
        depth_sources=4,
        depth_best_sources=2,
        depth_geometric_iterations=0,
        depth_window=5,
        min_consistent_views=1,
        poisson_depth=8,
        target_faces=30_000,
        texture_size=2048,
    ),
    "standard": Preset(
        name="standard",
        max_image_size=1600,
        sift_max_features=5000,
        sift_upsample_below=1000,
        depth_pixels=40_000,
        depth_max_size=1200,
        depth_iterations=2,
        depth_sources=4,
        depth_best_sources=2,
        depth_geometric_iterations=0,
        depth_window=7,
        min_consistent_views=1,
        poisson_depth=9,
        target_faces=80_000,
        texture_size=4096,
    ),
    "high": Preset(
        name="high",
        max_image_size=2400,
        sift_max_features=8192,
        sift_upsample_below=2000,
        depth_pixels=150_000,
        depth_max_size=4000,
        depth_iterations=2,
        depth_sources=5,
        depth_best_sources=2,
        depth_geometric_iterations=0,
        depth_window=7,
        min_consistent_views=1,
        poisson_depth=10,
        target_faces=200_000,
        texture_size=8192,
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        from .errors import UserInputError

        raise UserInputError(
            f"Unknown quality {name!r}: choose one of {', '.join(PRESETS)}."
        ) from None
