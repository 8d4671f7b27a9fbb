"""INT8 export steps: calibration ranges, the accuracy gate (the layers kept in float), the two
quantized models and the set written beside them (calibration cache, sidecars)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from socket_edge.calibration import gate
from socket_edge.calibration.qdq import VARIANTS

from ..artifact import make_sidecar
from ..console import info
from ..errors import Int8GateError
from ..files import sha256_file
from ..outputs import Staging
from .fp32 import Checkpoint, ExportImages, OnnxModel, reference_record, stage_sidecar
from .options import ExportOptions, export_info, int8_paths

if TYPE_CHECKING:
    import numpy as np

    from socket_edge.calibration.calibset import CalibrationSet
    from socket_edge.calibration.graph import Regions
    from socket_edge.calibration.ranges import ActivationRanges
    from socket_edge.monitor.record import ReferenceFrames

CALIB_BATCH = 32


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
    written = write_int8_set(ckpt, paths, ranges, record, export_info(o), images.reference, staging)
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
            **reference_record(staged, frames, ckpt.meta),
        )
        stage_sidecar(staging, target, doc, sha256_file(staged))
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
    stage_sidecar(staging, paths["cache"], doc, sha256_file(cache))
    written["cache"] = str(paths["cache"])
    return written
