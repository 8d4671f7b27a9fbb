"""`socket-edge export`: ONNX with a parity check, INT8 calibration, TensorRT engines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .choices import CalibMethod, Int8Mode
from .common import (
    Every,
    JsonOut,
    Stride,
    config_option,
    defaults_from,
    emit_json,
    examples,
    parse_int_list,
    sampling,
    settings,
)


def export(
    ctx: typer.Context,
    model: Annotated[
        Path,
        typer.Argument(
            help="A checkpoint (.pt) to export, or an exported .onnx (with sidecar) for --trt."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="ONNX model to write (model.onnx); sidecar model.json beside it.",
        ),
    ] = None,
    opset: Annotated[
        int | None, typer.Option("--opset", help="ONNX opset (13-20; TensorRT 8.5 reads <= 17).")
    ] = None,
    batch: Annotated[
        str | None,
        typer.Option(
            "--batch", help="Batch sizes: parity runs each; TensorRT's profile min,opt,max."
        ),
    ] = None,
    no_verify: Annotated[
        bool,
        typer.Option(
            "--no-verify",
            help="Skip the ONNX Runtime vs torch parity check; with --trt, the sidecar checks of "
            "the ONNX model too.",
        ),
    ] = False,
    verify_data: Annotated[
        Path | None,
        typer.Option(
            "--verify-data",
            help="Target images for the parity check and the INT8 gate (class subfolders give "
            "labels).",
        ),
    ] = None,
    int8: Annotated[
        bool | None,
        typer.Option(
            "--int8", help="Calibrate INT8 (with --calib); with --trt: build an INT8 engine."
        ),
    ] = None,
    calib: Annotated[
        Path | None,
        typer.Option(
            "--calib",
            help="Unlabelled target images to calibrate on (flat or in subfolders), or a bag "
            "(.bag, .db3, .mcap) with --calib-topic.",
        ),
    ] = None,
    calib_topic: Annotated[
        str | None, typer.Option("--calib-topic", help="The --calib bag's image topic.")
    ] = None,
    every: Every = None,
    stride: Stride = None,
    calib_size: Annotated[
        int | None, typer.Option("--calib-size", min=1, help="Images to calibrate on.")
    ] = None,
    calib_method: Annotated[
        CalibMethod | None,
        typer.Option("--calib-method", help="How activation ranges are chosen."),
    ] = None,
    holdout: Annotated[
        int | None,
        typer.Option("--holdout", min=0, help="Held-back images the INT8 accuracy gate scores."),
    ] = None,
    max_drop: Annotated[
        float | None,
        typer.Option(
            "--max-drop",
            help="INT8 top-1 drop budget in points (labelled gate images); layers go back to "
            "float past it.",
        ),
    ] = None,
    max_disagreement: Annotated[
        float | None,
        typer.Option(
            "--max-disagreement",
            help="INT8 budget of top-1 decisions changed vs FP32, in percent (with or without "
            "labels).",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of the calibration draw.")
    ] = None,
    trt: Annotated[
        bool | None, typer.Option("--trt", help="Build a TensorRT engine (on the device).")
    ] = None,
    fp16: Annotated[bool | None, typer.Option("--fp16", help="Engine: allow FP16 kernels.")] = None,
    int8_mode: Annotated[
        Int8Mode | None,
        typer.Option(
            "--int8-mode",
            help="Engine INT8 path: explicit (Q/DQ model.int8.onnx), implicit (calibrator + "
            "model.calib.cache; TensorRT <= 10), auto (explicit from TensorRT 10 unless DLA).",
        ),
    ] = None,
    dla_core: Annotated[
        int | None, typer.Option("--dla-core", min=0, help="Engine: run on DLA core N.")
    ] = None,
    workspace: Annotated[
        int | None, typer.Option("--workspace", min=1, help="Engine: workspace limit, MiB.")
    ] = None,
    timing_cache: Annotated[
        Path | None,
        typer.Option("--timing-cache", help="Engine: timing cache file to reuse and update."),
    ] = None,
    engine: Annotated[
        Path | None,
        typer.Option(
            "--engine", help="Engine file (default: model.<precision>.engine beside the ONNX)."
        ),
    ] = None,
    frame_size: Annotated[
        str | None,
        typer.Option(
            "--frame-size",
            help="HEIGHTxWIDTH of the sensor's frames (e.g. 480x640): resize + centre crop go "
            "into the graph, which then takes whole frames.",
        ),
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(
            "--reference",
            help="In-distribution target images for `socket-edge monitor`'s reference "
            "statistics (default: the --calib folder).",
        ),
    ] = None,
    config: config_option("export") = None,
    json_out: JsonOut = None,
) -> None:
    """Export a checkpoint to ONNX, calibrate INT8 on target images, build TensorRT engines.

    The ONNX graph takes the robot's raw map (depth in mm, IR as stored) and encodes it itself.

    --int8 --calib DIR also writes model.int8.onnx (Q/DQ, for TensorRT), model.int8-cpu.onnx
    (ONNX Runtime on CPUs) and model.calib.cache (TensorRT's implicit INT8), from one set of ranges.

    Layers go back to float until INT8 changes at most --max-disagreement percent of FP32's
    top-1 decisions and (with labelled gate images) loses at most --max-drop points of top-1.

    With --reference DIR (or --calib DIR) every model's sidecar records reference statistics
    (input percentiles, confidence, entropy, class shares, and held-back frames for thresholds)
    that `socket-edge monitor` compares robot frames with.

    --trt builds an engine where TensorRT is installed (on the device that will run it).
    """
    from socket_edge.export.frame import parse_frame_size
    from socket_edge.export.pipeline import ExportOptions
    from socket_edge.export.pipeline import export as run

    options = settings(
        ExportOptions,
        ctx,
        "export",
        batch=_tuple(parse_int_list(batch, "--batch")),
        verify=False if no_verify else None,
        workspace_mib=workspace,
        frame_size=parse_frame_size(frame_size) if frame_size else None,
        calib=_calib(calib, calib_topic, sampling(every, stride)),
    )
    result = run(model, out, options)
    _report(result, json_out)


def _calib(calib: Path | None, topic: str | None, pick):
    """--calib as the library takes it: the folder, or a bag topic (None: not given)."""
    from socket_edge.data.bags import source

    if calib is None:
        if topic is not None or pick is not None:
            from socket_edge.errors import SocketEdgeError

            raise SocketEdgeError("--calib-topic, --every and --stride need a --calib bag")
        return None
    from socket_edge.data.bags import check_sampled

    src = source(calib, topic, pick, "calib_topic")
    check_sampled(pick, src)
    return src


def _tuple(values: list[int] | None) -> tuple[int, ...] | None:
    return None if values is None else tuple(values)


def _report(result, json_out: Path | None) -> None:
    """What was written, the INT8 gate's verdict and the engines; stdout stays pure JSON with
    --json -."""
    to_stderr = str(json_out) == "-"
    for path in result.written:
        if path.suffix != ".json":
            typer.echo(f"wrote {path}", err=to_stderr)
    if result.int8:
        g = result.int8["gate"]
        kept = g["float_layers"]
        drop = (
            f"top-1 drop {g['drop_points']:.2f} points (budget {g['max_drop']:g}), "
            if g["drop_points"] is not None
            else ""
        )
        typer.echo(
            f"INT8 vs FP32 on {g['images']['n']} images: {drop}disagreement "
            f"{g['disagreement_percent']:.2f}% (budget {g['max_disagreement']:g}%)"
            + (f"; kept in float: {', '.join(kept)}" if kept else ""),
            err=to_stderr,
        )
    for doc in result.engines:
        t = doc["tensorrt"]
        typer.echo(
            f"wrote {doc['artifact']} (TensorRT {t['version']}, compute capability "
            f"{t['compute_capability']}, {doc['precision']})",
            err=to_stderr,
        )
    emit_json(result.to_dict(), json_out)


def register(app: typer.Typer) -> None:
    app.command(
        cls=defaults_from("socket_edge.export.pipeline:ExportOptions", workspace="workspace_mib"),
        epilog=examples(
            "socket-edge export depth.pt --out model.onnx",
            "socket-edge export depth.pt --out model.onnx --reference synth/depth/target/train",
            "socket-edge export depth.pt --out model.onnx --int8 --calib synth/depth/target/train",
            "socket-edge export depth.pt -o model.onnx --int8 --calib drive.mcap --calib-topic "
            "/camera/depth/image_rect_raw --every 10",
            "socket-edge export depth.pt -o model.onnx --int8 --calib DIR --verify-data TEST "
            "--max-drop 0.5 --max-disagreement 1",
            "socket-edge export model.onnx --trt --fp16 --int8 --timing-cache trt.cache",
            "socket-edge export model.onnx --trt --int8 --int8-mode implicit --dla-core 0",
            "socket-edge export depth.pt --out model.onnx --frame-size 480x640  # raw frames in",
        ),
    )(export)
