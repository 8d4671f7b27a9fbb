"""Backends behind one small runner interface: torch checkpoints, ONNX Runtime, TensorRT.

Every runner is a context manager (activate / infer / deactivate, after Polygraphy's runners)
that takes a batch of raw maps (N, C, H, W) float32 in the artifact's canonical units and
returns logits (N, K), recording its own inference time. Backends are imported lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import Runner


def load_runner(path: str | Path, **options: Any) -> Runner:
    """A runner for ``path`` chosen by its suffix: .pt (torch), .onnx (ONNX Runtime), .engine."""
    from ..errors import ArtifactError

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth"):
        from .torch import TorchRunner

        return TorchRunner(path, **options)
    if suffix == ".onnx":
        from .onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, **options)
    if suffix in (".engine", ".plan", ".trt"):
        from .tensorrt import TensorRTRunner

        return TensorRTRunner(path, **options)
    raise ArtifactError("unknown artifact type (expected .pt, .onnx or .engine)", path)


__all__ = ["Runner", "load_runner"]
