"""`socket-edge synth` (and the dataset converters)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import examples


def synth(
    out_dir: Path = typer.Argument(..., help="Folder to write the benchmark into (created)."),
    size: int = typer.Option(None, "--size", min=16, help="Image side in pixels (64)."),
    per_class: int = typer.Option(
        None,
        "--per-class",
        min=2,
        help="RGB training images per task class (600); target train gets half, val/test/TI pairs a quarter.",
    ),
    seed: int = typer.Option(None, "--seed", help="Seed (0); the same seed gives the same files."),
    workers: int = typer.Option(
        0, "--workers", min=0, help="Render processes (0 = all CPU cores)."
    ),
    config: Path = typer.Option(
        None, "--config", help="Pipeline TOML; its [synth] table sets defaults."
    ),
) -> None:
    """Write the built-in paired RGB / depth / IR benchmark (procedural 3-D shapes).

    The class is the object's shape; colour, texture, lighting and temperature are random, so
    only geometry carries over between modalities. Writes DIR/source_rgb/{train,val},
    DIR/{depth,ir}/target/{train,test} and DIR/{depth,ir}/paired/{rgb,depth|ir}.
    """
    from socket_edge.config import merge, section
    from socket_edge.data.synth import SynthConfig
    from socket_edge.data.synth import synth as run

    settings = merge(
        section(config, "synth", SynthConfig), size=size, per_class=per_class, seed=seed
    )
    manifest = run(out_dir, SynthConfig(**settings), workers or None)
    counts = manifest["counts"]
    typer.echo(
        f"wrote {out_dir}: {len(manifest['task_classes'])} task classes "
        f"({counts['source_train']} train / {counts['source_val']} val RGB, "
        f"{counts['target_train']} train / {counts['target_test']} test per target modality, per class), "
        f"{len(manifest['ti_classes'])} TI classes x {counts['paired']} pairs"
    )


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            "socket-edge synth data/synth",
            "socket-edge synth data/small --per-class 40 --seed 1",
        )
    )(synth)
