"""Reference statistics at export: run the exported model on in-distribution frames.

The frames (the calibration folder, or ``--reference DIR``): up to 768, drawn in a seeded order.
Each frame's signals and predicted class are kept (the monitor compares a window with the
reference frames of the same predicted class, by ranks: no frames need holding back for
thresholds, and per-class comparisons want every frame there is).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..console import info, warn
from ..errors import DataError

REFERENCE_SIZE = 768
MIN_FRAMES = 64  # fewer gives per-class comparisons too weak to trust (warned, not refused)


@dataclass
class ReferenceFrames:
    """The frames drawn for the reference, loaded once."""

    folder: Path
    reference: np.ndarray
    frame_size: list[int] | None
    seed: int

    def describe(self, image_size: int) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "reference": len(self.reference),
            "frame_size": self.frame_size,
            "image_size": image_size,
            "channels": int(self.reference.shape[1]),
            "seed": self.seed,
        }


def draw_frames(folder: Path, modality: str, image_size: int, seed: int = 0) -> ReferenceFrames:
    """Draw and load the reference frames of ``folder`` (see module doc)."""
    from socket_edge.calibration import calibset

    cs = calibset.draw(
        folder, modality, image_size, 1 << 30, seed, 0, what="reference folder", warn_short=False
    )
    files = cs.files
    n = len(files)
    if n < 2:
        raise DataError(f"{n} image(s): reference statistics need at least 2", folder)
    if n < MIN_FRAMES:
        warn(
            f"{folder}: {n} images for reference statistics; per-class comparisons with so few "
            "detect only large changes"
        )
    ref_files = files[:REFERENCE_SIZE]
    info(f"reference statistics: {len(ref_files)} images of {folder}")
    bag = hasattr(folder, "topic")  # a bag topic (data/bags): its frames' own size
    return ReferenceFrames(
        folder if bag else Path(folder),
        cs.load(ref_files),
        cs._loader().sensor_frame_size() if bag else _frame_size(ref_files),
        seed,
    )


def _frame_size(files: list[Path]) -> list[int] | None:
    """The sensor's frame size (H, W) if every file has the same, else None (no size check)."""
    sizes = set()
    for p in files:
        if p.suffix.lower() == ".npy":
            shape = np.load(p, mmap_mode="r").shape
            hw = tuple(s for s in shape if s not in (1, 3))[:2] if len(shape) == 3 else shape
        else:
            from PIL import Image

            with Image.open(p) as im:
                hw = (im.height, im.width)
        sizes.add(tuple(int(v) for v in hw))
    return list(sizes.pop()) if len(sizes) == 1 else None


def reference_for(onnx_path: Path, frames: ReferenceFrames, meta: dict[str, Any]) -> dict:
    """The sidecar's ``reference`` block for the ONNX model at ``onnx_path`` (its own outputs)."""
    from ..runtime.onnxruntime import ort_logits, ort_session
    from .reference import build_reference

    session = ort_session(onnx_path)
    return build_reference(
        frames.reference,
        ort_logits(session, frames.reference),
        meta["modality"],
        list(meta["classes"]),
        computed_with=onnx_path.name,
        frames=frames.describe(int(meta["image_size"])),
    )
