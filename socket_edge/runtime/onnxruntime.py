"""Runner for ONNX models with ONNX Runtime (CPU; CUDA/TensorRT providers where installed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactError
from .base import ArtifactInfo, Runner

PROVIDER_ALIASES = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def ort_session(path: str | Path, threads: int | None = None):
    """A CPU ONNX Runtime session with all graph optimizations (as deployment runs it)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"ONNX Runtime cannot load it ({first})", path) from None


def ort_logits(session, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    name = session.get_inputs()[0].name
    outs = [
        session.run(None, {name: np.ascontiguousarray(x[i : i + batch_size], np.float32)})[0]
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)


class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"
    options = frozenset({"device", "threads"})

    def __init__(
        self,
        path: str | Path,
        device: str | None = "cpu",
        threads: int | None = None,
        verify: bool = True,
    ):
        self.verify = verify
        self.device_name = (device or "cpu").split(":")[0]
        self.threads = threads
        self.session: Any = None
        super().__init__(path)

    def load_info(self) -> ArtifactInfo:
        from ..artifact import artifact_info

        return artifact_info(self.path, "onnx", verify=self.verify)

    def activate_impl(self) -> None:
        import onnxruntime as ort

        wanted = PROVIDER_ALIASES.get(self.device_name)
        if wanted is None:
            raise ArtifactError(
                f"unknown ONNX Runtime device {self.device_name!r} (cpu, cuda, tensorrt)"
            )
        available = ort.get_available_providers()
        if wanted[0] not in available:
            raise ArtifactError(
                f"ONNX Runtime here has no {wanted[0]} (available: {', '.join(available)}); "
                "install onnxruntime-gpu (extra 'gpu') or use device cpu",
                settings=("device",),
            )
        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=[p for p in wanted if p in available]
            )
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            first = (
                str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            )
            raise ArtifactError(f"ONNX Runtime cannot load it ({first})", self.path) from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        assert self.session is not None
        return self.session.run([self.output_name], {self.input_name: batch})[0]

    def deactivate_impl(self) -> None:
        self.session = None

    def describe(self) -> dict:
        providers: list[str] = self.session.get_providers() if self.session is not None else []
        return {
            **super().describe(),
            "device": self.device_name,
            "providers": providers,
            "threads": self.threads,
        }
