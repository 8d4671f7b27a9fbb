"""Robot frames for the monitor, without torch: read, check against the reference, resize.

A frame must be of the model's modality (the readers refuse an 8-bit image where 16-bit depth
is expected, a colour image where IR is, a 16-bit map where RGB is) and of the frame size the
reference statistics were recorded on: another resolution means another sensor or another
crop, whose statistics the reference does not describe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.readers import IMAGE_SUFFIXES, read_image
from ..errors import DataError


def list_frames(inputs: list[Path]) -> list[Path]:
    """Image files named or found (recursively, sorted) in the folders named."""
    out: list[Path] = []
    for p in inputs:
        p = Path(p)
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and f.suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            if not found:
                raise DataError(f"no frames found (looked for {', '.join(IMAGE_SUFFIXES)})", p)
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise DataError("no such file or folder", p)
    return out


def check_frame(
    frame: np.ndarray, modality: str, frame_size: list[int] | None, where: str | Path = "frame"
) -> np.ndarray:
    """``frame`` as (C, H, W) float32, or a one-line error if it cannot come from the sensor."""
    a = np.asarray(frame, dtype=np.float32)
    channels = 3 if modality == "rgb" else 1
    if a.ndim == 2 and channels == 1:
        a = a[None]
    if a.ndim != 3 or a.shape[0] != channels:
        raise DataError(
            f"frame of shape {tuple(np.shape(frame))}: a {modality} model takes {channels} "
            f"channel(s) (C, H, W) (frames of another modality?)",
            where,
        )
    if frame_size and list(a.shape[1:]) != list(frame_size):
        raise DataError(
            f"frame is {a.shape[1]}x{a.shape[2]}, the reference statistics were recorded on "
            f"{frame_size[0]}x{frame_size[1]} frames (another sensor or resolution: export with "
            "`reference` DIR on frames of this one)",
            where,
            settings=("reference",),
        )
    if not np.isfinite(a).all():
        raise DataError("frame has NaN/inf values", where)
    return a


def read_frame(path: Path, modality: str, frame_size: list[int] | None) -> np.ndarray:
    """One frame file in canonical units (C, H, W), checked (see check_frame)."""
    return check_frame(read_image(path, modality), modality, frame_size, path)
