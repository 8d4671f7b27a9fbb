"""Export steps up to the FP32 model: the checkpoint, the images of one export, the FP32 ONNX
model (the graph parsed once) and its parity check against torch.

Images for the parity check: ``--verify-data`` if given, else the calibration folder, else a
few generated raw maps (depth 300..5000 mm with holes, IR/RGB uniform) -- the sidecar says which.
Images for the accuracy gate: ``--verify-data`` if given (labelled if its class subfolders are
the model's classes), else the images of the calibration folder left out of the calibration draw.
Reference statistics for `socket-edge monitor` (the sidecar's ``reference``): on ``--reference``
if given, else on the calibration folder; each model's own outputs (socket_edge.monitor.record).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..artifact import read_sidecar, sidecar_path, write_sidecar
from ..console import info, warn
from ..errors import ArtifactError, SocketEdgeError
from ..files import sha256_file
from ..outputs import Staging
from .options import ExportOptions, int8_paths

if TYPE_CHECKING:
    import numpy as np

    from socket_edge.calibration.calibset import CalibrationSet
    from socket_edge.monitor.record import ReferenceFrames

PARITY_IMAGES = 64


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


def reference_record(model: Path, frames: ReferenceFrames | None, meta: dict) -> dict[str, Any]:
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


def warn_stale_int8(out: Path, fp32_sha: str) -> None:
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


def stage_sidecar(staging: Staging, artifact: Path, doc: dict[str, Any], sha256: str) -> None:
    """Stage ``doc`` as the sidecar of ``artifact``, whose staged file has digest ``sha256``."""
    doc["sha256"] = sha256
    write_sidecar(artifact, doc, staging.path(sidecar_path(artifact)))
