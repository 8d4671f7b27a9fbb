"""Geometric preprocessing shared by every stage: resize, centre crop, and train-time crop/flip.

Resizing happens outside the model (a robot resizes its sensor frame to the model's input size),
in numpy, or inside the ONNX graph when the export fixed the frame size (``export/frame.py``);
everything after it (range normalisation, colour mapping, mean/std) is inside the model, see
``encoding.py``. Depth and IR are resized with nearest-exact sampling so that missing depth
readings (0) are never averaged with valid ones; RGB with antialiased bilinear.
"""

from __future__ import annotations

import functools
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


def _crop_plan(h: int, w: int, size: int) -> tuple[int, int, int, int]:
    """(resized height, resized width, top, left) of the shorter-side resize + centre crop."""
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    return nh, nw, (nh - size) // 2, (nw - size) // 2


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each output index under nearest-exact sampling (torch's float32 rule)."""
    scale = np.float32(n_in) / np.float32(n_out)
    src = np.floor((np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale)
    return np.minimum(src.astype(np.int64), n_in - 1)


def bilinear_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of antialiased bilinear resampling (a triangle filter widened by
    the downscale factor, rows normalised), the filter torch and Pillow use."""
    scale = n_in / n_out
    support = scale if scale >= 1.0 else 1.0
    inv = 1.0 / scale if scale >= 1.0 else 1.0
    weights = np.zeros((n_out, n_in), np.float64)
    for i in range(n_out):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        j = np.arange(lo, hi)
        w = np.clip(1.0 - np.abs((j - center + 0.5) * inv), 0.0, None)
        total = w.sum()
        weights[i, lo:hi] = w / total if total > 0 else w
    return weights


@dataclass(frozen=True, eq=False)
class ResizePlan:
    """Resize + centre crop of an (H, W) frame to (size, size), as index or weight tables.

    ``rows``/``cols`` are (size, H) and (size, W): integer source indices for nearest-exact, or
    bilinear weight matrices; the crop is already applied (only the kept outputs are listed).
    """

    frame: tuple[int, int]
    size: int
    interpolation: str
    rows: np.ndarray
    cols: np.ndarray

    @property
    def identity(self) -> bool:
        return self.frame == (self.size, self.size)

    def apply(self, arr: np.ndarray) -> np.ndarray:
        """(..., H, W) float array -> (..., size, size) float32."""
        x = np.asarray(arr, dtype=np.float32)
        if x.shape[-2:] != self.frame:
            raise ValueError(f"frame is {x.shape[-2:]}, this plan resizes {self.frame}")
        if self.identity:
            return np.ascontiguousarray(x)
        if self.interpolation == "bilinear":  # columns first, as torch's separable passes
            cols_t = np.ascontiguousarray(self.cols.T)  # BLAS needs contiguous operands
            return np.ascontiguousarray(np.matmul(self.rows, np.matmul(x, cols_t)))
        return np.ascontiguousarray(x[..., self.rows[:, None], self.cols[None, :]])


@functools.lru_cache(maxsize=32)
def resize_plan(frame: tuple[int, int], size: int, interpolation: str) -> ResizePlan:
    """The resize + centre crop of an (H, W) frame to (size, size) with ``interpolation``."""
    h, w = int(frame[0]), int(frame[1])
    nh, nw, top, left = _crop_plan(h, w, size)
    if interpolation == "bilinear":
        rows = bilinear_weights(h, nh)[top : top + size].astype(np.float32)
        cols = bilinear_weights(w, nw)[left : left + size].astype(np.float32)
    elif interpolation == "nearest-exact":
        rows = nearest_indices(h, nh)[top : top + size]
        cols = nearest_indices(w, nw)[left : left + size]
    else:
        raise ValueError(f"unknown interpolation {interpolation!r} (bilinear, nearest-exact)")
    return ResizePlan((h, w), int(size), interpolation, rows, cols)


def resize_center_crop(arr: np.ndarray, size: int, interpolation: str) -> np.ndarray:
    """(C, H, W) float array -> (C, size, size) float32 array, in numpy (no torch).

    Matches torch's ``F.interpolate`` (nearest-exact; bilinear with antialias=True) to float32
    rounding: tests/test_transforms.py compares the two.
    """
    h, w = arr.shape[-2:]
    return resize_plan((int(h), int(w)), int(size), interpolation).apply(arr)


def resize_center_crop_torch(arr: np.ndarray, size: int, interpolation: str):
    """The torch reference of :func:`resize_center_crop` (kept to test the numpy path against)."""
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
    """Pad by ``pad``, crop back to size at (top, left), flip (a torch tensor or numpy array in,
    a torch tensor out: augmentation is training, which has torch).

    Depth is padded with 0 (no reading, which the encoder ignores); RGB and IR repeat their edge
    pixels, since a constant border would shift IR's per-image range normalisation.
    """
    import torch
    import torch.nn.functional as F

    if isinstance(t, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(t))

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
