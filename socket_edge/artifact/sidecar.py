"""Sidecars: the schema (socket_edge.artifact's docstring lists every field), ``ArtifactInfo``,
writing (strict JSON, atomically), reading with the type checks every reader relies on, and the
hash check that an artifact is the file its sidecar describes."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ArtifactError
from ..files import digest, sha256_file, write_text

FORMAT = "socket-edge-sidecar"
FORMAT_VERSION = 1

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
