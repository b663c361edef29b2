"""`python -m openscancloud.engine INPUT -o OUT [...] --progress jsonl` — the worker's entry point.

See runner.py for the exit codes and the JSON-lines contract (also in docs/engine.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path

from .presets import PRESETS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m openscancloud.engine",
                                description="Reconstruct a textured 3D model from a folder or zip of photos.")
    p.add_argument("input", type=Path, help="folder of photos or a .zip")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--quality", choices=list(PRESETS), default="standard")
    p.add_argument("--max-image-size", type=int, default=None, help="working size: long side in pixels")
    p.add_argument("--masks", default="auto",
                   help="auto (detect a static rig background), off (use every pixel), user (NAME_mask.png "
                        "beside each photo), or a folder of masks NAME.png (white = object)")
    p.add_argument("--texture-size", type=int, default=None, help="texture atlas side in pixels (default: preset)")
    p.add_argument("--target-faces", type=int, default=None, help="triangle budget (default: preset)")
    p.add_argument("--formats", default=None, help="comma-separated subset of glb,obj,ply,stl,usdz (default: all)")
    p.add_argument("--work-dir", type=Path, default=None, help="intermediate files (kept, enables resume)")
    p.add_argument("--threads", type=int, default=None, help="worker threads (default: all cores)")
    p.add_argument("--progress", choices=["jsonl", "text", "none"], default="text")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from .runner import EXIT_OK, JsonLines, claim_stdout_for_json, install_cancel_signals, run_reconstruction

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    cancel = threading.Event()
    install_cancel_signals(cancel)
    if args.progress == "jsonl":
        sink = JsonLines(claim_stdout_for_json())
        progress = sink.progress
    elif args.progress == "text":
        sink = None

        def progress(stage: str, fraction: float, message: str) -> None:
            print(f"[{stage:8s} {fraction * 100:5.1f}%] {message}", file=sys.stderr)
    else:
        sink = None

        def progress(stage: str, fraction: float, message: str) -> None:
            return None

    from .pipeline import ReconstructionOptions, masks_choice, parse_formats

    mode, masks_dir = masks_choice(args.masks)
    options = ReconstructionOptions(quality=args.quality, max_image_size=args.max_image_size, masks=mode,
                                    masks_dir=masks_dir, texture_size=args.texture_size,
                                    target_faces=args.target_faces, formats=parse_formats(args.formats),
                                    work_dir=args.work_dir)
    if args.threads:
        options.num_threads = max(1, args.threads)
    code, event = run_reconstruction(args.input, args.output, options, progress, cancel)
    if sink is not None:
        sink.emit(event)
    elif code == EXIT_OK:
        warnings = event.get("warnings") or []
        print(f"Done{' with warnings' if warnings else ''}: {event['outputs'].get('glb')}", file=sys.stderr)
        for warning in warnings:
            print(f"Warning: {warning}", file=sys.stderr)
    else:
        print(f"Error: {event['message']}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
