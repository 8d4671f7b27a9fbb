"""Verification, what every reader does before it trusts an artifact: the file is the one its
sidecar describes (sha256), an ONNX model's embedded metadata agrees with the sidecar, its
external data stays inside its folder, an INT8 model or an engine was made from the model beside
it, and no killed export left it half moved into place. Reads only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ArtifactError
from ..files import digest
from ..outputs import STAGING_PREFIX, pending_commit
from .onnx_files import check_external_data, load_graph
from .sidecar import ArtifactInfo, check_hash, read_sidecar, sidecar_path

METADATA_PREFIX = "socket_edge."
# What the ONNX graph carries itself and the sidecar must agree with.
METADATA_KEYS = ("classes", "modality", "encoding")


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
    model = model if model is not None else load_graph(artifact)
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
