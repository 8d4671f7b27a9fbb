"""`socket-edge bench`: latency, accuracy, agreement, memory and energy of artifacts."""

from .run import BenchConfig, bench

__all__ = ["BenchConfig", "bench"]
