"""`socket-edge export`: ONNX with a parity check, INT8 calibration, TensorRT engines."""

from __future__ import annotations

from pathlib import Path

import typer

from .choices import CalibMethod, Int8Mode
from .common import emit_json, examples, given, overlay, parse_int_list


def export(
    ctx: typer.Context,
    model: Path = typer.Argument(
        ..., help="A checkpoint (.pt) to export, or an exported .onnx (with sidecar) for --trt."
    ),
    out: Path = typer.Option(
        None, "--out", "-o", help="ONNX model to write (model.onnx); sidecar model.json beside it."
    ),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (13-20; TensorRT 8.5 reads <= 17)."),
    batch: str = typer.Option(
        "1,8,32", "--batch", help="Batch sizes: parity runs each; TensorRT's profile min,opt,max."
    ),
    no_verify: bool = typer.Option(
        False,
        "--no-verify",
        help="Skip the ONNX Runtime vs torch parity check; with --trt, the sidecar checks of "
        "the ONNX model too.",
    ),
    verify_data: Path = typer.Option(
        None,
        "--verify-data",
        help="Target images for the parity check and the INT8 gate (class subfolders give labels).",
    ),
    int8: bool = typer.Option(
        False, "--int8", help="Calibrate INT8 (with --calib); with --trt: build an INT8 engine."
    ),
    calib: Path = typer.Option(
        None, "--calib", help="Unlabelled target images to calibrate on (flat or in subfolders)."
    ),
    calib_size: int = typer.Option(512, "--calib-size", min=1, help="Images to calibrate on."),
    calib_method: CalibMethod = typer.Option(
        CalibMethod.entropy, "--calib-method", help="How activation ranges are chosen."
    ),
    holdout: int = typer.Option(
        256, "--holdout", min=0, help="Held-back images the INT8 accuracy gate scores."
    ),
    max_drop: float = typer.Option(
        1.0,
        "--max-drop",
        help="INT8 top-1 drop budget in points (labelled gate images); layers go back to float "
        "past it.",
    ),
    max_disagreement: float = typer.Option(
        2.0,
        "--max-disagreement",
        help="INT8 budget of top-1 decisions changed vs FP32, in percent (with or without labels).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the calibration draw."),
    trt: bool = typer.Option(False, "--trt", help="Build a TensorRT engine (on the device)."),
    fp16: bool = typer.Option(False, "--fp16", help="Engine: allow FP16 kernels."),
    int8_mode: Int8Mode = typer.Option(
        Int8Mode.auto,
        "--int8-mode",
        help="Engine INT8 path: explicit (Q/DQ model.int8.onnx), implicit (calibrator + "
        "model.calib.cache; TensorRT <= 10), auto (explicit from TensorRT 10 unless DLA).",
    ),
    dla_core: int = typer.Option(None, "--dla-core", min=0, help="Engine: run on DLA core N."),
    workspace: int = typer.Option(None, "--workspace", min=1, help="Engine: workspace limit, MiB."),
    timing_cache: Path = typer.Option(
        None, "--timing-cache", help="Engine: timing cache file to reuse and update."
    ),
    engine: Path = typer.Option(
        None, "--engine", help="Engine file (default: model.<precision>.engine beside the ONNX)."
    ),
    frame_size: str = typer.Option(
        None,
        "--frame-size",
        help="HEIGHTxWIDTH of the sensor's frames (e.g. 480x640): resize + centre crop go into "
        "the graph, which then takes whole frames.",
    ),
    reference: Path = typer.Option(
        None,
        "--reference",
        help="In-distribution target images for `socket-edge monitor`'s reference statistics "
        "(default: the --calib folder).",
    ),
    config: Path = typer.Option(
        None, "--config", help="Pipeline TOML; its \\[export] table sets defaults, flags override."
    ),
    json_out: Path = typer.Option(
        None, "--json", help="Write what was done as JSON ('-' = stdout)."
    ),
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
    from socket_edge.config import section
    from socket_edge.errors import SocketEdgeError
    from socket_edge.export.frame import parse_frame_size
    from socket_edge.export.pipeline import ExportOptions
    from socket_edge.export.pipeline import export as run

    flags = {  # ExportOptions field: (command-line parameter, value)
        "opset": ("opset", opset),
        "batch": ("batch", tuple(parse_int_list(batch, "--batch"))),
        "verify": ("no_verify", not no_verify),
        "verify_data": ("verify_data", verify_data),
        "int8": ("int8", int8),
        "calib": ("calib", calib),
        "calib_size": ("calib_size", calib_size),
        "calib_method": ("calib_method", calib_method.value),
        "holdout": ("holdout", holdout),
        "max_drop": ("max_drop", max_drop),
        "max_disagreement": ("max_disagreement", max_disagreement),
        "seed": ("seed", seed),
        "trt": ("trt", trt),
        "fp16": ("fp16", fp16),
        "int8_mode": ("int8_mode", int8_mode.value),
        "dla_core": ("dla_core", dla_core),
        "workspace_mib": ("workspace", workspace),
        "timing_cache": ("timing_cache", timing_cache),
        "engine": ("engine", engine),
        "frame_size": ("frame_size", parse_frame_size(frame_size) if frame_size else None),
        "reference": ("reference", reference),
    }
    from socket_edge.guard import option_errors

    settings = overlay(ctx, section(config, "export", ExportOptions), flags)
    options_given = {f: "--" + param.replace("_", "-") for f, (param, _) in flags.items()}
    given_here = {f: o for f, o in options_given.items() if given(ctx, flags[f][0])}
    with option_errors(given_here, config, "export"):
        options = ExportOptions(**settings)
    if options.calib_method not in ("entropy", "percentile", "minmax"):
        raise SocketEdgeError(
            f"--calib-method must be entropy, percentile or minmax, got {options.calib_method!r}"
        )
    result = run(model, out, options)
    to_stderr = str(json_out) == "-"  # keep stdout pure JSON
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
        epilog=examples(
            "socket-edge export depth.pt --out model.onnx",
            "socket-edge export depth.pt --out model.onnx --reference synth/depth/target/train",
            "socket-edge export depth.pt --out model.onnx --int8 --calib synth/depth/target/train",
            "socket-edge export depth.pt -o model.onnx --int8 --calib DIR --verify-data TEST "
            "--max-drop 0.5 --max-disagreement 1",
            "socket-edge export model.onnx --trt --fp16 --int8 --timing-cache trt.cache",
            "socket-edge export model.onnx --trt --int8 --int8-mode implicit --dla-core 0",
            "socket-edge export depth.pt --out model.onnx --frame-size 480x640  # raw frames in",
        ),
    )(export)
