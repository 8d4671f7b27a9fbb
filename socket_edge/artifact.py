"""Exported artifacts and their JSON sidecars: the schema, reading, writing and verification.

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
  gate {...}, cache; the cache's sidecar adds header and ranges {tensor: [lo, hi]}.
- tensorrt (engines): version, compute_capability, gpu, fp16, int8, int8_mode, profile
  {min, opt, max}, dla, workspace_mib, timing_cache, float_layers, built_from, build_seconds.

Verification (every reader: eval, bench, export --trt, the runners, the Python API) checks that
the artifact is the file its sidecar describes (sha256; the digest is cached by path, size, mtime
and inode, in memory and in ``$SOCKET_EDGE_CACHE_DIR/digests.json``), that an ONNX model's
embedded metadata (classes, modality, encoding) agrees with the sidecar, that its external data
stays inside its folder, and that an INT8 model or an engine was made from the FP32 model (or the
ONNX model) it sits beside. ``verify=False`` (``--no-verify``) skips all but the sidecar's schema.
Verification only reads: an artifact of a killed export's half-moved set is refused (the export's
next run finishes it; socket_edge.outputs).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ArtifactError
from .files import clear_digest_cache, digest, sha256_file, write_text
from .outputs import STAGING_PREFIX, pending_commit

FORMAT = "socket-edge-sidecar"
FORMAT_VERSION = 1
METADATA_PREFIX = "socket_edge."
_DRIVE = re.compile(r"^[A-Za-z]:")
# What the ONNX graph carries itself and the sidecar must agree with.
METADATA_KEYS = ("classes", "modality", "encoding")

INPUT_UNITS = {
    "rgb": "RGB in [0, 1], NCHW",
    "depth": "depth in millimetres, 0 = no reading, N x 1 x H x W",
    "ir": "IR intensity (8-bit / 255, 16-bit / 65535, or .npy as stored), N x 1 x H x W",
}


@dataclass
class ArtifactInfo:
    """What any stage needs to feed an artifact and read its output (from checkpoint or sidecar)."""

    path: Path
    kind: str  # checkpoint | onnx | engine
    classes: list[str]
    modality: str
    image_size: int
    encoding: dict[str, Any]
    preprocess: dict[str, Any]
    precision: str = "fp32"
    arch: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def in_channels(self) -> int:
        return 3 if self.modality == "rgb" else 1

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(H, W) of the raw frames the artifact takes when resize + crop are in its graph."""
        frame = self.preprocess.get("frame_size") if self.preprocess.get("in_graph") else None
        return (int(frame[0]), int(frame[1])) if frame else None


# ---------------------------------------------------------------------------------------------
# Writing


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


def dump_sidecar(doc: dict[str, Any], where: str | Path = "sidecar") -> str:
    """The sidecar as strict JSON text; NaN or infinity anywhere is an ArtifactError."""
    try:
        return json.dumps(doc, indent=2, allow_nan=False) + "\n"
    except ValueError:
        bad = ", ".join(_non_finite(doc)) or "a value"
        raise ArtifactError(
            f"refusing to write a sidecar holding NaN/infinity ({bad}): the model or its "
            "checks produced non-finite numbers",
            where,
        ) from None


def _non_finite(obj: Any, prefix: str = "") -> list[str]:
    if isinstance(obj, float) and not math.isfinite(obj):
        return [prefix or "value"]
    if isinstance(obj, dict):
        return [k for key, v in obj.items() for k in _non_finite(v, f"{prefix}.{key}".strip("."))]
    if isinstance(obj, (list, tuple)):
        return [k for i, v in enumerate(obj) for k in _non_finite(v, f"{prefix}[{i}]")]
    return []


def write_sidecar(
    artifact: str | Path, doc: dict[str, Any], path: str | Path | None = None
) -> Path:
    """Write ``doc`` (strict JSON, atomically) as the sidecar of ``artifact`` (or to ``path``)."""
    target = Path(path) if path is not None else sidecar_path(artifact)
    write_text(target, dump_sidecar(doc, sidecar_path(artifact)))
    return target


# ---------------------------------------------------------------------------------------------
# Reading


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
        doc = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ArtifactError(f"sidecar is not valid JSON ({str(exc)[:120]})", path) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ArtifactError("not a socket-edge sidecar", path)
    version = doc.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ArtifactError(f"sidecar format_version must be an integer, got {version!r}", path)
    if version > FORMAT_VERSION:
        raise ArtifactError("sidecar is from a newer socket-edge; upgrade socket-edge", path)
    for key in ("classes", "modality", "preprocess", "encoding", "precision"):
        if key not in doc:
            raise ArtifactError(f"sidecar lacks {key!r}", path)
    _check_types(doc, path)
    if verify_hash:
        check_hash(artifact, doc)
    return doc


def _check_types(doc: dict[str, Any], path: Path) -> None:
    """The fields every reader relies on, with the types they rely on."""
    classes = doc["classes"]
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise ArtifactError("sidecar 'classes' must be a non-empty list of names", path)
    if not isinstance(doc["modality"], str) or doc["modality"] not in INPUT_UNITS:
        raise ArtifactError(f"sidecar modality {doc['modality']!r} is not rgb, depth or ir", path)
    for key in ("preprocess", "encoding"):
        if not isinstance(doc[key], dict):
            raise ArtifactError(f"sidecar {key!r} must be an object", path)
    size = doc["preprocess"].get("image_size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ArtifactError(
            f"sidecar preprocess.image_size must be a positive integer, got {size!r}", path
        )
    if not isinstance(doc["precision"], str):
        raise ArtifactError("sidecar 'precision' must be a string", path)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def artifact_info(artifact: str | Path, kind: str, verify: bool = True) -> ArtifactInfo:
    """An ArtifactInfo (what runners and eval need) from the sidecar of ``artifact``, verified."""
    artifact = Path(artifact)
    if not artifact.exists():
        raise ArtifactError("no such file", artifact)
    if verify:
        doc = verify_artifact(artifact)
    else:
        if artifact.suffix.lower() == ".onnx":
            check_external_data(artifact)  # never skipped: ONNX Runtime reads what it names
        doc = read_sidecar(artifact)
    return ArtifactInfo(
        path=artifact,
        kind=kind,
        classes=list(doc["classes"]),
        modality=doc["modality"],
        image_size=int(doc["preprocess"]["image_size"]),
        encoding=dict(doc["encoding"]),
        preprocess=dict(doc["preprocess"]),
        precision=doc["precision"],
        arch=doc.get("arch"),
        extra={"sidecar": doc, "verified": verify},
    )


# ---------------------------------------------------------------------------------------------
# Verification


def verify_artifact(artifact: str | Path, doc: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check ``artifact`` against its sidecar and its lineage; returns the sidecar.

    One-line ArtifactError naming both files and what differs on any mismatch.
    """
    artifact = Path(artifact)
    if not artifact.exists():
        raise ArtifactError("no such file", artifact)
    _refuse_half_moved(artifact)
    if artifact.suffix.lower() == ".onnx":
        # Before anything parses the graph with its external data (onnx.load, ONNX Runtime).
        model = check_external_data(artifact)
        doc = read_sidecar(artifact) if doc is None else doc
        check_hash(artifact, doc)
        check_metadata(artifact, doc, model)
    else:
        doc = read_sidecar(artifact) if doc is None else doc
        check_hash(artifact, doc)
    check_lineage(artifact, doc)
    return doc


def _refuse_half_moved(artifact: Path) -> None:
    """An export whose committed set names ``artifact`` but was killed before moving all of it
    into place leaves a mix: refused, naming the export to rerun (which finishes the set first).
    Reading never moves files; a running export is waited for (``outputs.pending_commit``)."""
    out = pending_commit(artifact)
    if out is not None:
        raise ArtifactError(
            f"an export of {out.name} was stopped while moving its files into place (its "
            f"committed journal, {STAGING_PREFIX}{out.name}.*, is beside it): rerun that "
            "export (it finishes the set first)",
            artifact,
        )


def check_hash(artifact: Path, doc: dict[str, Any]) -> None:
    side = sidecar_path(artifact).name
    recorded = doc.get("sha256")
    if not recorded:
        raise ArtifactError(
            f"its sidecar {side} records no sha256, so it cannot be verified "
            "(export again, or turn verification off: verify)",
            artifact,
            settings=("verify",),
        )
    actual = digest(artifact)
    if actual != recorded:
        raise ArtifactError(
            f"does not match its sidecar {side}: sha256 {actual[:12]}... vs {str(recorded)[:12]}... "
            "recorded (a changed, replaced or half-copied file; export again, or turn "
            "verification off: verify)",
            artifact,
            settings=("verify",),
        )


def onnx_metadata(model) -> dict[str, Any]:
    """The socket-edge entries of an ONNX model's metadata_props, JSON-decoded where they are."""
    out: dict[str, Any] = {}
    for prop in model.metadata_props:
        if prop.key.startswith(METADATA_PREFIX):
            key = prop.key[len(METADATA_PREFIX) :]
            try:
                out[key] = json.loads(prop.value)
            except ValueError:
                out[key] = prop.value
    return out


def check_metadata(artifact: Path, doc: dict[str, Any], model=None) -> None:
    """The ONNX model's own classes, modality and encoding agree with its sidecar."""
    model = model if model is not None else _load_graph(artifact)
    embedded = onnx_metadata(model)
    side = sidecar_path(artifact).name
    for key in METADATA_KEYS:
        if key not in embedded:
            continue  # models exported before a key was embedded carry fewer
        mine, theirs = _canonical(embedded[key]), _canonical(doc.get(key))
        if mine != theirs:
            raise ArtifactError(
                f"its embedded metadata and its sidecar {side} disagree on {key} "
                f"(model: {_short(embedded[key])}; sidecar: {_short(doc.get(key))}); "
                "the sidecar was edited or belongs to another model: export again",
                artifact,
            )


def _changed_parent(artifact: Path, name: Any, sha: Any) -> tuple[Path, str] | None:
    """(parent, its sha256) when the file ``name`` beside ``artifact`` exists and is not the one
    (``sha``) the artifact was made from; None when it matches or cannot be compared."""
    if not isinstance(name, str) or not sha:
        return None
    parent = artifact.with_name(Path(name).name)
    if parent == artifact or not parent.exists():
        return None
    actual = digest(parent)
    return None if actual == sha else (parent, actual)


def check_lineage(artifact: Path, doc: dict[str, Any]) -> None:
    """An INT8 model or cache was calibrated from the FP32 model beside it; an engine was built
    from the ONNX model beside it (when that model is there to compare with)."""
    calibration = doc.get("calibration") or {}
    made_from = calibration.get("model_sha256")
    changed = _changed_parent(artifact, calibration.get("fp32_artifact"), made_from)
    if changed:
        fp32, actual = changed
        raise ArtifactError(
            f"was made from another FP32 model than the {fp32.name} beside it (made from "
            f"sha256 {str(made_from)[:12]}..., {fp32.name} is {actual[:12]}...): an "
            "INT8 file left from an earlier export; export again with int8 and calib, or "
            "delete it",
            artifact,
            settings=("int8", "calib"),
        )
    built = (doc.get("tensorrt") or {}).get("built_from") or {}
    changed = _changed_parent(artifact, built.get("artifact"), built.get("sha256"))
    if changed:
        src, actual = changed
        raise ArtifactError(
            f"was built from another {src.name} than the one beside it (built from "
            f"sha256 {str(built.get('sha256'))[:12]}..., {src.name} is {actual[:12]}...): "
            f"rebuild it from {src.name} (export with trt)",
            artifact,
            settings=("trt",),
        )


def _canonical(value: Any) -> str:
    return json.dumps(json.loads(json.dumps(value)), sort_keys=True)


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Untrusted ONNX files: external data


def _load_graph(path: Path):
    """The ONNX model WITHOUT its external data (nothing outside the file is read)."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"not a valid ONNX model (cannot parse it: {first})", path) from None


def _tensors(graph):
    """Every TensorProto of a graph and its subgraphs (initializers, attributes, sparse)."""
    yield from graph.initializer
    for s in graph.sparse_initializer:
        yield s.values
        yield s.indices
    for node in graph.node:
        yield from _attribute_tensors(node.attribute)


def _attribute_tensors(attributes):
    for a in attributes:
        if a.HasField("t"):
            yield a.t
        yield from a.tensors
        if a.HasField("sparse_tensor"):
            yield a.sparse_tensor.values
            yield a.sparse_tensor.indices
        if a.HasField("g"):
            yield from _tensors(a.g)
        for g in a.graphs:
            yield from _tensors(g)


def check_external_data(path: str | Path, model=None):
    """Refuse an ONNX model whose external data lies outside its folder (absolute paths, ``..``,
    symlinks out); returns the model parsed without external data."""
    import onnx

    path = Path(path)
    model = model if model is not None else _load_graph(path)
    folder = path.resolve().parent
    tensors = list(_tensors(model.graph))
    for fn in model.functions:
        for node in fn.node:
            tensors.extend(_attribute_tensors(node.attribute))
    for t in tensors:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in t.external_data if e.key == "location"), "")
        where = f"external data of tensor {t.name!r} ({location!r})"
        if not location:
            raise ArtifactError(f"{where} names no file", path)
        if os.path.isabs(location) or location.startswith(("/", "\\")) or _DRIVE.match(location):
            raise ArtifactError(f"{where} is an absolute path; refusing to read it", path)
        if ".." in Path(location.replace("\\", "/")).parts:
            raise ArtifactError(f"{where} climbs out of the model's folder with '..'", path)
        resolved = (path.parent / location).resolve()
        if not resolved.is_relative_to(folder):
            raise ArtifactError(
                f"{where} resolves outside the model's folder (to {resolved}, a symlink out); "
                "refusing to read it",
                path,
            )
    return model


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ArtifactInfo",
    "artifact_info",
    "check_external_data",
    "clear_digest_cache",
    "digest",
    "dump_sidecar",
    "make_sidecar",
    "read_sidecar",
    "sidecar_path",
    "verify_artifact",
    "write_sidecar",
]
