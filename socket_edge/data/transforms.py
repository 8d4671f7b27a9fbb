"""Geometric preprocessing shared by every stage: resize, centre crop, and train-time crop/flip.

Resizing happens outside the model (a robot resizes its sensor frame to the model's input size);
everything after it (range normalisation, colour mapping, mean/std) is inside the model, see
``encoding.py``. Depth and IR are resized with nearest-exact sampling so that missing depth
readings (0) are never averaged with valid ones; RGB with antialiased bilinear.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def interpolation_for(modality: str) -> str:
    return "bilinear" if modality == "rgb" else "nearest-exact"


@dataclass(frozen=True)
class Preprocess:
    """Resize the shorter side to ``image_size`` with ``interpolation``, then centre-crop a square."""

    image_size: int
    interpolation: str = "bilinear"
    resize: str = "shorter-side+center-crop"

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_size": self.image_size,
            "interpolation": self.interpolation,
            "resize": self.resize,
        }

    @classmethod
    def for_modality(cls, modality: str, image_size: int) -> Preprocess:
        return cls(image_size=image_size, interpolation=interpolation_for(modality))


def resize_center_crop(arr: np.ndarray, size: int, interpolation: str):
    """(C, H, W) float array -> (C, size, size) torch tensor."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    _, h, w = t.shape
    if (h, w) == (size, size):
        return t
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) != (h, w):
        if interpolation == "bilinear":
            t = F.interpolate(
                t[None], (nh, nw), mode="bilinear", align_corners=False, antialias=True
            )[0]
        else:
            t = F.interpolate(t[None], (nh, nw), mode=interpolation)[0]
    top, left = (nh - size) // 2, (nw - size) // 2
    return t[:, top : top + size, left : left + size].contiguous()


@dataclass(frozen=True)
class CropFlip:
    """One draw of the train-time augmentation: a padded random crop and a horizontal flip."""

    top: int
    left: int
    flip: bool


def draw_crop_flip(rng: np.random.Generator, pad: int) -> CropFlip:
    return CropFlip(
        top=int(rng.integers(0, 2 * pad + 1)),
        left=int(rng.integers(0, 2 * pad + 1)),
        flip=bool(rng.integers(0, 2)),
    )


def apply_crop_flip(t, p: CropFlip, pad: int, modality: str = "rgb"):
    """Pad by ``pad``, crop back to size at (top, left), flip.

    Depth is padded with 0 (no reading, which the encoder ignores); RGB and IR repeat their edge
    pixels, since a constant border would shift IR's per-image range normalisation.
    """
    import torch.nn.functional as F

    _, h, w = t.shape
    if pad:
        if modality == "depth":
            t = F.pad(t, (pad, pad, pad, pad))
        else:
            t = F.pad(t[None], (pad, pad, pad, pad), mode="replicate")[0]
        t = t[:, p.top : p.top + h, p.left : p.left + w]
    if p.flip:
        t = t.flip(-1)
    return t.contiguous()
