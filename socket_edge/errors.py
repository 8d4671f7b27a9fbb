"""User-facing errors: one line naming the file and the problem, shown without a traceback."""

from __future__ import annotations

from pathlib import Path


class SocketEdgeError(Exception):
    """An error caused by the user's input; the CLI prints it as one line and exits non-zero."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        super().__init__(f"{path}: {message}" if path is not None else message)


class DataError(SocketEdgeError):
    """A bad image, folder or data layout."""


class CheckpointError(SocketEdgeError):
    """A file that is not a socket-edge checkpoint, or one that does not fit what was asked."""


class ArtifactError(SocketEdgeError):
    """A bad or incompatible ONNX model, engine, sidecar or calibration cache."""


class Int8GateError(ArtifactError):
    """INT8 could not be kept within its budgets against FP32; nothing was written."""
