"""`openscan-cloud reconstruct`: the engine from a terminal, with one rich progress bar per stage."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional

import typer

from .presets import PRESETS


def register(app: typer.Typer) -> None:
    @app.command("reconstruct")
    def reconstruct_command(
        input_path: Path = typer.Argument(..., help="Folder of photos or a .zip of photos."),
        output: Path = typer.Option(..., "-o", "--output", help="Output folder."),
        quality: str = typer.Option("standard", "--quality", "-q",
                                    help=f"Quality preset: {', '.join(PRESETS)}."),
        max_image_size: Optional[int] = typer.Option(None, "--max-image-size",
                                                     help="Working size: long side in pixels."),
        masks: str = typer.Option("auto", "--masks",
                                  help="auto (detect a static rig background), off (every pixel), user "
                                       "(NAME_mask.png beside each photo), or a folder of masks NAME.png."),
        texture_size: Optional[int] = typer.Option(None, "--texture-size", help="Texture atlas side (px)."),
        target_faces: Optional[int] = typer.Option(None, "--target-faces", help="Triangle budget of the mesh."),
        formats: Optional[str] = typer.Option(None, "--formats", help="Comma-separated subset of glb,obj,ply,stl,usdz."),
        work_dir: Optional[Path] = typer.Option(None, "--work-dir",
                                                help="Keep intermediate files here (resume after a crash)."),
        threads: Optional[int] = typer.Option(None, "--threads", help="Worker threads (default: all cores)."),
    ) -> None:
        """Reconstruct a textured 3D model (OBJ, GLB, PLY, preview) from overlapping photos of an object."""
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        from .pipeline import STAGE_TITLES, ReconstructionOptions, masks_choice, parse_formats
        from .runner import EXIT_OK, install_cancel_signals, run_reconstruction

        console = Console(stderr=True)
        if quality not in PRESETS:
            console.print(f"[red]Error:[/red] unknown quality {quality!r}: choose one of {', '.join(PRESETS)}.")
            raise typer.Exit(2)
        cancel = threading.Event()
        install_cancel_signals(cancel)
        mode, masks_dir = masks_choice(masks)
        options = ReconstructionOptions(quality=quality, max_image_size=max_image_size, masks=mode,
                                        masks_dir=masks_dir, texture_size=texture_size, target_faces=target_faces,
                                        formats=parse_formats(formats), work_dir=work_dir)
        if threads:
            options.num_threads = max(1, threads)
        columns = (TextColumn("{task.description:<30}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                   TextColumn("[dim]{task.fields[message]}"))
        with Progress(*columns, console=console, transient=False) as bars:
            tasks = {name: bars.add_task(title, total=1.0, start=False, message="")
                     for name, title in STAGE_TITLES.items()}
            started: set[str] = set()

            def progress(stage: str, fraction: float, message: str) -> None:
                task = tasks[stage]
                if stage not in started:
                    bars.start_task(task)
                    started.add(stage)
                bars.update(task, completed=fraction, message=message[:60])
                if fraction >= 1.0:
                    bars.stop_task(task)

            code, event = run_reconstruction(input_path, output, options, progress, cancel)
        if code != EXIT_OK:
            console.print(f"[red]Error:[/red] {event['message']}")
            raise typer.Exit(code)
        summary = event["summary"]
        warnings = event.get("warnings") or []
        console.print(f"[green]Done[/green]{' [yellow]with warnings[/yellow]' if warnings else ''} in {summary['total_seconds']:.0f} s: {summary['registered']}/"
                      f"{summary['images']} photos placed, {summary['faces']} triangles.")
        for kind, path in event["outputs"].items():
            console.print(f"  {kind:8s} {path}")
        for warning in warnings:
            console.print(f"[yellow]Warning:[/yellow] {warning}", soft_wrap=True)
