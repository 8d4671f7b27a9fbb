"""Reference statistics at export: run the exported model on in-distribution frames.

The frames (the calibration folder, or ``--reference DIR``) are drawn in a seeded order and
split: up to 512 describe the reference, up to 256 others are held back to set the monitor's
thresholds (the monitor never compares a window with frames it was built from).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..console import info, warn
from ..errors import DataError

REFERENCE_SIZE = 512
HELD_BACK = 256
MIN_FRAMES = 64  # fewer gives thresholds too rough to trust (warned, not refused)


@dataclass
class ReferenceFrames:
    """The frames drawn for the reference and held back for thresholds, loaded once."""

    folder: Path
    reference: np.ndarray
    held_back: np.ndarray
    frame_size: list[int] | None
    seed: int

    def describe(self, image_size: int) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "reference": len(self.reference),
            "held_back": len(self.held_back),
            "frame_size": self.frame_size,
            "image_size": image_size,
            "channels": int(self.reference.shape[1]),
            "seed": self.seed,
        }


def draw_frames(folder: Path, modality: str, image_size: int, seed: int = 0) -> ReferenceFrames:
    """Draw and load the reference and held-back frames of ``folder`` (see module doc)."""
    from socket_edge.calibration import calibset

    cs = calibset.draw(
        folder, modality, image_size, 1 << 30, seed, 0, what="reference folder", warn_short=False
    )
    files = cs.files
    n = len(files)
    if n < 2:
        raise DataError(
            f"{n} image(s): reference statistics need at least 2 (some are held back)", folder
        )
    if n < MIN_FRAMES:
        warn(f"{folder}: {n} images for reference statistics; thresholds from so few are rough")
    held = max(1, min(HELD_BACK, n // 3))
    ref_files = files[: min(REFERENCE_SIZE, n - held)]
    held_files = files[n - held :]
    info(f"reference statistics: {len(ref_files)} images of {folder}, {held} held back")
    bag = hasattr(folder, "topic")  # a bag topic (data/bags.py): its frames' own size
    return ReferenceFrames(
        folder if bag else Path(folder),
        cs.load(ref_files),
        cs.load(held_files),
        cs._loader().sensor_frame_size() if bag else _frame_size(ref_files + held_files),
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
        frames.held_back,
        ort_logits(session, frames.held_back),
        meta["modality"],
        list(meta["classes"]),
        computed_with=onnx_path.name,
        frames=frames.describe(int(meta["image_size"])),
    )
