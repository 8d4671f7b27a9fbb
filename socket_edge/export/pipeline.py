"""`socket-edge export`: checkpoint -> ONNX (+ parity) -> INT8 artifacts (+ gate) -> engines.

Every file of one run is written into a hidden staging folder beside ``--out`` and moved into
place only when everything succeeded (parity, calibration, accuracy gate), through a journal: a
failed or killed export leaves the previous set or the new one, never half of a set (see
socket_edge.outputs). One export at a time per ``--out`` (a lock); the next run removes what a
killed one left.

The steps live one job per module: ``options`` (ExportOptions, ExportResult, the set's names),
``fp32`` (checkpoint, images, FP32 model, parity), ``int8`` (ranges, gate, quantise, write set),
``frame`` (frame size baked into the graphs), ``engines`` (TensorRT); this module strings them
together.

The export runs in steps, each a function with a typed result, after Polygraphy's loaders:
`load_checkpoint` (Checkpoint), `draw_images` (ExportImages), `export_fp32` (OnnxModel, the graph
parsed once), `check_parity`, `calibration_ranges` (CalibrationRanges), `run_gate` (the layers kept
in float; Quantizer writes and scores the candidates), `write_int8_set`; `build_engines` finds its
EngineSource and hands it to `tensorrt.build_engine`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..artifact import make_sidecar
from ..errors import SocketEdgeError
from ..outputs import Staging, clean_export_leftovers, exclusive, finish_interrupted_export
from .engines import build_engines
from .fp32 import (
    check_parity,
    draw_images,
    export_fp32,
    load_checkpoint,
    reference_record,
    stage_sidecar,
    warn_stale_int8,
)
from .frame import bake_staged_frames
from .int8 import export_int8
from .options import ExportOptions, ExportResult, export_info, int8_paths, set_names


def export(
    model: str | Path, out: str | Path | None, options: ExportOptions | None = None
) -> ExportResult:
    """Run `socket-edge export` (see the module docstring); ``options`` is left as it is."""
    o = options or ExportOptions()
    model = Path(model)
    if model.suffix.lower() == ".onnx":
        return _engine_from_onnx(model, out, o)
    out = _checked_out(out, o)
    if o.trt:
        from .tensorrt import require_tensorrt

        require_tensorrt()  # before any work: engines are built where TensorRT is
    with exclusive(out, "export"):
        clean_export_leftovers(out, set_names(out))
        result = export_checkpoint(model, out, o)
        if o.trt:
            result.engines.append(build_engines(out, o))
    return result


def _engine_from_onnx(model: Path, out: str | Path | None, o: ExportOptions) -> ExportResult:
    """An engine from an exported ONNX model; ``out``, if given, names the engine."""
    if o.frame_size is not None:
        raise SocketEdgeError(
            f"frame_size is baked in when exporting a checkpoint; {model.name} takes what its "
            "sidecar's input shape says",
            settings=("frame_size",),
        )
    if not o.trt:
        raise SocketEdgeError(
            "is already an ONNX model: add trt to build a TensorRT engine from it, or pass a "
            "checkpoint (.pt) to export",
            model,
            settings=("trt",),
        )
    if out is not None:
        if Path(out).suffix.lower() not in (".engine", ".plan"):
            raise SocketEdgeError(
                "out names the engine when the model is ONNX (an .engine or .plan file)",
                out,
                settings=("out",),
            )
        o = replace(o, engine=Path(out))
    with exclusive(o.engine or model, "engine build"):
        finish_interrupted_export(model)  # a killed export's committed set, finished first
        return ExportResult(engines=[build_engines(model, o)])


def _checked_out(out: str | Path | None, o: ExportOptions) -> Path:
    """The FP32 model to write, once the options fit a checkpoint export."""
    if out is None:
        raise SocketEdgeError(
            "out is required when the model is a checkpoint (the .onnx file to write)",
            settings=("out",),
        )
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise SocketEdgeError("out must name an .onnx file", out, settings=("out",))
    if o.int8 and o.calib is None:
        raise SocketEdgeError(
            "int8 needs calib: a folder of unlabelled target images of the model's modality "
            "(about 500)",
            settings=("int8", "calib"),
        )
    return out


def export_checkpoint(model_path: Path, out: Path, o: ExportOptions) -> ExportResult:
    """Export ``model_path`` to ``out`` (+ INT8 set), staged and committed all at once."""
    ckpt = load_checkpoint(model_path)
    images = draw_images(ckpt, o)
    result = ExportResult()
    with Staging(out) as staging:
        fp32 = export_fp32(ckpt, out, o, staging)
        if o.verify:
            result.parity = check_parity(ckpt, fp32, o, images.calib)
        doc = make_sidecar(
            out,
            "onnx",
            "fp32",
            ckpt.meta,
            source=ckpt.source,
            parity=result.parity,
            export=export_info(o),
            **reference_record(fp32.path, images.reference, ckpt.meta),
        )
        stage_sidecar(staging, out, doc, fp32.sha256)
        if o.int8:
            result.int8 = export_int8(ckpt, fp32, out, images, o, staging)
        if o.frame_size is not None:
            bake_staged_frames(staging, ckpt.meta, o.frame_size)
        result.written = staging.commit()
    if not o.int8:
        warn_stale_int8(out, fp32.sha256)
    return result


__all__ = ["ExportOptions", "ExportResult", "build_engines", "export", "int8_paths", "set_names"]
