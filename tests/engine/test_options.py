"""The engine's user options: every impossible value becomes one sentence before any work starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from openscancloud.engine.errors import UserInputError
from openscancloud.engine.pipeline import ReconstructionOptions, masks_choice, parse_formats
from openscancloud.engine.presets import get_preset


def test_masks_choice_reads_modes_and_folders():
    assert masks_choice("off") == ("off", None)
    assert masks_choice(None) == ("auto", None)
    assert masks_choice("my_masks") == ("user", Path("my_masks"))


def test_formats_are_parsed_and_deduplicated():
    assert parse_formats(" GLB, obj,glb ") == ("glb", "obj")
    ReconstructionOptions(formats=parse_formats("stl,usdz")).validate()  # printing and AR formats
    assert parse_formats("") is None


@pytest.mark.parametrize("options, words", [
    (ReconstructionOptions(masks="sometimes"), "masks must be one of auto, off, user"),
    (ReconstructionOptions(texture_size=100), "--texture-size must be between"),
    (ReconstructionOptions(target_faces=10), "--target-faces must be between"),
    (ReconstructionOptions(formats=("glb", "fbx")), "formats must be a non-empty list"),
    (ReconstructionOptions(max_image_size=50), "--max-image-size must be between"),
])
def test_impossible_options_are_refused_with_a_sentence(options, words):
    with pytest.raises(UserInputError, match=words):
        options.validate()


def test_a_masks_folder_means_user_masks_and_off_disables_detection():
    options = ReconstructionOptions(masks_dir=Path("m"))
    options.validate()
    assert options.masks == "user" and not options.detect_static_background
    assert not ReconstructionOptions(masks="off").detect_static_background
    assert ReconstructionOptions().detect_static_background


def test_explicit_sizes_override_the_preset_and_none_keeps_it():
    preset = get_preset("standard")
    assert preset.with_overrides(texture_size=None, target_faces=None) is preset
    changed = preset.with_overrides(texture_size=2048, target_faces=12_345)
    assert (changed.texture_size, changed.target_faces) == (2048, 12_345)
