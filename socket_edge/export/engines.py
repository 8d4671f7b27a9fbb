"""TensorRT engines from an exported ONNX model: the checked model, the settings, and the
EngineSource (FP32, its Q/DQ sibling for explicit INT8, or the FP32 model with the calibration
images and cache for implicit INT8) handed to `tensorrt.build_engine`."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..artifact import check_external_data, read_sidecar, verify_artifact
from ..calibration import calibset, graph
from ..calibration.batcher import CalibrationBatcher
from ..errors import ArtifactError, SocketEdgeError
from .options import ExportOptions, int8_paths
from .trt_calibration import CacheSource

if TYPE_CHECKING:
    from .tensorrt import EngineSettings


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
    encoder = set(graph.regions(source.graph).float_nodes)
    pinned = [
        n.name
        for n in source.graph.graph.node
        if n.name in encoder and n.op_type not in ("QuantizeLinear", "DequantizeLinear")
    ]
    gate_layers = (source.calibration.get("float_nodes") or {}).get("gate", []) if int8 else []
    return pinned + list(gate_layers)
