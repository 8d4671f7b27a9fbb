"""What `socket-edge bench` measures and how (BenchConfig), and its one-line error text."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SocketEdgeError
from ..extras import missing_module_hint
from .latency import TimingPlan

CLOCK = "time.perf_counter around each runner.infer call (host wall clock)"


@dataclass
class BenchConfig:
    batches: list[int] = field(default_factory=lambda: [1])
    warmup_s: float = 2.0
    duration_s: float = 10.0
    iterations: int | None = None
    min_iterations: int = 10
    threads: int | None = None
    device: str | None = None
    include_copies: bool = True  # engines: time host<->device copies with the compute
    cuda_graph: bool = False  # engines: replay a captured CUDA graph
    trtexec: bool = False  # engines: also run NVIDIA's trtexec, report its GPU compute time
    accuracy: bool = True
    power: bool = True
    power_interval_ms: int = 100
    cv_warn: float = 0.05
    verify: bool = True  # check each artifact against its sidecar (socket_edge.artifact)
    show_progress: bool = True

    @property
    def plan(self) -> TimingPlan:
        return TimingPlan(self.warmup_s, self.duration_s, self.iterations, self.min_iterations)


def error_text(exc: BaseException, path: Path) -> str:
    """A one-line 'PATH: problem' for any exception raised while benchmarking ``path``."""
    if isinstance(exc, SocketEdgeError):
        text = str(exc)
        return text if str(path) in text or path.name in text else f"{path}: {text}"
    if isinstance(exc, ImportError):
        return f"{path}: cannot load its runner ({missing_module_hint(exc) or exc})"
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{path}: {type(exc).__name__}: {first}".rstrip(": ")
