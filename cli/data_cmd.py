"""`socket-edge synth` (and the dataset converters)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .choices import Modality, Shift, TIShapes
from .common import (
    Every,
    JsonOut,
    Stride,
    Tolerance,
    config_option,
    defaults_from,
    emit_json,
    examples,
    sampling,
    settings,
)

data_app = typer.Typer(help="Robot recordings to the folder layout.", no_args_is_help=True)


def synth(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the benchmark into (created).")],
    size: Annotated[
        int | None, typer.Option("--size", min=16, help="Image side in pixels.")
    ] = None,
    per_class: Annotated[
        int | None,
        typer.Option(
            "--per-class",
            min=2,
            help="RGB training images per task class; target train gets half, val/test/TI "
            "pairs a quarter.",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed; the same seed gives the same files.")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=0, help="Render processes (0 = all CPU cores).")
    ] = 0,
    config: config_option("synth", "sets defaults") = None,
    modality: Annotated[
        list[Modality] | None,
        typer.Option("--modality", help="Target modality to render (repeatable)."),
    ] = None,
    shift: Annotated[
        list[Shift] | None,
        typer.Option(
            "--shift",
            help="A deployment shift (repeatable). Renders only DIR/<M>/target/{train,test}, "
            "the same scenes as unshifted (see below).",
        ),
    ] = None,
    prior_class: Annotated[
        str | None,
        typer.Option(
            "--prior-class", help="With --shift prior: the class that makes up half (first)."
        ),
    ] = None,
    stream: Annotated[
        float | None,
        typer.Option(
            "--stream",
            min=0,
            help="Seconds of an ordered stream to render instead (DIR/<M>/stream/: runs of one "
            "class, see below).",
        ),
    ] = None,
    dwell: Annotated[
        str | None,
        typer.Option("--dwell", help="With --stream: seconds per run of one class, LOW,HIGH."),
    ] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", min=0.001, help="With --stream: frames per second.")
    ] = None,
    ti_shapes: Annotated[
        TIShapes | None,
        typer.Option(
            "--ti-shapes",
            help="TI objects: default (solid composites) or unlike (thin, flat, open shapes).",
        ),
    ] = None,
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

    Streams (--stream SECONDS, for testing `socket-edge monitor` as a robot feeds it): the test
    scenes only (with --shift, through the shifted sensor), arranged as a robot sees them: runs
    of one class, each --dwell seconds (uniform between LOW and HIGH), at --rate Hz, in
    DIR/<M>/stream/ordered/ (time order), the same frames in DIR/<M>/stream/shuffled/, and
    stream.json (every frame's class and scene). With --shift prior one class gets half the time.
    """
    from socket_edge.data.synth import SynthConfig
    from socket_edge.data.synth import synth as run

    cfg = settings(
        SynthConfig,
        ctx,
        "synth",
        modalities=tuple(m.value for m in modality) if modality else None,
        shift=tuple(m.value for m in shift) if shift else None,
        stream_seconds=stream,
        dwell=_pair(dwell) if dwell is not None else None,
    )
    _summary(run(out_dir, cfg, workers or None), out_dir)


def _pair(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"--dwell takes LOW,HIGH seconds, got {text!r}") from None
    return lo, hi


def _summary(manifest: dict, out_dir: Path) -> None:
    counts = manifest["counts"]
    if "stream" in manifest:
        st = manifest["stream"]
        typer.echo(
            f"wrote {out_dir}: a stream of {st['frames']} frames ({st['runs']} runs of one class, "
            f"{st['dwell'][0]:g}-{st['dwell'][1]:g} s each at {st['rate']:g} Hz) per modality "
            f"({', '.join(manifest['config']['modalities'])}), in <modality>/stream/"
        )
        return
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


def extract(
    bag: Annotated[
        Path, typer.Argument(help="A ROS 1 .bag, ROS 2 .db3 / .mcap, or a ROS 2 bag folder.")
    ],
    out: Annotated[Path, typer.Argument(help="Folder to write (must not exist, or be empty).")],
    modality: Annotated[Modality, typer.Option("--modality", help="What the target topic holds.")],
    topic: Annotated[
        str | None,
        typer.Option("--topic", help="Image topic: writes OUT/<frame>.png (unlabelled frames)."),
    ] = None,
    pair_topics: Annotated[
        str | None,
        typer.Option(
            "--pair-topics",
            help="RGB_TOPIC,TARGET_TOPIC: TI pairs matched on header.stamp, written as "
            "OUT/rgb/<frame>.png + OUT/<modality>/<frame>.png.",
        ),
    ] = None,
    every: Every = None,
    stride: Stride = None,
    tolerance: Tolerance = None,
    json_out: JsonOut = None,
) -> None:
    """Write the frames of a bag topic, or TI pairs of two topics, in the folder layout.

    Depth lands as 16-bit PNG in millimetres (0 = no reading; 32FC1 metres rounded to mm), IR as
    8- or 16-bit PNG of the sensor's counts, RGB as 8-bit PNG: what the folder readers take,
    value for value. Frames are named by their position in the topic (000012.png). Nothing is
    written unless every frame asked for was read.
    """
    from socket_edge.data import bags
    from socket_edge.errors import SocketEdgeError

    if (topic is None) == (pair_topics is None):
        raise SocketEdgeError("give one of --topic (frames) or --pair-topics (TI pairs)")
    pick = sampling(every, stride) or bags.Sampling()
    if topic is not None:
        src = bags.source(bag, topic, pick)
        if not isinstance(src, bags.BagTopic):
            raise SocketEdgeError("not a bag (.bag, .db3, .mcap or a ROS 2 bag folder)", bag)
    else:
        src = bags.pairs_source(bag, pair_topics, modality.value, tolerance, pick)
        if not isinstance(src, bags.BagPairs):
            raise SocketEdgeError("not a bag (.bag, .db3, .mcap or a ROS 2 bag folder)", bag)
    result = bags.extract(src, out, modality.value)
    if result.matching is not None:
        typer.echo(
            f"wrote {out}: {result.frames} pairs ({result.matching.describe()}; "
            f"sampling: {pick.describe()})",
            err=str(json_out) == "-",
        )
    else:
        typer.echo(
            f"wrote {out}: {result.frames} of {result.total} frames of {topic} "
            f"(sampling: {pick.describe()})",
            err=str(json_out) == "-",
        )
    emit_json(result.to_dict(), json_out)


def register(app: typer.Typer) -> None:
    data_app.command(
        "extract",
        epilog=examples(
            "socket-edge data extract drive.mcap frames/ --topic /camera/depth/image_rect_raw "
            "--modality depth --every 10",
            "socket-edge data extract drive.bag pairs/ --pair-topics "
            "/camera/color/image_raw,/camera/depth/image_rect_raw --modality depth --stride 0.5",
        ),
    )(extract)
    app.add_typer(data_app, name="data")
    app.command(
        cls=defaults_from(
            "socket_edge.data.synth:SynthConfig", modality="modalities", stream="stream_seconds"
        ),
        epilog=examples(
            "socket-edge synth data/synth",
            "socket-edge synth data/small --per-class 40 --seed 1",
            "socket-edge synth data/shifted --shift depth-sensor --modality depth",
            "socket-edge synth data/warm --shift thermal --modality ir --per-class 200",
            "socket-edge synth data/skewed --shift prior --prior-class torus",
            "socket-edge synth data/unlike --ti-shapes unlike   # TI objects unlike the task's",
            "socket-edge synth data/stream --stream 120 --dwell 1,20   # an ordered stream",
            "socket-edge synth data/stream-thermal --stream 60 --shift thermal --modality ir",
        ),
    )(synth)
