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
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..artifact import make_sidecar, read_sidecar, sidecar_path, write_sidecar
from ..console import info, warn
from ..errors import ArtifactError, Int8GateError, SocketEdgeError
from ..files import sha256_file, write_json
from ..outputs import Staging, clean_export_leftovers, exclusive

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


def export(
    model: str | Path, out: str | Path | None, options: ExportOptions | None = None
) -> ExportResult:
    """Run `socket-edge export` (see the module docstring)."""
    o = options or ExportOptions()
    model = Path(model)
    if model.suffix.lower() == ".onnx":
        if o.frame_size is not None:
            raise SocketEdgeError(
                f"--frame-size is baked in when exporting a checkpoint; {model.name} takes "
                "what its sidecar's input shape says"
            )
        if not o.trt:
            raise SocketEdgeError(
                f"{model} is already an ONNX model: add --trt to build a TensorRT "
                "engine from it, or pass a checkpoint (.pt) to export"
            )
        if out is not None:
            if Path(out).suffix.lower() not in (".engine", ".plan"):
                raise SocketEdgeError(
                    f"--out names the engine when MODEL is ONNX (.engine), got {out}"
                )
            o.engine = Path(out)
        with exclusive(o.engine or model, "engine build"):
            return ExportResult(engines=[build_engines(model, o)])
    if out is None:
        raise SocketEdgeError(
            "--out is required when MODEL is a checkpoint (e.g. --out model.onnx)"
        )
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise SocketEdgeError(f"--out must name an .onnx file, got {out}")
    if o.int8 and o.calib is None:
        raise SocketEdgeError(
            "--int8 needs --calib DIR: unlabelled target images of the model's modality (about 500)"
        )
    if o.trt:
        from .tensorrt import require_tensorrt

        require_tensorrt()  # before any work: engines are built where TensorRT is
    with exclusive(out, "export"):
        clean_export_leftovers(out, set_names(out))
        result = export_checkpoint(model, out, o)
        if o.trt:
            result.engines.append(build_engines(out, o))
    return result


def set_names(out: Path) -> list[str]:
    """The file names of one export set (artifacts and sidecars)."""
    files = [out, *int8_paths(out).values()]
    return [p.name for p in files] + [sidecar_path(p).name for p in files]


def export_checkpoint(model_path: Path, out: Path, o: ExportOptions) -> ExportResult:
    from socket_edge.calibration import calibset
    from socket_edge.models.checkpoint import load_checkpoint

    from .onnx_export import export_onnx

    net, meta = load_checkpoint(model_path)  # read_checkpoint names a foreign file in one line
    modality, size = meta["modality"], int(meta["image_size"])
    calib_set = None
    if o.int8:
        assert o.calib is not None
        calib_set = calibset.draw(o.calib, modality, size, o.calib_size, o.seed, o.holdout)
    gate_set = _gate_set(o, modality, size, calib_set)
    ref_frames = _reference_frames(o, modality, size)
    result = ExportResult()
    with Staging(out) as staging:
        fp32 = staging.path(out)
        export_onnx(
            net,
            fp32,
            modality,
            size,
            o.opset,
            metadata={
                "classes": list(meta["classes"]),
                "modality": modality,
                "encoding": dict(meta["encoding"]),
            },
        )
        from socket_edge.calibration.graph import load_model

        load_model(fp32)  # the checker must accept what we ship
        fp32_sha = sha256_file(fp32)
        source = {"path": str(model_path), "sha256": sha256_file(model_path)}
        export_info = {"opset": o.opset, "batch": list(o.batch)}
        if o.verify:
            result.parity = _parity(net, fp32, o, modality, size, calib_set, gate_set)
        doc = make_sidecar(
            out,
            "onnx",
            "fp32",
            meta,
            source=source,
            parity=result.parity,
            export=export_info,
            **_reference(fp32, ref_frames, meta),
        )
        doc["sha256"] = fp32_sha
        write_sidecar(out, doc, staging.path(sidecar_path(out)))
        if o.int8:
            assert calib_set is not None and gate_set is not None
            result.int8 = _int8(
                fp32,
                fp32_sha,
                out,
                meta,
                calib_set,
                gate_set,
                o,
                staging,
                source,
                export_info,
                ref_frames=ref_frames,
            )
        if o.frame_size is not None:
            _bake_frames(staging, meta, o.frame_size)
        result.written = staging.commit()
    if not o.int8:
        _warn_stale_int8(out, fp32_sha)
    return result


def _bake_frames(staging: Staging, meta: dict, frame: tuple[int, int]) -> None:
    """Every staged ONNX model takes ``frame``-sized raw frames (resize + crop in the graph);
    their sidecars say so, with the check of in-graph against host preprocessing."""
    import json

    from .frame import bake_frame, example_frames, frame_parity, frame_preprocess

    frames = example_frames(meta["modality"], frame)
    renamed: dict[str, str] = {}  # FP32 sha256 before -> after the frame nodes
    for target, tmp in list(staging.targets.items()):
        if target.suffix.lower() != ".onnx":
            continue
        plain = staging.scratch(f"plain-{target.name}")
        os.replace(tmp, plain)
        doc = json.loads(staging.targets[sidecar_path(target)].read_text(encoding="utf-8"))
        nodes = bake_frame(plain, tmp, frame, doc["preprocess"])
        check = frame_parity(plain, tmp, frames, doc["preprocess"])
        doc["preprocess"] = {**frame_preprocess(doc["preprocess"], frame), "nodes": nodes}
        doc["preprocess"]["parity"] = check
        doc["input"] = {**doc["input"], "shape": [*doc["input"]["shape"][:2], *frame]}
        if doc.get("precision") == "fp32":
            renamed[doc["sha256"]] = sha256_file(tmp)
        doc["sha256"] = sha256_file(tmp)
        write_json(staging.targets[sidecar_path(target)], doc)
        info(
            f"{target.name}: takes {frame[0]}x{frame[1]} frames (resize + crop in the graph; "
            f"max |logit diff| vs host resize {check['max_abs_logit_diff']:.2g})"
        )
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


def _reference_frames(o: ExportOptions, modality: str, size: int):
    """Frames for the monitor's reference statistics: --reference, else --calib, else None."""
    folder = o.reference if o.reference is not None else o.calib
    if folder is None:
        return None
    from socket_edge.monitor.record import draw_frames

    return draw_frames(Path(folder), modality, size, o.seed)


def _reference(model: Path, frames, meta: dict) -> dict[str, Any]:
    """``{"reference": ...}`` for make_sidecar (computed with ``model``'s outputs), or {}."""
    if frames is None:
        return {}
    from socket_edge.monitor.record import reference_for

    return {"reference": reference_for(model, frames, meta)}


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
# Parity


def _gate_set(o: ExportOptions, modality: str, size: int, calib_set):
    """Images for the accuracy gate (see the module docstring); None without --int8."""
    from socket_edge.calibration import calibset

    if not o.int8:
        return None
    if o.verify_data is not None:
        return calibset.draw(
            o.verify_data,
            modality,
            size,
            max(o.holdout, 1),
            o.seed,
            0,
            what="--verify-data folder",
            warn_short=False,
        )
    assert calib_set is not None
    if calib_set.holdout:
        return calibset.CalibrationSet(
            calib_set.root,
            modality,
            size,
            calib_set.holdout,
            [],
            len(calib_set.holdout),
            o.seed,
            _dataset=calib_set._dataset,
        )
    warn(
        f"{calib_set.root}: no images left for the accuracy gate after the calibration draw; "
        "the gate scores the calibration images themselves (pass --verify-data DIR, or a "
        "smaller --calib-size)"
    )
    return calib_set


def _parity(net, fp32: Path, o: ExportOptions, modality: str, size: int, calib_set, gate_set):
    from socket_edge.calibration import calibset

    from .onnx_export import example_input
    from .parity import parity_check

    if o.verify_data is not None:
        pool = calibset.draw(
            o.verify_data,
            modality,
            size,
            PARITY_IMAGES,
            o.seed,
            0,
            what="--verify-data folder",
            warn_short=False,
        )
        x, source = pool.load(pool.files), f"{len(pool.files)} images of {o.verify_data}"
    elif calib_set is not None:
        files = (calib_set.holdout + calib_set.files)[:PARITY_IMAGES]
        x, source = calib_set.load(files), f"{len(files)} images of {calib_set.root}"
    else:
        x = example_input(modality, size, batch=16, seed=1).numpy()
        source = "16 generated raw maps (no --verify-data or --calib given)"
    parity = parity_check(net, fp32, x, list(o.batch), o.atol, source)
    if not parity.get("finite", True):
        raise ArtifactError(
            f"parity check failed: NaN/inf logits (torch or ONNX Runtime) on {source}; "
            "nothing written",
            fp32.name,
        )
    if not parity["passed"]:
        raise ArtifactError(
            f"parity check failed: ONNX Runtime vs torch max |logit diff| "
            f"{parity['max_abs_logit_diff']:.3g} (tolerance {parity['tolerance']:.3g}), top-1 "
            f"agreement {100 * parity['top1_agreement']:.1f}% on {source}; nothing written",
            fp32.name,
        )
    info(
        f"parity: max |logit diff| {parity['max_abs_logit_diff']:.2g}, top-1 agreement "
        f"{100 * parity['top1_agreement']:.1f}% on {source}"
    )
    return parity


# ---------------------------------------------------------------------------------------------
# INT8


def _int8(
    fp32: Path,
    fp32_sha: str,
    out: Path,
    meta: dict,
    calib_set,
    gate_set,
    o: ExportOptions,
    staging: Staging,
    source: dict,
    export_info: dict,
    ref_frames=None,
) -> dict[str, Any]:
    from socket_edge.calibration import cache as trt_cache
    from socket_edge.calibration import calibset, gate, graph, qdq, ranges

    from .parity import ort_logits, ort_session

    paths = int8_paths(out)
    regions = graph.regions(graph.load_model(fp32, check=False))
    stamp = calibset.stamp(fp32_sha, calib_set.sha256, o.calib_method)
    n_batches = math.ceil(len(calib_set) / CALIB_BATCH)
    info(f"calibrating on {len(calib_set)} images of {calib_set.root} ({o.calib_method})")
    act_ranges = ranges.collect(
        fp32,
        None,
        regions.activations,
        o.calib_method,
        batch_factory=lambda: calib_set.batches(CALIB_BATCH),
        total_batches=n_batches,
        show_progress=o.show_progress,
    )
    x_gate = gate_set.load(gate_set.files)
    labels = gate_set.labels(gate_set.files, list(meta["classes"]))
    fp32_logits = ort_logits(ort_session(fp32), x_gate)
    budget = gate.Budget(o.max_drop, o.max_disagreement)
    comparisons: dict[str, gate.Comparison] = {}
    tried: dict[tuple[str, ...], list[gate.Comparison]] = {}  # every variant, per float set

    def quantize_all(extra_float: list[str], final: bool, variants=qdq.VARIANTS) -> float:
        """Quantize ``variants`` with ``extra_float`` kept in float; points over the budgets."""
        for variant in variants:
            target = staging.path(paths[variant]) if final else staging.scratch(f"{variant}.onnx")
            qdq.quantize(fp32, target, act_ranges, variant, regions.float_nodes + extra_float)
            logits = ort_logits(ort_session(target), x_gate)
            comparisons[variant] = gate.compare(fp32_logits, logits, labels)
        if tuple(variants) == qdq.VARIANTS:
            tried[tuple(extra_float)] = [comparisons[v] for v in variants]
        return max(budget.excess(comparisons[v]) for v in variants)

    n_gate = len(gate_set.files)
    initial = quantize_all([], final=False)
    first = tried[()]
    if initial > 0:  # the final figures are reported by the caller
        info(
            f"INT8 {budget.describe(gate.worst(first, budget))} on {n_gate} images: over "
            "budget, looking for the layers to keep in float"
        )
    fit = gate.fit_budget(
        lambda layers: quantize_all(layers, final=False),
        regions.weighted_nodes,
        0.0,
        initial_drop=initial,
        progress=(lambda msg: info(f"  gate: {msg}")) if o.show_progress else None,
        # ranking on the TensorRT model alone halves its cost; the budgets are checked on both
        rank=lambda layer: quantize_all([layer], final=False, variants=("int8-qdq",)),
    )
    if not fit.passed:
        best = gate.worst(tried.get(tuple(fit.float_layers), first), budget)
        sensitive = fit.ranked()[:5]
        raise Int8GateError(
            f"INT8 stays over budget however many of the {len(regions.weighted_nodes)} weighted "
            f"layers are kept in float: with none, {budget.describe(gate.worst(first, budget))}; "
            f"at best ({len(fit.float_layers)} in float) {budget.describe(best)}, on {n_gate} "
            f"images; most sensitive layers: {', '.join(sensitive) or 'none ranked'}; nothing "
            "written (raise --max-disagreement / --max-drop, or calibrate on more / more "
            "representative images, or try another --calib-method)",
            calib_set.root,
        )
    quantize_all(fit.float_layers, final=True)
    final = [comparisons[v] for v in qdq.VARIANTS]
    if fit.float_layers:
        info(
            f"kept {len(fit.float_layers)} layer(s) in float to stay within budget: "
            + ", ".join(fit.float_layers)
        )

    def worst_of(values: list[gate.Comparison], key: str):
        picked = [getattr(c, key) for c in values]
        return None if key == "drop" and not values[0].labelled else max(picked)

    gate_doc = {
        "images": {
            "source": str(gate_set.root),
            "n": n_gate,
            "labelled": labels is not None,
            "held_back": gate_set.root == calib_set.root and gate_set is not calib_set,
        },
        "max_drop": o.max_drop,
        "max_disagreement": o.max_disagreement,
        "drop_points": worst_of(final, "drop"),
        "disagreement_percent": worst_of(final, "disagreement"),
        "passed": True,
        "initial_drop_points": worst_of(first, "drop"),
        "initial_disagreement_percent": worst_of(first, "disagreement"),
        "float_layers": fit.float_layers,
        "evaluations": fit.evaluations,
        "sensitivity": [
            {"node": k, "excess_points_if_float": fit.sensitivity[k]} for k in fit.ranked()
        ],
        "variants": {v: c.to_dict() for v, c in comparisons.items()},
    }
    calibration = {
        "stamp": stamp,
        "method": o.calib_method,
        "model_sha256": fp32_sha,
        "fp32_artifact": out.name,
        "set": calib_set.describe(),
        "activations": len(act_ranges.ranges),
        "float_nodes": {"encoder": regions.float_nodes, "gate": fit.float_layers},
        "gate": gate_doc,
        "cache": paths["cache"].name,
    }
    amax = {name: act_ranges.amax(name) for name in act_ranges.ranges}
    cache_tmp = staging.path(paths["cache"])
    cache_tmp.write_text(trt_cache.format_cache(amax), encoding="ascii")
    written = {}
    for key, precision in (("int8-qdq", "int8-qdq"), ("int8-cpu", "int8-cpu")):
        target = paths[key]
        doc = make_sidecar(
            target,
            "onnx",
            precision,
            meta,
            source=source,
            export=export_info,
            calibration=calibration,
            **_reference(staging.targets[target], ref_frames, meta),
        )
        doc["sha256"] = sha256_file(staging.targets[target])
        write_sidecar(target, doc, staging.path(sidecar_path(target)))
        written[key] = str(target)
    cache_doc = make_sidecar(
        paths["cache"],
        "calibration-cache",
        "int8",
        meta,
        source=source,
        calibration={
            **calibration,
            "header": trt_cache.header(),
            "ranges": act_ranges.to_dict()["ranges"],
        },
    )
    cache_doc["sha256"] = sha256_file(cache_tmp)
    write_sidecar(paths["cache"], cache_doc, staging.path(sidecar_path(paths["cache"])))
    written["cache"] = str(paths["cache"])
    return {"stamp": stamp, "paths": written, "gate": gate_doc, "set": calib_set.describe()}


# ---------------------------------------------------------------------------------------------
# TensorRT


def build_engines(onnx_path: Path, o: ExportOptions) -> dict[str, Any]:
    """Build the engine asked for by ``o`` from ``onnx_path`` (an export's model.onnx, or its
    model.int8.onnx) and the artifacts beside it."""
    from socket_edge.artifact import check_external_data, verify_artifact
    from socket_edge.calibration import calibset, graph

    from .tensorrt import (
        CacheSource,
        EngineSettings,
        build_engine,
        engine_path,
        profile_from,
        require_tensorrt,
        resolve_int8_mode,
    )

    # Verified (hash, metadata, external data) before onnx.load or TensorRT reads the graph.
    doc = verify_artifact(onnx_path) if o.verify else read_sidecar(onnx_path)
    check_external_data(onnx_path)
    graph.load_model(onnx_path)  # a corrupt file fails here, before TensorRT is looked for
    version = require_tensorrt()
    major = int(version.split(".")[0])
    batch = profile_from(list(o.batch))
    settings = EngineSettings(
        fp16=o.fp16,
        int8=o.int8 or doc["precision"] == "int8-qdq",
        int8_mode=o.int8_mode,
        batch=batch,
        dla_core=o.dla_core,
        workspace_mib=o.workspace_mib,
        timing_cache=o.timing_cache,
    )
    if doc["precision"] == "int8-cpu":
        raise SocketEdgeError(
            f"{onnx_path.name} is the ONNX Runtime CPU model; TensorRT builds "
            "from model.onnx or model.int8.onnx"
        )
    source, source_doc = onnx_path, doc
    calib_batcher, cache = None, None
    calibration = doc.get("calibration") or {}
    if settings.int8 and doc["precision"] == "fp32":
        mode = resolve_int8_mode(o.int8_mode, major, o.dla_core)
        paths = int8_paths(onnx_path)
        if mode == "explicit":
            source = paths["int8-qdq"]
            if not source.exists():
                raise ArtifactError(
                    f"no {source.name} beside it: run `socket-edge export CHECKPOINT "
                    "--out model.onnx --int8 --calib DIR` first, or use "
                    "--int8-mode implicit with --calib DIR",
                    onnx_path,
                )
            source_doc = verify_artifact(source) if o.verify else read_sidecar(source)
            check_external_data(source)
            calibration = source_doc.get("calibration") or {}
            if calibration.get("model_sha256") != doc.get("sha256"):
                raise ArtifactError(
                    f"{source.name} was calibrated for another {onnx_path.name} "
                    "(model sha256 differs): export again with --int8",
                    source,
                )
        else:
            from socket_edge.calibration.batcher import CalibrationBatcher

            stamp, cache_doc = None, None
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
                calib_batcher = CalibrationBatcher.from_set(cs, 8)
                # Written only if TensorRT calibrates (the cache was stale or absent).
                cache_doc = dict(doc)
                cache_doc.update(
                    {
                        "artifact": paths["cache"].name,
                        "kind": "calibration-cache",
                        "precision": "int8",
                        "calibration": {
                            "stamp": stamp,
                            "method": o.calib_method,
                            "computed_by": "TensorRT IInt8EntropyCalibrator2",
                            "model_sha256": doc["sha256"],
                            "fp32_artifact": onnx_path.name,
                            "set": cs.describe(),
                        },
                    }
                )
            cache = CacheSource(paths["cache"], stamp, doc["sha256"], cache_doc)
            if paths["cache"].exists():
                with contextlib.suppress(ArtifactError):
                    calibration = read_sidecar(paths["cache"]).get("calibration") or {}
    regions = graph.regions(graph.load_model(source, check=False))
    encoder = [
        n.name
        for n in graph.load_model(source, check=False).graph.node
        if n.name in set(regions.float_nodes)
        and n.op_type not in ("QuantizeLinear", "DequantizeLinear")
    ]
    gate_layers = (
        list((calibration.get("float_nodes") or {}).get("gate", [])) if settings.int8 else []
    )
    settings.float_layers = encoder + gate_layers
    out = o.engine or engine_path(onnx_path, settings)
    return build_engine(source, out, settings, source_doc, calib_batcher, cache)


__all__ = ["ExportOptions", "ExportResult", "export", "int8_paths", "build_engines"]
