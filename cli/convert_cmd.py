"""`socket-edge convert sunrgbd|nyuv2|diml|rgbnir SRC DST`: public datasets -> our layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from .common import emit_json, examples

convert_app = typer.Typer(
    help=(
        "Convert a public RGB-D / RGB-NIR dataset into socket-edge's layout: "
        "DST/source_rgb/{train,test}/<class>/, DST/target/{train,test}/<class>/ (the same frames "
        "in depth or NIR), DST/paired/{rgb,<modality>}/ (task-irrelevant pairs) and "
        "DST/convert.json."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Options every dataset shares (Typer reads them from each command's signature).
TASK = typer.Option(
    None,
    "--task-classes",
    help="Comma-separated task classes (default: the dataset's rule; the other classes become "
    "task-irrelevant).",
)
TI = typer.Option(
    None,
    "--ti-classes",
    help="Comma-separated task-irrelevant classes, whose RGB + target pairs go to DST/paired "
    "('' for none).",
)
EXCLUDE = typer.Option(None, "--exclude-classes", help="Comma-separated classes to leave out.")
TEST_FRACTION = typer.Option(
    0.2, "--test-fraction", help="Test share per class where the dataset has no official split."
)
SEED = typer.Option(0, "--seed", help="Seed of the train/test split (and of --max-per-class).")
SHORT_SIDE = typer.Option(
    None,
    "--short-side",
    min=8,
    help="Downscale so the shorter side is this many pixels (depth: nearest neighbour).",
)
MAX_PER_CLASS = typer.Option(
    None, "--max-per-class", min=1, help="At most this many frames per class (a first look)."
)
FORCE = typer.Option(False, "--force", help="Replace an earlier conversion in DST.")
WORKERS = typer.Option(1, "--workers", min=1, help="Writer threads.")
JSON_OUT = typer.Option(
    None, "--json", help="Also write the summary (convert.json) here ('-' = stdout)."
)


def _options(
    task: str | None,
    ti: str | None,
    exclude: str | None,
    test_fraction: float,
    seed: int,
    short_side: int | None,
    max_per_class: int | None,
    force: bool,
    workers: int,
):
    from socket_edge.convert import ConvertOptions, parse_class_list

    return ConvertOptions(
        task_classes=parse_class_list(task),
        ti_classes=parse_class_list(ti),
        exclude_classes=parse_class_list(exclude) or (),
        test_fraction=test_fraction,
        seed=seed,
        short_side=short_side,
        max_per_class=max_per_class,
        force=force,
        workers=workers,
    )


def _report(summary: dict[str, Any], dst: Path, json_out: Path | None) -> None:
    counts = summary["counts"]
    train, test = counts["target"]["train"], counts["target"]["test"]
    if str(json_out) != "-":
        width = max(len(c) for c in summary["task_classes"] + summary["ti_classes"])
        typer.echo(f"{'class':<{width}}  train  test   (target: {summary['modality']})")
        for c in summary["task_classes"]:
            typer.echo(f"{c:<{width}}  {train[c]:>5}  {test[c]:>4}")
        for c, n in counts["paired"].items():
            typer.echo(f"{c:<{width}}  {n:>5} TI pairs")
        typer.echo(
            f"wrote {dst}: {len(summary['task_classes'])} task classes "
            f"({sum(train.values())} train / {sum(test.values())} test frames, "
            f"{summary['split']['kind']} split), {len(summary['ti_classes'])} task-irrelevant "
            f"classes ({counts['paired_frames']} pairs); details in {dst / 'convert.json'}"
        )
    emit_json(summary, json_out)


def sunrgbd(
    src: Path = typer.Argument(..., help="The SUNRGBD folder (or the folder holding it)."),
    dst: Path = typer.Argument(..., help="Output folder (new or empty)."),
    sensor: str = typer.Option(
        None,
        "--sensor",
        help="Sensors whose task-class frames are converted, e.g. kv2 or kv1,xtion (default: all; "
        "TI pairs always come from every sensor).",
    ),
    depth: str = typer.Option("raw", "--depth", help="raw (depth/) or filled (depth_bfx/)."),
    split: Path = typer.Option(
        None,
        "--split",
        help="Official split: the toolbox's allsplit.mat (needs scipy) or text lines "
        "'train|test <scene path>'.",
    ),
    max_depth_mm: int = typer.Option(
        8000,
        "--max-depth-mm",
        min=0,
        help="Clip decoded depth here, as the SUN RGB-D toolbox does (0 = no clip).",
    ),
    task_classes: str = TASK,
    ti_classes: str = TI,
    exclude_classes: str = EXCLUDE,
    test_fraction: float = TEST_FRACTION,
    seed: int = SEED,
    short_side: int = SHORT_SIDE,
    max_per_class: int = MAX_PER_CLASS,
    force: bool = FORCE,
    workers: int = WORKERS,
    json_out: Path = JSON_OUT,
) -> None:
    """SUN RGB-D (kv1, kv2, realsense, xtion scene folders with image/, depth/, scene.txt) -> depth.

    Task classes follow the SOCKET paper: the scene classes present for all four sensors;
    the RGB-D pairs of every other class, from every sensor, are the task-irrelevant data.
    Depth is decoded from SUN RGB-D's bit-rotated PNGs into plain millimetres.
    """
    from socket_edge.convert import convert

    sensors = tuple(s.strip() for s in sensor.split(",") if s.strip()) if sensor else None
    opts = _options(
        task_classes,
        ti_classes,
        exclude_classes,
        test_fraction,
        seed,
        short_side,
        max_per_class,
        force,
        workers,
    )
    summary = convert(
        "sunrgbd",
        src,
        dst,
        opts,
        sensors=sensors,
        depth=depth,
        split=split,
        max_depth_mm=max_depth_mm or None,
    )
    _report(summary, dst, json_out)


def nyuv2(
    src: Path = typer.Argument(..., help="nyu_depth_v2_labeled.mat (or its folder)."),
    dst: Path = typer.Argument(..., help="Output folder (new or empty)."),
    depth: str = typer.Option(
        "raw", "--depth", help="raw (rawDepths, 0 = no reading) or filled (depths)."
    ),
    split: Path = typer.Option(
        None,
        "--split",
        help="Official split: splits.mat (trainNdxs/testNdxs) or text lines "
        "'train|test <frame number>'.",
    ),
    task_classes: str = TASK,
    ti_classes: str = TI,
    exclude_classes: str = EXCLUDE,
    test_fraction: float = TEST_FRACTION,
    seed: int = SEED,
    short_side: int = SHORT_SIDE,
    max_per_class: int = MAX_PER_CLASS,
    force: bool = FORCE,
    workers: int = WORKERS,
    json_out: Path = JSON_OUT,
) -> None:
    """NYU Depth v2 labelled set (MATLAB v7.3 .mat, read with h5py) -> depth in millimetres.

    Default task classes: the nine most frequent scene types; the other 18 are task-irrelevant.
    Without --split, frames of one scene (video) stay together in train or in test.
    """
    from socket_edge.convert import convert

    opts = _options(
        task_classes,
        ti_classes,
        exclude_classes,
        test_fraction,
        seed,
        short_side,
        max_per_class,
        force,
        workers,
    )
    summary = convert("nyuv2", src, dst, opts, depth=depth, split=split)
    _report(summary, dst, json_out)


def diml(
    src: Path = typer.Argument(..., help="The DIML indoor folder holding train/ and test/."),
    dst: Path = typer.Argument(..., help="Output folder (new or empty)."),
    resolution: str = typer.Option("LR", "--resolution", help="HR or LR."),
    task_classes: str = TASK,
    ti_classes: str = TI,
    exclude_classes: str = EXCLUDE,
    test_fraction: float = TEST_FRACTION,
    seed: int = SEED,
    short_side: int = SHORT_SIDE,
    max_per_class: int = MAX_PER_CLASS,
    force: bool = FORCE,
    workers: int = WORKERS,
    json_out: Path = JSON_OUT,
) -> None:
    """DIML RGB-D indoor ({train,test}/{HR,LR}/<class>/color + depth_filled) -> depth.

    There is no published task-irrelevant split for DIML: name the TI classes with --ti-classes
    (without it every class is a task class and DST/paired/ is not written).
    """
    from socket_edge.convert import convert

    opts = _options(
        task_classes,
        ti_classes,
        exclude_classes,
        test_fraction,
        seed,
        short_side,
        max_per_class,
        force,
        workers,
    )
    summary = convert("diml", src, dst, opts, resolution=resolution)
    _report(summary, dst, json_out)


def rgbnir(
    src: Path = typer.Argument(..., help="The nirscene1 folder (nine category folders)."),
    dst: Path = typer.Argument(..., help="Output folder (new or empty)."),
    task_classes: str = TASK,
    ti_classes: str = TI,
    exclude_classes: str = EXCLUDE,
    test_fraction: float = TEST_FRACTION,
    seed: int = SEED,
    short_side: int = SHORT_SIDE,
    max_per_class: int = MAX_PER_CLASS,
    force: bool = FORCE,
    workers: int = WORKERS,
    json_out: Path = JSON_OUT,
) -> None:
    """EPFL RGB-NIR scene dataset (<category>/NNNN_rgb.tiff + NNNN_nir.tiff) -> ir.

    Default: country, oldbuilding and water are task-irrelevant, the other six categories the
    task; a seeded stratified split (--test-fraction, --seed).
    """
    from socket_edge.convert import convert

    opts = _options(
        task_classes,
        ti_classes,
        exclude_classes,
        test_fraction,
        seed,
        short_side,
        max_per_class,
        force,
        workers,
    )
    summary = convert("rgbnir", src, dst, opts)
    _report(summary, dst, json_out)


def register(app: typer.Typer) -> None:
    convert_app.command(
        epilog=examples(
            "socket-edge convert sunrgbd ~/data/SUNRGBD data/sun --sensor kv2 --short-side 256",
            "socket-edge convert sunrgbd ~/data/SUNRGBD data/sun "
            "--split ~/data/SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat",
            "socket-edge adapt --source src.pt --target data/sun/target/train "
            "--paired data/sun/paired --modality depth --out depth.pt",
        )
    )(sunrgbd)
    convert_app.command(
        epilog=examples(
            "socket-edge convert nyuv2 ~/data/nyu_depth_v2_labeled.mat data/nyu",
            "socket-edge convert nyuv2 ~/data/nyu_depth_v2_labeled.mat data/nyu --split splits.mat "
            "--depth filled",
        )
    )(nyuv2)
    convert_app.command(
        epilog=examples(
            "socket-edge convert diml ~/data/DIML/indoor data/diml --ti-classes warehouse,church",
            "socket-edge convert diml ~/data/DIML/indoor data/diml --resolution HR --short-side 256",
        )
    )(diml)
    convert_app.command(
        epilog=examples(
            "socket-edge convert rgbnir ~/data/nirscene1 data/nir",
            "socket-edge convert rgbnir ~/data/nirscene1 data/nir --ti-classes indoor,water --seed 1",
            "socket-edge adapt --source src.pt --target data/nir/target/train "
            "--paired data/nir/paired --modality ir --out nir.pt",
        )
    )(rgbnir)
    app.add_typer(
        convert_app,
        name="convert",
        epilog=examples(
            "socket-edge convert sunrgbd ~/data/SUNRGBD data/sun",
            "socket-edge convert rgbnir ~/data/nirscene1 data/nir",
            "socket-edge convert nyuv2 --help",
        ),
    )
