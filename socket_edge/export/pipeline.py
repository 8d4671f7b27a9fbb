"""`socket-edge export`: checkpoint -> ONNX (+ parity) -> INT8 artifacts (+ gate) -> engines.

Every file of one run is written into a hidden staging folder beside ``--out`` and moved into
place only when everything succeeded (parity, calibration, accuracy gate), through a journal: a
failed or killed export leaves the previous set or the new one, never half of a set (see
socket_edge.outputs). One export at a time per ``--out`` (a lock); the next run removes what a
killed one left.

Images for the parity check: ``--verify-data`` if given, else the calibration folder, else a
few generated raw maps (depth 300..5000 mm with holes, IR/RGB uniform) -- the sidecar says which.
Images for the accuracy gate: ``--verify-data`` if given (labelled if its class subfolders are
the model's classes), else the images of the calibration folder left out of the calibration draw.
Reference statistics for `socket-edge monitor` (the sidecar's ``reference``): on ``--reference``
if given, else on the calibration folder; each model's own outputs (socket_edge.monitor.record).

The export runs in steps, each a function with a typed result, after Polygraphy's loaders:
`load_checkpoint` (Checkpoint), `draw_images` (ExportImages), `export_fp32` (OnnxModel, the graph
parsed once), `check_parity`, `calibration_ranges` (CalibrationRanges), `run_gate` (the layers kept
in float; Quantizer writes and scores the candidates), `write_int8_set`; `build_engines` finds its
EngineSource and hands it to `tensorrt.build_engine`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from socket_edge.calibration import gate
from socket_edge.calibration.qdq import VARIANTS

from ..artifact import make_sidecar, read_sidecar, sidecar_path, write_sidecar
from ..console import info, warn
from ..errors import ArtifactError, Int8GateError, SocketEdgeError
from ..files import sha256_file, write_json
from ..outputs import Staging, clean_export_leftovers, exclusive

if TYPE_CHECKING:
    import numpy as np

    from socket_edge.calibration.calibset import CalibrationSet
    from socket_edge.calibration.graph import Regions
    from socket_edge.calibration.ranges import ActivationRanges
    from socket_edge.monitor.record import ReferenceFrames

    from .tensorrt import CacheSource, EngineSettings

PARITY_IMAGES = 64
CALIB_BATCH = 32


@dataclass
class ExportOptions:
    opset: int = 17
    batch: tuple[int, ...] = (1, 8, 32)
    verify: bool = True
    verify_data: Path | None = None
    atol: float = 1e-4
    int8: bool = False
    calib: Path | None = None
    calib_size: int = 512
    calib_method: str = "entropy"
    holdout: int = 256
    max_drop: float = 1.0
    max_disagreement: float = 2.0  # percent of top-1 decisions INT8 may change vs FP32
    seed: int = 0
    trt: bool = False
    fp16: bool = False
    int8_mode: str = "auto"
    dla_core: int | None = None
    workspace_mib: int | None = None
    timing_cache: Path | None = None
    engine: Path | None = None
    frame_size: tuple[int, int] | None = None  # bake resize + crop of HxW frames into the graphs
    show_progress: bool = True
    reference: Path | None = None  # frames for the monitor's reference (default: calib)

    def __post_init__(self) -> None:
        from ..guard import check_settings

        check_settings(self, EXPORT_RULES)


# Each numeric option's range; a NaN, inf or out-of-range value fails before any work.
EXPORT_RULES: dict[str, dict[str, Any]] = {
    "opset": {"minimum": 13, "integer": True},
    "atol": {"above": 0},
    "calib_size": {"minimum": 1, "integer": True},
    "holdout": {"minimum": 0, "integer": True},
    "max_drop": {},  # any finite number (below 0 asks INT8 to beat FP32)
    "max_disagreement": {"minimum": 0, "maximum": 100},
    "seed": {"minimum": 0, "integer": True},
}


@dataclass
class ExportResult:
    written: list[Path] = field(default_factory=list)
    parity: dict[str, Any] | None = None
    int8: dict[str, Any] | None = None
    engines: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "written": [str(p) for p in self.written],
            "parity": self.parity,
            "int8": self.int8,
            "engines": self.engines,
        }


def int8_paths(out: str | Path) -> dict[str, Path]:
    """model.onnx -> model.int8.onnx, model.int8-cpu.onnx, model.calib.cache."""
    out = Path(out)
    stem = out.name[: -len(".onnx")] if out.name.lower().endswith(".onnx") else out.stem
    return {
        "int8-qdq": out.with_name(f"{stem}.int8.onnx"),
        "int8-cpu": out.with_name(f"{stem}.int8-cpu.onnx"),
        "cache": out.with_name(f"{stem}.calib.cache"),
    }


# ---------------------------------------------------------------------------------------------
# Entry point


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


def set_names(out: Path) -> list[str]:
    """The file names of one export set (artifacts and sidecars)."""
    files = [out, *int8_paths(out).values()]
    return [p.name for p in files] + [sidecar_path(p).name for p in files]


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
            export=_export_info(o),
            **_reference(fp32.path, images.reference, ckpt.meta),
        )
        _stage_sidecar(staging, out, doc, fp32.sha256)
        if o.int8:
            result.int8 = export_int8(ckpt, fp32, out, images, o, staging)
        if o.frame_size is not None:
            _bake_frames(staging, ckpt.meta, o.frame_size)
        result.written = staging.commit()
    if not o.int8:
        _warn_stale_int8(out, fp32.sha256)
    return result


def _export_info(o: ExportOptions) -> dict[str, Any]:
    return {"opset": o.opset, "batch": list(o.batch)}


def _stage_sidecar(staging: Staging, artifact: Path, doc: dict[str, Any], sha256: str) -> None:
    """Stage ``doc`` as the sidecar of ``artifact``, whose staged file has digest ``sha256``."""
    doc["sha256"] = sha256
    write_sidecar(artifact, doc, staging.path(sidecar_path(artifact)))


# ---------------------------------------------------------------------------------------------
# Steps: checkpoint, images, FP32 model, parity


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the network, its metadata and the sidecars' ``source`` record."""

    net: Any
    meta: dict[str, Any]
    source: dict[str, str]

    @property
    def modality(self) -> str:
        return str(self.meta["modality"])

    @property
    def size(self) -> int:
        return int(self.meta["image_size"])


def load_checkpoint(path: Path) -> Checkpoint:
    from socket_edge.models.checkpoint import load_checkpoint as load

    net, meta = load(path)  # read_checkpoint names a foreign file in one line
    return Checkpoint(net, meta, {"path": str(path), "sha256": sha256_file(path)})


@dataclass(frozen=True)
class ExportImages:
    """The images of one export (see the module docstring); None where not needed."""

    calib: CalibrationSet | None
    gate: CalibrationSet | None
    reference: ReferenceFrames | None  # the monitor's reference frames


def draw_images(ckpt: Checkpoint, o: ExportOptions) -> ExportImages:
    from socket_edge.calibration import calibset

    calib = None
    if o.int8:
        assert o.calib is not None
        calib = calibset.draw(o.calib, ckpt.modality, ckpt.size, o.calib_size, o.seed, o.holdout)
    gate_set = _gate_set(o, ckpt, calib) if calib is not None else None
    return ExportImages(calib, gate_set, _reference_frames(o, ckpt))


def _gate_set(o: ExportOptions, ckpt: Checkpoint, calib: CalibrationSet) -> CalibrationSet:
    """Images for the accuracy gate: verify_data, else the calibration draw's held-back ones."""
    if o.verify_data is not None:
        return _verify_data(o, ckpt, max(o.holdout, 1))
    if calib.holdout:
        # Same folder and loader, the held-back images in place of the drawn ones.
        n = len(calib.holdout)
        return replace(calib, files=calib.holdout, holdout=[], requested=n, sha256="")
    warn(
        f"{calib.root}: no images left for the accuracy gate after the calibration draw; "
        "the gate scores the calibration images themselves (pass --verify-data DIR, or a "
        "smaller --calib-size)"
    )
    return calib


def _verify_data(o: ExportOptions, ckpt: Checkpoint, size: int) -> CalibrationSet:
    """A seeded draw of ``size`` images of the verify_data folder."""
    from socket_edge.calibration import calibset

    assert o.verify_data is not None
    with _naming("verify_data"):
        return calibset.draw(
            o.verify_data,
            ckpt.modality,
            ckpt.size,
            size,
            o.seed,
            0,
            what="verify_data folder",
            warn_short=False,
        )


@contextlib.contextmanager
def _naming(*settings: str) -> Iterator[None]:
    """Errors raised inside name ``settings`` as well (the CLI shows them as flags)."""
    try:
        yield
    except SocketEdgeError as exc:
        exc.settings = (*exc.settings, *settings)
        raise


def _reference_frames(o: ExportOptions, ckpt: Checkpoint) -> ReferenceFrames | None:
    """Frames for the monitor's reference statistics: reference, else calib, else None."""
    folder = o.reference if o.reference is not None else o.calib
    if folder is None:
        return None
    from socket_edge.monitor.record import draw_frames

    frames = folder if hasattr(folder, "unlabelled") else Path(folder)  # or a bag topic
    return draw_frames(frames, ckpt.modality, ckpt.size, o.seed)


def _reference(model: Path, frames: ReferenceFrames | None, meta: dict) -> dict[str, Any]:
    """``{"reference": ...}`` for make_sidecar (computed with ``model``'s outputs), or {}."""
    if frames is None:
        return {}
    from socket_edge.monitor.record import reference_for

    return {"reference": reference_for(model, frames, meta)}


@dataclass(frozen=True)
class OnnxModel:
    """The staged FP32 ONNX model: its file, digest and graph (parsed once, checked)."""

    path: Path
    sha256: str
    graph: Any  # onnx.ModelProto


def export_fp32(ckpt: Checkpoint, out: Path, o: ExportOptions, staging: Staging) -> OnnxModel:
    """Write the FP32 model for ``out`` into ``staging``; the ONNX checker must accept it."""
    from socket_edge.calibration.graph import load_model

    from .onnx_export import export_onnx

    path = staging.path(out)
    export_onnx(
        ckpt.net,
        path,
        ckpt.modality,
        ckpt.size,
        o.opset,
        metadata={
            "classes": list(ckpt.meta["classes"]),
            "modality": ckpt.modality,
            "encoding": dict(ckpt.meta["encoding"]),
        },
    )
    return OnnxModel(path, sha256_file(path), load_model(path))


def check_parity(
    ckpt: Checkpoint, fp32: OnnxModel, o: ExportOptions, calib: CalibrationSet | None
) -> dict[str, Any]:
    """ONNX Runtime against torch on the parity images; an ArtifactError unless they agree."""
    from .parity import parity_check

    x, source = _parity_images(ckpt, o, calib)
    parity = parity_check(ckpt.net, fp32.path, x, list(o.batch), o.atol, source)
    if not parity.get("finite", True):
        raise ArtifactError(
            f"parity check failed: NaN/inf logits (torch or ONNX Runtime) on {source}; "
            "nothing written",
            fp32.path.name,
        )
    if not parity["passed"]:
        raise ArtifactError(
            f"parity check failed: ONNX Runtime vs torch max |logit diff| "
            f"{parity['max_abs_logit_diff']:.3g} (tolerance {parity['tolerance']:.3g}), top-1 "
            f"agreement {100 * parity['top1_agreement']:.1f}% on {source}; nothing written",
            fp32.path.name,
        )
    info(
        f"parity: max |logit diff| {parity['max_abs_logit_diff']:.2g}, top-1 agreement "
        f"{100 * parity['top1_agreement']:.1f}% on {source}"
    )
    return parity


def _parity_images(
    ckpt: Checkpoint, o: ExportOptions, calib: CalibrationSet | None
) -> tuple[np.ndarray, str]:
    """The parity check's inputs and what they are (recorded in the sidecar)."""
    from .onnx_export import example_input

    if o.verify_data is not None:
        pool = _verify_data(o, ckpt, PARITY_IMAGES)
        return pool.load(pool.files), f"{len(pool.files)} images of {o.verify_data}"
    if calib is not None:
        files = (calib.holdout + calib.files)[:PARITY_IMAGES]
        return calib.load(files), f"{len(files)} images of {calib.root}"
    x = example_input(ckpt.modality, ckpt.size, batch=16, seed=1).numpy()
    return x, "16 generated raw maps (no --verify-data or --calib given)"


def _warn_stale_int8(out: Path, fp32_sha: str) -> None:
    """INT8 files left beside a re-exported model.onnx belong to the old model: say so."""
    for key, path in int8_paths(out).items():
        if not path.exists():
            continue
        try:
            calibration = read_sidecar(path).get("calibration") or {}
        except ArtifactError:
            calibration = {}
        if calibration.get("model_sha256") != fp32_sha:
            warn(
                f"{path}: left from an earlier export of another model ({key}); it does not "
                f"match the new {out.name}: export again with --int8 --calib DIR, or delete it"
            )


# ---------------------------------------------------------------------------------------------
# INT8 steps: calibration ranges, gate, quantise, write set


def export_int8(
    ckpt: Checkpoint,
    fp32: OnnxModel,
    out: Path,
    images: ExportImages,
    o: ExportOptions,
    staging: Staging,
) -> dict[str, Any]:
    """Calibrate, gate and stage the INT8 set beside ``out``; the ExportResult's ``int8``."""
    assert images.calib is not None and images.gate is not None
    paths = int8_paths(out)
    ranges = calibration_ranges(fp32, images.calib, o)
    quantizer = Quantizer(fp32.path, ranges, _gate_scores(fp32, images.gate, ckpt), staging, paths)
    budget = gate.Budget(o.max_drop, o.max_disagreement)
    fit = run_gate(quantizer, budget, images.calib.root, o.show_progress)
    quantizer.quantize(fit.float_layers, final=True)
    if fit.float_layers:
        info(
            f"kept {len(fit.float_layers)} layer(s) in float to stay within budget: "
            + ", ".join(fit.float_layers)
        )
    gate_doc = _gate_doc(fit, quantizer, images, o)
    record = _calibration_record(fp32, out, images.calib, ranges, fit, gate_doc, o)
    written = write_int8_set(
        ckpt, paths, ranges, record, _export_info(o), images.reference, staging
    )
    return {
        "stamp": ranges.stamp,
        "paths": written,
        "gate": gate_doc,
        "set": images.calib.describe(),
    }


@dataclass(frozen=True)
class CalibrationRanges:
    """Activation ranges of the FP32 model, with the graph split they were collected for."""

    regions: Regions
    ranges: ActivationRanges
    stamp: str  # model + calibration set + method


def calibration_ranges(
    fp32: OnnxModel, calib: CalibrationSet, o: ExportOptions
) -> CalibrationRanges:
    from socket_edge.calibration import calibset, graph, ranges

    regions = graph.regions(fp32.graph)
    stamp = calibset.stamp(fp32.sha256, calib.sha256, o.calib_method)
    info(f"calibrating on {len(calib)} images of {calib.root} ({o.calib_method})")
    collected = ranges.collect(
        fp32.path,
        None,
        regions.activations,
        o.calib_method,
        batch_factory=lambda: calib.batches(CALIB_BATCH),
        total_batches=math.ceil(len(calib) / CALIB_BATCH),
        show_progress=o.show_progress,
        model=fp32.graph,
    )
    return CalibrationRanges(regions, collected, stamp)


@dataclass(frozen=True)
class GateScores:
    """The gate images and FP32's logits on them: what every INT8 candidate is scored against."""

    x: np.ndarray
    labels: np.ndarray | None
    fp32_logits: np.ndarray

    def compare(self, model: Path) -> gate.Comparison:
        from .parity import ort_logits, ort_session

        return gate.compare(self.fp32_logits, ort_logits(ort_session(model), self.x), self.labels)


def _gate_scores(fp32: OnnxModel, gate_set: CalibrationSet, ckpt: Checkpoint) -> GateScores:
    from .parity import ort_logits, ort_session

    x = gate_set.load(gate_set.files)
    labels = gate_set.labels(gate_set.files, list(ckpt.meta["classes"]))
    return GateScores(x, labels, ort_logits(ort_session(fp32.path), x))


@dataclass
class Quantizer:
    """Quantizes both INT8 variants with some layers kept in float, and scores them."""

    fp32: Path
    ranges: CalibrationRanges
    scores: GateScores
    staging: Staging
    paths: dict[str, Path]
    latest: dict[str, gate.Comparison] = field(default_factory=dict)  # per variant
    tried: dict[tuple[str, ...], list[gate.Comparison]] = field(default_factory=dict)

    def quantize(
        self, extra_float: list[str], final: bool = False, variants: tuple[str, ...] = VARIANTS
    ) -> list[gate.Comparison]:
        """Write ``variants`` with ``extra_float`` kept in float (into the set if ``final``)."""
        from socket_edge.calibration import qdq

        float_nodes = self.ranges.regions.float_nodes + extra_float
        for variant in variants:
            target = (
                self.staging.path(self.paths[variant])
                if final
                else self.staging.scratch(f"{variant}.onnx")
            )
            qdq.quantize(self.fp32, target, self.ranges.ranges, variant, float_nodes)
            self.latest[variant] = self.scores.compare(target)
        scored = [self.latest[v] for v in variants]
        if tuple(variants) == VARIANTS:
            self.tried[tuple(extra_float)] = scored
        return scored

    @property
    def first(self) -> list[gate.Comparison]:
        """Both variants with no layer kept in float beyond the encoder."""
        return self.tried[()]


def run_gate(
    quantizer: Quantizer, budget: gate.Budget, root: Path, show_progress: bool
) -> gate.GateResult:
    """The layers to keep in float for INT8 to stay within ``budget``; Int8GateError if none do."""

    def excess(layers: list[str], variants: tuple[str, ...] = VARIANTS) -> float:
        return max(budget.excess(c) for c in quantizer.quantize(layers, variants=variants))

    initial = excess([])
    weighted = quantizer.ranges.regions.weighted_nodes
    n_gate = len(quantizer.scores.x)
    if initial > 0:  # the final figures are reported by the caller
        info(
            f"INT8 {budget.describe(gate.worst(quantizer.first, budget))} on {n_gate} images: "
            "over budget, looking for the layers to keep in float"
        )
    fit = gate.fit_budget(
        excess,
        weighted,
        0.0,
        initial_drop=initial,
        progress=(lambda msg: info(f"  gate: {msg}")) if show_progress else None,
        # ranking on the TensorRT model alone halves its cost; the budgets are checked on both
        rank=lambda layer: excess([layer], variants=("int8-qdq",)),
    )
    if not fit.passed:
        raise _over_budget(fit, quantizer, budget, root)
    return fit


def _over_budget(
    fit: gate.GateResult, quantizer: Quantizer, budget: gate.Budget, root: Path
) -> Int8GateError:
    first = gate.worst(quantizer.first, budget)
    best = gate.worst(quantizer.tried.get(tuple(fit.float_layers), quantizer.first), budget)
    return Int8GateError(
        f"INT8 stays over budget however many of the "
        f"{len(quantizer.ranges.regions.weighted_nodes)} weighted layers are kept in float: "
        f"with none, {budget.describe(first)}; at best ({len(fit.float_layers)} in float) "
        f"{budget.describe(best)}, on {len(quantizer.scores.x)} images; most sensitive layers: "
        f"{', '.join(fit.ranked()[:5]) or 'none ranked'}; nothing written (raise "
        "max_disagreement / max_drop, or calibrate on more / more representative images, or "
        "try another calib_method)",
        root,
        settings=("max_disagreement", "max_drop", "calib_method"),
    )


def _gate_doc(
    fit: gate.GateResult, quantizer: Quantizer, images: ExportImages, o: ExportOptions
) -> dict[str, Any]:
    """The sidecars' record of the gate, once the final INT8 models are scored."""
    assert images.calib is not None and images.gate is not None
    final = [quantizer.latest[v] for v in VARIANTS]
    return {
        "images": {
            "source": str(images.gate.root),
            "n": len(images.gate.files),
            "labelled": quantizer.scores.labels is not None,
            "held_back": images.gate.root == images.calib.root and images.gate is not images.calib,
        },
        "max_drop": o.max_drop,
        "max_disagreement": o.max_disagreement,
        "drop_points": _worst_of(final, "drop"),
        "disagreement_percent": _worst_of(final, "disagreement"),
        "passed": True,
        "initial_drop_points": _worst_of(quantizer.first, "drop"),
        "initial_disagreement_percent": _worst_of(quantizer.first, "disagreement"),
        "float_layers": fit.float_layers,
        "evaluations": fit.evaluations,
        "sensitivity": [
            {"node": k, "excess_points_if_float": fit.sensitivity[k]} for k in fit.ranked()
        ],
        "variants": {v: c.to_dict() for v, c in quantizer.latest.items()},
    }


def _worst_of(values: list[gate.Comparison], key: str) -> float | None:
    """The largest ``key`` of ``values``; None for a drop without labels."""
    if key == "drop" and not values[0].labelled:
        return None
    return max(getattr(c, key) for c in values)


def _calibration_record(
    fp32: OnnxModel,
    out: Path,
    calib: CalibrationSet,
    ranges: CalibrationRanges,
    fit: gate.GateResult,
    gate_doc: dict[str, Any],
    o: ExportOptions,
) -> dict[str, Any]:
    """The ``calibration`` field of every INT8 sidecar."""
    return {
        "stamp": ranges.stamp,
        "method": o.calib_method,
        "model_sha256": fp32.sha256,
        "fp32_artifact": out.name,
        "set": calib.describe(),
        "activations": len(ranges.ranges.ranges),
        "float_nodes": {"encoder": ranges.regions.float_nodes, "gate": fit.float_layers},
        "gate": gate_doc,
        "cache": int8_paths(out)["cache"].name,
    }


def write_int8_set(
    ckpt: Checkpoint,
    paths: dict[str, Path],
    ranges: CalibrationRanges,
    calibration: dict[str, Any],
    export_info: dict[str, Any],
    frames: ReferenceFrames | None,
    staging: Staging,
) -> dict[str, str]:
    """Stage the calibration cache and the sidecars of the staged INT8 models; their paths."""
    from socket_edge.calibration import cache as trt_cache

    act = ranges.ranges
    cache = staging.path(paths["cache"])
    amax = {name: act.amax(name) for name in act.ranges}
    cache.write_text(trt_cache.format_cache(amax), encoding="ascii")
    written = {}
    for variant in VARIANTS:
        target, staged = paths[variant], staging.targets[paths[variant]]
        doc = make_sidecar(
            target,
            "onnx",
            variant,
            ckpt.meta,
            source=ckpt.source,
            export=export_info,
            calibration=calibration,
            **_reference(staged, frames, ckpt.meta),
        )
        _stage_sidecar(staging, target, doc, sha256_file(staged))
        written[variant] = str(target)
    doc = make_sidecar(
        paths["cache"],
        "calibration-cache",
        "int8",
        ckpt.meta,
        source=ckpt.source,
        calibration={
            **calibration,
            "header": trt_cache.header(),
            "ranges": act.to_dict()["ranges"],
        },
    )
    _stage_sidecar(staging, paths["cache"], doc, sha256_file(cache))
    written["cache"] = str(paths["cache"])
    return written


def _bake_frames(staging: Staging, meta: dict, frame: tuple[int, int]) -> None:
    """Every staged ONNX model takes ``frame``-sized raw frames (resize + crop in the graph);
    their sidecars say so, with the check of in-graph against host preprocessing."""
    renamed: dict[str, str] = {}  # FP32 sha256 before -> after the frame nodes
    for target in [t for t in staging.targets if t.suffix.lower() == ".onnx"]:
        before, after = _bake_frame(staging, target, meta, frame)
        if before is not None:
            renamed[before] = after
    # The INT8 models and the cache were calibrated on the FP32 graph before its frame nodes were
    # added; their lineage now points at the FP32 model as written (see artifact.check_lineage).
    for target, tmp in staging.targets.items():
        if target.suffix.lower() != ".json":
            continue
        doc = json.loads(tmp.read_text(encoding="utf-8"))
        calibration = doc.get("calibration") or {}
        if calibration.get("model_sha256") in renamed:
            calibration["model_sha256"] = renamed[calibration["model_sha256"]]
            write_json(tmp, doc)


def _bake_frame(
    staging: Staging, target: Path, meta: dict, frame: tuple[int, int]
) -> tuple[str | None, str]:
    """Bake the frame nodes into one staged model and update its staged sidecar; for the FP32
    model its sha256 before and after (else None and the new one)."""
    from .frame import bake_frame, example_frames, frame_parity, frame_preprocess

    tmp, side = staging.targets[target], staging.targets[sidecar_path(target)]
    plain = staging.scratch(f"plain-{target.name}")
    os.replace(tmp, plain)
    doc = json.loads(side.read_text(encoding="utf-8"))
    nodes = bake_frame(plain, tmp, frame, doc["preprocess"])
    check = frame_parity(plain, tmp, example_frames(meta["modality"], frame), doc["preprocess"])
    doc["preprocess"] = {**frame_preprocess(doc["preprocess"], frame), "nodes": nodes}
    doc["preprocess"]["parity"] = check
    doc["input"] = {**doc["input"], "shape": [*doc["input"]["shape"][:2], *frame]}
    before = doc["sha256"] if doc.get("precision") == "fp32" else None
    doc["sha256"] = sha256_file(tmp)
    write_json(side, doc)
    info(
        f"{target.name}: takes {frame[0]}x{frame[1]} frames (resize + crop in the graph; "
        f"max |logit diff| vs host resize {check['max_abs_logit_diff']:.2g})"
    )
    return before, doc["sha256"]


# ---------------------------------------------------------------------------------------------
# TensorRT


def build_engines(onnx_path: Path, o: ExportOptions) -> dict[str, Any]:
    """Build the engine asked for by ``o`` from ``onnx_path`` (an export's model.onnx, or its
    model.int8.onnx) and the artifacts beside it."""
    from .tensorrt import build_engine, engine_path, require_tensorrt

    doc, model = _checked_onnx(onnx_path, o)
    major = int(require_tensorrt().split(".")[0])
    settings = _engine_settings(o, doc)
    if doc["precision"] == "int8-cpu":
        raise SocketEdgeError(
            f"{onnx_path.name} is the ONNX Runtime CPU model; TensorRT builds "
            "from model.onnx or model.int8.onnx"
        )
    source = EngineSource(onnx_path, doc, model, doc.get("calibration") or {})
    if settings.int8 and doc["precision"] == "fp32":
        source = _int8_source(onnx_path, doc, model, o, major)
    settings = replace(settings, float_layers=_float_layers(source, settings.int8))
    out = o.engine or engine_path(onnx_path, settings)
    return build_engine(source.path, out, settings, source.doc, source.batcher, source.cache)


def _checked_onnx(path: Path, o: ExportOptions) -> tuple[dict[str, Any], Any]:
    """``path``'s sidecar and graph, verified (hash, metadata, external data) before onnx.load
    or TensorRT reads the graph, so that a corrupt file fails before TensorRT is looked for."""
    from socket_edge.artifact import check_external_data, verify_artifact
    from socket_edge.calibration import graph

    doc = verify_artifact(path) if o.verify else read_sidecar(path)
    check_external_data(path)
    return doc, graph.load_model(path)


def _engine_settings(o: ExportOptions, doc: dict[str, Any]) -> EngineSettings:
    from .tensorrt import EngineSettings, profile_from

    return EngineSettings(
        fp16=o.fp16,
        int8=o.int8 or doc["precision"] == "int8-qdq",
        int8_mode=o.int8_mode,
        batch=profile_from(list(o.batch)),
        dla_core=o.dla_core,
        workspace_mib=o.workspace_mib,
        timing_cache=o.timing_cache,
    )


@dataclass(frozen=True)
class EngineSource:
    """The ONNX model TensorRT parses, and what an INT8 build takes from beside it."""

    path: Path
    doc: dict[str, Any]  # its sidecar
    graph: Any  # onnx.ModelProto
    calibration: dict[str, Any]  # the calibration record naming the gate's float layers
    batcher: Any = None  # implicit INT8: the calibration images, if given
    cache: CacheSource | None = None  # implicit INT8: the calibration cache


def _int8_source(
    onnx_path: Path, doc: dict[str, Any], model: Any, o: ExportOptions, major: int
) -> EngineSource:
    """INT8 from the FP32 model: its Q/DQ sibling (explicit) or a calibrator (implicit)."""
    from .tensorrt import resolve_int8_mode

    if resolve_int8_mode(o.int8_mode, major, o.dla_core) == "explicit":
        return _qdq_source(onnx_path, doc, o)
    return _implicit_source(onnx_path, doc, model, o)


def _qdq_source(onnx_path: Path, doc: dict[str, Any], o: ExportOptions) -> EngineSource:
    """model.int8.onnx beside ``onnx_path``, checked to be calibrated from it."""
    from socket_edge.artifact import check_external_data, verify_artifact
    from socket_edge.calibration import graph

    source = int8_paths(onnx_path)["int8-qdq"]
    if not source.exists():
        raise ArtifactError(
            f"no {source.name} beside it: export the checkpoint with INT8 calibration (calib) "
            "first, or build with int8_mode implicit and calib",
            onnx_path,
            settings=("calib", "int8_mode"),
        )
    source_doc = verify_artifact(source) if o.verify else read_sidecar(source)
    check_external_data(source)
    calibration = source_doc.get("calibration") or {}
    if calibration.get("model_sha256") != doc.get("sha256"):
        raise ArtifactError(
            f"{source.name} was calibrated for another {onnx_path.name} "
            "(model sha256 differs): export again with INT8 calibration",
            source,
        )
    return EngineSource(source, source_doc, graph.load_model(source, check=False), calibration)


def _implicit_source(
    onnx_path: Path, doc: dict[str, Any], model: Any, o: ExportOptions
) -> EngineSource:
    """The FP32 model with TensorRT's calibrator: the cache beside it, or the calib images."""
    from socket_edge.calibration import calibset
    from socket_edge.calibration.batcher import CalibrationBatcher

    from .tensorrt import CacheSource

    path = int8_paths(onnx_path)["cache"]
    batcher, stamp, record = None, None, None
    if o.calib is not None:
        cs = calibset.draw(
            o.calib,
            doc["modality"],
            int(doc["preprocess"]["image_size"]),
            o.calib_size,
            o.seed,
            0,
        )
        stamp = calibset.stamp(doc["sha256"], cs.sha256, o.calib_method)
        batcher = CalibrationBatcher.from_set(cs, 8)
        record = {
            "stamp": stamp,
            "method": o.calib_method,
            "computed_by": "TensorRT IInt8EntropyCalibrator2",
            "model_sha256": doc["sha256"],
            "fp32_artifact": onnx_path.name,
            "set": cs.describe(),
        }
    calibration = doc.get("calibration") or {}
    if path.exists():
        with contextlib.suppress(ArtifactError):
            calibration = read_sidecar(path).get("calibration") or {}
    cache = CacheSource(path, stamp, doc["sha256"], calibration=record)
    return EngineSource(onnx_path, doc, model, calibration, batcher, cache)


def _float_layers(source: EngineSource, int8: bool) -> list[str]:
    """ONNX nodes to pin to FP32: the encoder, and (INT8) the layers the gate kept in float."""
    from socket_edge.calibration import graph

    encoder = set(graph.regions(source.graph).float_nodes)
    pinned = [
        n.name
        for n in source.graph.graph.node
        if n.name in encoder and n.op_type not in ("QuantizeLinear", "DequantizeLinear")
    ]
    gate_layers = (source.calibration.get("float_nodes") or {}).get("gate", []) if int8 else []
    return pinned + list(gate_layers)


__all__ = ["ExportOptions", "ExportResult", "export", "int8_paths", "build_engines"]
