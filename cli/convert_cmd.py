"""`socket-edge convert sunrgbd|nyuv2|diml|rgbnir SRC DST`: public datasets -> our layout."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .choices import DepthMap, Resolution
from .common import defaults_from, emit_json, examples, settings

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

# The options every dataset shares (the fields of ConvertOptions, and --json), declared once.
Dst = Annotated[Path, typer.Argument(help="Output folder (new or empty).")]
TaskClasses = Annotated[
    str | None,
    typer.Option(
        "--task-classes",
        help="Comma-separated task classes (default: the dataset's rule; the other classes "
        "become task-irrelevant).",
    ),
]
TIClasses = Annotated[
    str | None,
    typer.Option(
        "--ti-classes",
        help="Comma-separated task-irrelevant classes, whose RGB + target pairs go to DST/paired "
        "('' for none).",
    ),
]
ExcludeClasses = Annotated[
    str | None,
    typer.Option("--exclude-classes", help="Comma-separated classes to leave out."),
]
TestFraction = Annotated[
    float | None,
    typer.Option(
        "--test-fraction", help="Test share per class where the dataset has no official split."
    ),
]
Seed = Annotated[
    int | None,
    typer.Option("--seed", help="Seed of the train/test split (and of --max-per-class)."),
]
ShortSide = Annotated[
    int | None,
    typer.Option(
        "--short-side",
        min=8,
        help="Downscale so the shorter side is this many pixels (depth: nearest neighbour).",
    ),
]
MaxPerClass = Annotated[
    int | None,
    typer.Option(
        "--max-per-class", min=1, help="At most this many frames per class (a first look)."
    ),
]
Force = Annotated[
    bool | None, typer.Option("--force", help="Replace an earlier conversion in DST.")
]
Workers = Annotated[int | None, typer.Option("--workers", min=1, help="Writer threads.")]
ConvertJson = Annotated[
    Path | None,
    typer.Option("--json", help="Also write the summary (convert.json) here ('-' = stdout)."),
]


def _run(ctx: typer.Context, dataset: str, **dataset_options: Any) -> None:
    """Convert with the shared options (ConvertOptions) and the dataset's own; print the summary."""
    from socket_edge.convert import ConvertOptions, convert, parse_class_list

    p = ctx.params
    options = settings(
        ConvertOptions,
        ctx,
        None,
        task_classes=parse_class_list(p["task_classes"]),
        ti_classes=parse_class_list(p["ti_classes"]),
        exclude_classes=parse_class_list(p["exclude_classes"]),
    )
    summary = convert(dataset, p["src"], p["dst"], options, **dataset_options)
    _report(summary, p["dst"], p["json_out"])


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
    ctx: typer.Context,
    src: Annotated[Path, typer.Argument(help="The SUNRGBD folder (or the folder holding it).")],
    dst: Dst,
    sensor: Annotated[
        str | None,
        typer.Option(
            "--sensor",
            help="Sensors whose task-class frames are converted, e.g. kv2 or kv1,xtion (default: "
            "all; TI pairs always come from every sensor).",
        ),
    ] = None,
    depth: Annotated[
        DepthMap, typer.Option("--depth", help="raw (depth/) or filled (depth_bfx/).")
    ] = DepthMap.raw,
    split: Annotated[
        Path | None,
        typer.Option(
            "--split",
            help="Official split: the toolbox's allsplit.mat (needs scipy) or text lines "
            "'train|test <scene path>'.",
        ),
    ] = None,
    max_depth_mm: Annotated[
        int,
        typer.Option(
            "--max-depth-mm",
            min=0,
            help="Clip decoded depth here, as the SUN RGB-D toolbox does (0 = no clip).",
        ),
    ] = 8000,
    task_classes: TaskClasses = None,
    ti_classes: TIClasses = None,
    exclude_classes: ExcludeClasses = None,
    test_fraction: TestFraction = None,
    seed: Seed = None,
    short_side: ShortSide = None,
    max_per_class: MaxPerClass = None,
    force: Force = None,
    workers: Workers = None,
    json_out: ConvertJson = None,
) -> None:
    """SUN RGB-D (kv1, kv2, realsense, xtion scene folders with image/, depth/, scene.txt) -> depth.

    Task classes follow the SOCKET paper: the scene classes present for all four sensors;
    the RGB-D pairs of every other class, from every sensor, are the task-irrelevant data.
    Depth is decoded from SUN RGB-D's bit-rotated PNGs into plain millimetres.
    """
    sensors = tuple(s.strip() for s in sensor.split(",") if s.strip()) if sensor else None
    _run(
        ctx,
        "sunrgbd",
        sensors=sensors,
        depth=depth.value,
        split=split,
        max_depth_mm=max_depth_mm or None,
    )


def nyuv2(
    ctx: typer.Context,
    src: Annotated[Path, typer.Argument(help="nyu_depth_v2_labeled.mat (or its folder).")],
    dst: Dst,
    depth: Annotated[
        DepthMap,
        typer.Option("--depth", help="raw (rawDepths, 0 = no reading) or filled (depths)."),
    ] = DepthMap.raw,
    split: Annotated[
        Path | None,
        typer.Option(
            "--split",
            help="Official split: splits.mat (trainNdxs/testNdxs) or text lines "
            "'train|test <frame number>'.",
        ),
    ] = None,
    task_classes: TaskClasses = None,
    ti_classes: TIClasses = None,
    exclude_classes: ExcludeClasses = None,
    test_fraction: TestFraction = None,
    seed: Seed = None,
    short_side: ShortSide = None,
    max_per_class: MaxPerClass = None,
    force: Force = None,
    workers: Workers = None,
    json_out: ConvertJson = None,
) -> None:
    """NYU Depth v2 labelled set (MATLAB v7.3 .mat, read with h5py) -> depth in millimetres.

    Default task classes: the nine most frequent scene types; the other 18 are task-irrelevant.
    Without --split, frames of one scene (video) stay together in train or in test.
    """
    _run(ctx, "nyuv2", depth=depth.value, split=split)


def diml(
    ctx: typer.Context,
    src: Annotated[Path, typer.Argument(help="The DIML indoor folder holding train/ and test/.")],
    dst: Dst,
    resolution: Annotated[
        Resolution, typer.Option("--resolution", help="Image resolution.")
    ] = Resolution.LR,
    task_classes: TaskClasses = None,
    ti_classes: TIClasses = None,
    exclude_classes: ExcludeClasses = None,
    test_fraction: TestFraction = None,
    seed: Seed = None,
    short_side: ShortSide = None,
    max_per_class: MaxPerClass = None,
    force: Force = None,
    workers: Workers = None,
    json_out: ConvertJson = None,
) -> None:
    """DIML RGB-D indoor ({train,test}/{HR,LR}/<class>/color + depth_filled) -> depth.

    There is no published task-irrelevant split for DIML: name the TI classes with --ti-classes
    (without it every class is a task class and DST/paired/ is not written).
    """
    _run(ctx, "diml", resolution=resolution.value)


def rgbnir(
    ctx: typer.Context,
    src: Annotated[Path, typer.Argument(help="The nirscene1 folder (nine category folders).")],
    dst: Dst,
    task_classes: TaskClasses = None,
    ti_classes: TIClasses = None,
    exclude_classes: ExcludeClasses = None,
    test_fraction: TestFraction = None,
    seed: Seed = None,
    short_side: ShortSide = None,
    max_per_class: MaxPerClass = None,
    force: Force = None,
    workers: Workers = None,
    json_out: ConvertJson = None,
) -> None:
    """EPFL RGB-NIR scene dataset (<category>/NNNN_rgb.tiff + NNNN_nir.tiff) -> ir.

    Default: country, oldbuilding and water are task-irrelevant, the other six categories the
    task; a seeded stratified split (--test-fraction, --seed).
    """
    _run(ctx, "rgbnir")


def register(app: typer.Typer) -> None:
    Command = defaults_from("socket_edge.convert.common:ConvertOptions")
    convert_app.command(
        cls=Command,
        epilog=examples(
            "socket-edge convert sunrgbd ~/data/SUNRGBD data/sun --sensor kv2 --short-side 256",
            "socket-edge convert sunrgbd ~/data/SUNRGBD data/sun "
            "--split ~/data/SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat",
            "socket-edge adapt --source src.pt --target data/sun/target/train "
            "--paired data/sun/paired --modality depth --out depth.pt",
        ),
    )(sunrgbd)
    convert_app.command(
        cls=Command,
        epilog=examples(
            "socket-edge convert nyuv2 ~/data/nyu_depth_v2_labeled.mat data/nyu",
            "socket-edge convert nyuv2 ~/data/nyu_depth_v2_labeled.mat data/nyu --split splits.mat "
            "--depth filled",
        ),
    )(nyuv2)
    convert_app.command(
        cls=Command,
        epilog=examples(
            "socket-edge convert diml ~/data/DIML/indoor data/diml --ti-classes warehouse,church",
            "socket-edge convert diml ~/data/DIML/indoor data/diml --resolution HR --short-side 256",
        ),
    )(diml)
    convert_app.command(
        cls=Command,
        epilog=examples(
            "socket-edge convert rgbnir ~/data/nirscene1 data/nir",
            "socket-edge convert rgbnir ~/data/nirscene1 data/nir --ti-classes indoor,water --seed 1",
            "socket-edge adapt --source src.pt --target data/nir/target/train "
            "--paired data/nir/paired --modality ir --out nir.pt",
        ),
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
