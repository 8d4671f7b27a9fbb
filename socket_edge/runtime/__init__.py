"""Backends behind one small runner interface: torch checkpoints, ONNX Runtime, TensorRT.

Every runner is a context manager (activate / infer / deactivate, after Polygraphy's runners)
that takes a batch of raw maps (N, C, H, W) float32 in the artifact's canonical units and
returns logits (N, K), recording its own inference time. Backends are imported lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import Runner


def runner_class(path: str | Path) -> type[Runner]:
    """The runner class for ``path`` by its suffix: .pt (torch), .onnx (ONNX Runtime), .engine."""
    from ..errors import ArtifactError

    suffix = Path(path).suffix.lower()
    if suffix in (".pt", ".pth"):
        from .torch import TorchRunner

        return TorchRunner
    if suffix == ".onnx":
        from .onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner
    if suffix in (".engine", ".plan", ".trt"):
        from .tensorrt import TensorRTRunner

        return TensorRTRunner
    raise ArtifactError("unknown artifact type (expected .pt, .onnx or .engine)", path)


def load_runner(path: str | Path, verify: bool = True, **options: Any) -> Runner:
    """A runner for ``path`` (see :func:`runner_class`) with ``options`` it declares.

    ONNX models and engines are verified against their sidecars first (sha256, embedded
    metadata, external data, lineage; see socket_edge.artifact); ``verify=False`` skips that.
    """
    cls = runner_class(path)
    if Path(path).suffix.lower() in (".pt", ".pth"):  # a checkpoint carries its own metadata
        return cls(Path(path), **options)
    return cls(Path(path), verify=verify, **options)


__all__ = ["Runner", "load_runner", "runner_class"]
