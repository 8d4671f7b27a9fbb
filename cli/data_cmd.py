"""`socket-edge synth` (and the dataset converters)."""

from __future__ import annotations

from pathlib import Path

import typer

from .choices import Modality
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
        None, "--config", help="Pipeline TOML; its \\[synth] table sets defaults."
    ),
    modality: list[Modality] = typer.Option(
        None, "--modality", help="Target modality to render (repeatable; default both)."
    ),
    shift: list[str] = typer.Option(
        None,
        "--shift",
        help="A deployment shift (repeatable): depth-sensor, mount, thermal, prior. Renders only "
        "DIR/<M>/target/{train,test}, the same scenes as unshifted (see below).",
    ),
    prior_class: str = typer.Option(
        None, "--prior-class", help="With --shift prior: the class that makes up half (first)."
    ),
    ti_shapes: str = typer.Option(
        None,
        "--ti-shapes",
        help="TI objects: default (solid composites) or unlike (thin, flat, open shapes).",
    ),
) -> None:
    """Write the built-in paired RGB / depth / IR benchmark (procedural 3-D shapes).

    The class is the object's shape; colour, texture, lighting and temperature are random, so
    only geometry carries over between modalities. Writes DIR/source_rgb/{train,val},
    DIR/{depth,ir}/target/{train,test} and DIR/{depth,ir}/paired/{rgb,depth|ir}.

    Shifts (--shift, for testing `socket-edge monitor` and re-adaptation): [bold]depth-sensor[/bold]
    3x axial noise, range ending at 1.75-3 m, 3-8 % speckle dropout; [bold]mount[/bold] camera
    0.5 m higher, tilted 8 degrees further down; [bold]thermal[/bold] another camera (9000 +
    70 counts/K instead of 8192 + 100) on a day 8 K warmer (objects keep their temperature);
    [bold]prior[/bold] one class is half of the target images. Without --shift the output is
    the same as before, byte for byte.
    """
    from socket_edge.config import merge, section
    from socket_edge.data.synth import SynthConfig
    from socket_edge.data.synth import synth as run

    settings = merge(
        section(config, "synth", SynthConfig),
        size=size,
        per_class=per_class,
        seed=seed,
        modalities=tuple(m.value for m in modality) if modality else None,
        shift=tuple(shift) if shift else None,
        prior_class=prior_class,
        ti_shapes=ti_shapes,
    )
    manifest = run(out_dir, SynthConfig(**settings), workers or None)
    counts = manifest["counts"]
    if "shift" in manifest:
        total = {k: sum(v.values()) for k, v in manifest["shift"]["target_counts"].items()}
        typer.echo(
            f"wrote {out_dir}: shift {'+'.join(manifest['shift']['names'])}, "
            f"{total['target_train']} train / {total['target_test']} test images per modality "
            f"({', '.join(manifest['config']['modalities'])})"
        )
        return
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
            "socket-edge synth data/shifted --shift depth-sensor --modality depth",
            "socket-edge synth data/warm --shift thermal --modality ir --per-class 200",
            "socket-edge synth data/skewed --shift prior --prior-class torus",
            "socket-edge synth data/unlike --ti-shapes unlike   # TI objects unlike the task's",
        )
    )(synth)
