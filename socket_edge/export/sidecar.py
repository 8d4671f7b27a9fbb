"""The JSON sidecar every exported artifact carries: what it is and how to feed it.

``model.onnx`` -> ``model.json``; ``model.int8.onnx`` -> ``model.int8.json``; an engine
``model.fp16.engine`` -> ``model.fp16.engine.json`` (engines keep their suffix in the sidecar name
so that an engine never overwrites the sidecar of the ONNX model it was built from).

Schema (format_version 1)::

    format, format_version, artifact (file name), kind (onnx | engine | calibration-cache),
    sha256 (of the artifact), precision (fp32 | fp16 | int8-qdq | int8-cpu | int8), arch,
    classes, modality, input {name, shape, dtype, layout, units}, output {name, shape},
    preprocess {image_size, interpolation, resize}, encoding {...}, encoding_in_graph (bool),
    source {path, sha256} (the checkpoint), calibration {...} | null, parity {...} | null,
    tensorrt {...} | null (engines), versions {...}, created, export {opset, batch} (optional),
    reference {...} (optional: monitoring statistics, socket_edge.monitor.reference; engines
    inherit the ONNX model's)

Filled in by ``socket-edge export``:

- parity: max_abs_logit_diff, top1_agreement, n, batch_sizes, max_abs_logit, atol, rtol,
  tolerance, images (which), passed.
- calibration (INT8 artifacts and model.calib.cache.json): stamp (sha256 of model + calibration
  set + method, 16 hex digits), method, model_sha256 (of the FP32 ONNX), fp32_artifact,
  set {folder, size, requested, seed, holdout, sha256}, activations, float_nodes {encoder, gate},
  gate {images, drop_points, max_drop, passed, float_layers, sensitivity, variants}, cache;
  the cache's sidecar adds header and ranges {tensor: [lo, hi]}.
- tensorrt (engines): version, compute_capability, gpu, fp16, int8, int8_mode, profile
  {min, opt, max}, dla, workspace_mib, timing_cache, float_layers, built_from, build_seconds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..errors import ArtifactError
from ..files import sha256_file, write_json

FORMAT = "socket-edge-sidecar"
FORMAT_VERSION = 1

INPUT_UNITS = {
    "rgb": "RGB in [0, 1], NCHW",
    "depth": "depth in millimetres, 0 = no reading, N x 1 x H x W",
    "ir": "IR intensity (8-bit / 255, 16-bit / 65535, or .npy as stored), N x 1 x H x W",
}


def sidecar_path(artifact: str | Path) -> Path:
    artifact = Path(artifact)
    if artifact.suffix.lower() == ".onnx":
        return artifact.with_suffix(".json")
    return artifact.with_name(artifact.name + ".json")


def make_sidecar(
    artifact: str | Path, kind: str, precision: str, meta: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    """A sidecar for ``artifact`` from the checkpoint metadata ``meta`` plus extra ``fields``."""
    artifact = Path(artifact)
    modality = meta["modality"]
    channels = 3 if modality == "rgb" else 1
    size = int(meta["image_size"])
    doc: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "artifact": artifact.name,
        "kind": kind,
        "sha256": sha256_file(artifact) if artifact.exists() else None,
        "precision": precision,
        "arch": meta["arch"],
        "classes": list(meta["classes"]),
        "modality": modality,
        "input": {
            "name": "input",
            "shape": ["batch", channels, size, size],
            "dtype": "float32",
            "layout": "NCHW",
            "units": INPUT_UNITS[modality],
        },
        "output": {"name": "logits", "shape": ["batch", len(meta["classes"])]},
        "preprocess": dict(meta["preprocess"]),
        "encoding": dict(meta["encoding"]),
        "encoding_in_graph": True,
        "source": None,
        "calibration": None,
        "parity": None,
        "tensorrt": None,
        "versions": dict(meta.get("versions", {})),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    doc.update(fields)
    return doc


def write_sidecar(artifact: str | Path, doc: dict[str, Any]) -> Path:
    path = sidecar_path(artifact)
    write_json(path, doc)
    return path


def read_sidecar(artifact: str | Path, verify_hash: bool = False) -> dict[str, Any]:
    """Load and check the sidecar of ``artifact``; a one-line error if it is absent or bad."""
    artifact = Path(artifact)
    path = sidecar_path(artifact)
    if not path.exists():
        raise ArtifactError(
            f"no sidecar {path.name} beside it (export with `socket-edge export` writes one)",
            artifact,
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"sidecar is not valid JSON ({exc})", path) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ArtifactError("not a socket-edge sidecar", path)
    if int(doc.get("format_version", 0)) > FORMAT_VERSION:
        raise ArtifactError("sidecar is from a newer socket-edge; upgrade socket-edge", path)
    for key in ("classes", "modality", "preprocess", "encoding", "precision"):
        if key not in doc:
            raise ArtifactError(f"sidecar lacks {key!r}", path)
    if verify_hash and doc.get("sha256") and sha256_file(artifact) != doc["sha256"]:
        raise ArtifactError(f"does not match its sidecar {path.name} (sha256 differs)", artifact)
    return doc


def sidecar_info(artifact: str | Path, kind: str):
    """An ArtifactInfo (what runners and eval need) from the sidecar of ``artifact``."""
    from ..runtime.base import ArtifactInfo

    doc = read_sidecar(artifact)
    return ArtifactInfo(
        path=Path(artifact),
        kind=kind,
        classes=list(doc["classes"]),
        modality=doc["modality"],
        image_size=int(doc["preprocess"]["image_size"]),
        encoding=dict(doc["encoding"]),
        preprocess=dict(doc["preprocess"]),
        precision=doc["precision"],
        arch=doc.get("arch"),
        extra={"sidecar": doc},
    )
