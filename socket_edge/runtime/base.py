"""The runner interface shared by every backend."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from ..artifact import ArtifactInfo


class Runner(ABC):
    """Load an artifact, run batches, describe itself. Use as ``with runner: runner.infer(x)``."""

    backend: str = "?"
    # Keyword options the constructor takes; callers (bench) ask this instead of trying.
    options: frozenset[str] = frozenset()

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.is_active = False
        self.inference_times: list[float] = []
        self.info: ArtifactInfo = self.load_info()

    @abstractmethod
    def load_info(self) -> ArtifactInfo:
        """Read the artifact's metadata (cheap; does not load the model)."""

    @abstractmethod
    def activate_impl(self) -> None: ...

    @abstractmethod
    def infer_impl(self, batch: np.ndarray) -> np.ndarray: ...

    def deactivate_impl(self) -> None:
        return None

    def activate(self) -> Runner:
        if not self.is_active:
            self.activate_impl()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def __enter__(self) -> Runner:
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, K) for a batch of raw maps (N, C, H, W); the time is kept in inference_times."""
        if not self.is_active:
            raise RuntimeError(f"{type(self).__name__} must be activated before infer()")
        start = time.perf_counter()
        out = self.infer_impl(np.ascontiguousarray(batch, dtype=np.float32))
        self.inference_times.append(time.perf_counter() - start)
        return out

    @property
    def last_inference_time(self) -> float | None:
        return self.inference_times[-1] if self.inference_times else None

    def describe(self) -> dict[str, Any]:
        return {
            "artifact": str(self.path),
            "backend": self.backend,
            "precision": self.info.precision,
            "modality": self.info.modality,
            "classes": len(self.info.classes),
        }
