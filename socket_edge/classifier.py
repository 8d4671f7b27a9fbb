"""`Classifier`: a class and a confidence for raw sensor frames, from any artifact.

A robot program holds frames as its driver delivers them (depth: H x W uint16 millimetres; IR:
H x W uint8/uint16; RGB: H x W x 3 uint8). ``Classifier(path).predict(frame)`` turns them into the
artifact's canonical units, resizes them on the host in numpy (or leaves that to the graph when
the export baked the frame size in), runs the runner and returns labels with softmax
probabilities. ONNX models and engines never import torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError


@dataclass(frozen=True)
class Prediction:
    """One frame's result: the label, its probability and every class's probability."""

    label: str
    index: int
    probability: float
    probabilities: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "index": self.index,
            "probability": self.probability,
            "probabilities": self.probabilities,
        }


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def canonical_frame(frame: np.ndarray, modality: str) -> np.ndarray:
    """One raw frame as the driver gives it -> (C, H, W) float32 in the model's units.

    depth: integer arrays are millimetres; float arrays are taken as millimetres too (the
    graph's unit; convert metres yourself). IR: uint8 / 255, uint16 / 65535, float as is.
    RGB: H x W x 3 or 3 x H x W; uint8 / 255, float as is (in [0, 1]).
    """
    a = np.asarray(frame)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.number)):
        raise DataError(f"frame of dtype {a.dtype}: expected numbers")
    if modality == "rgb":
        if a.ndim == 3 and a.shape[-1] == 3 and a.shape[0] != 3:
            a = a.transpose(2, 0, 1)
        if a.ndim != 3 or a.shape[0] != 3:
            raise DataError(f"RGB frame of shape {a.shape}: expected H x W x 3 or 3 x H x W")
        x = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    else:
        if a.ndim == 3 and 1 in (a.shape[0], a.shape[-1]):
            a = a.reshape(a.shape[1:] if a.shape[0] == 1 else a.shape[:-1])
        if a.ndim != 2:
            raise DataError(f"{modality} frame of shape {a.shape}: expected H x W (one channel)")
        if modality == "ir" and a.dtype == np.uint8:
            x = a.astype(np.float32) / 255.0
        elif modality == "ir" and a.dtype == np.uint16:
            x = a.astype(np.float32) / 65535.0
        else:
            x = a.astype(np.float32)
        if modality == "depth" and (x < 0).any():
            raise DataError("negative depth values in the frame (0 marks a missing reading)")
        x = x[None]
    if not np.isfinite(x).all():
        raise DataError("frame has NaN/inf values (use 0 for a missing depth reading)")
    return x


class Classifier:
    """Classify raw frames with a checkpoint (.pt), ONNX model (.onnx) or TensorRT engine.

    ``predict(frame)`` -> :class:`Prediction`; ``predict(frames)`` (a list, or an array with a
    leading batch axis) -> a list of them. Use as a context manager, or call ``close()``.
    """

    def __init__(self, path: str | Path, device: str | None = None, threads: int | None = None):
        from .runtime import load_runner

        options: dict[str, Any] = {}
        if device:
            options["device"] = device
        if threads:
            options["threads"] = threads
        self.runner = load_runner(path, **options)
        self.info = self.runner.info
        self.runner.activate()

    @property
    def classes(self) -> list[str]:
        return list(self.info.classes)

    @property
    def modality(self) -> str:
        return self.info.modality

    def predict(self, frames: Any) -> Prediction | list[Prediction]:
        """Labels and probabilities for one raw frame or a batch (list, or batch-first array)."""
        single, items = self._split(frames)
        out = self.predict_canonical([canonical_frame(f, self.modality) for f in items])
        return out[0] if single else out

    def predict_files(self, paths: Sequence[str | Path]) -> list[Prediction]:
        """Read image files (the readers' rules per modality) and classify them."""
        from .data.readers import read_image

        return self.predict_canonical([read_image(p, self.modality) for p in paths], paths)

    def predict_canonical(
        self, maps: Sequence[np.ndarray], names: Sequence[str | Path] | None = None
    ) -> list[Prediction]:
        """Classify (C, H, W) float32 maps already in the model's units (``names``: for errors)."""
        if not maps:
            return []
        fitted = []
        for k, m in enumerate(maps):
            try:
                fitted.append(self._fit(m))
            except DataError as exc:
                raise DataError(str(exc), names[k]) if names is not None else exc from None
        batch = np.stack(fitted)
        probs = softmax(self.runner.infer(batch))
        classes = self.classes
        return [
            Prediction(
                label=classes[int(p.argmax())],
                index=int(p.argmax()),
                probability=float(p.max()),
                probabilities={c: float(v) for c, v in zip(classes, p, strict=True)},
            )
            for p in probs
        ]

    def _fit(self, x: np.ndarray) -> np.ndarray:
        """The host resize + centre crop, unless the graph does it (then the size must match)."""
        from .data.transforms import interpolation_for, resize_center_crop

        frame = self.info.frame_size
        if frame is None:
            return resize_center_crop(x, self.info.image_size, interpolation_for(self.modality))
        if tuple(x.shape[-2:]) != frame:
            raise DataError(
                f"frame is {x.shape[-2]}x{x.shape[-1]}, {self.info.path.name} takes "
                f"{frame[0]}x{frame[1]} frames (its export baked the frame size in)"
            )
        return x

    def _split(self, frames: Any) -> tuple[bool, list[Any]]:
        if isinstance(frames, (list, tuple)):
            return False, list(frames)
        a = np.asarray(frames)
        single_ndim = 3 if self.modality == "rgb" else 2
        if a.ndim == single_ndim:
            return True, [a]
        if a.ndim == single_ndim + 1 and self.modality != "rgb":
            return False, list(a)  # (N, H, W)
        if a.ndim == 4:
            return False, list(a)  # (N, C, H, W) or (N, H, W, 3)
        raise DataError(f"frames of shape {a.shape}: expected one frame or a batch of frames")

    def close(self) -> None:
        self.runner.deactivate()

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
