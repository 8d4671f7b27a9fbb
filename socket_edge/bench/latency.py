"""The timing loop (warm-up by time, then timed runs) and its statistics, as trtexec reports them.

Each figure is one ``runner.infer`` call timed by the runner itself with ``time.perf_counter``
around the backend's run (CUDA runners synchronise before they return), so the loop around it
adds nothing to the numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class TimingPlan:
    """How long to warm up and to measure. ``iterations`` (if set) replaces ``duration_s``."""

    warmup_s: float = 2.0
    duration_s: float = 10.0
    iterations: int | None = None
    min_iterations: int = 10

    def describe(self) -> str:
        timed = (
            f"{self.iterations} iterations"
            if self.iterations
            else f"{self.duration_s:g} s (at least {self.min_iterations} iterations)"
        )
        return f"warm-up {self.warmup_s:g} s, then {timed}"


def measure(runner, batch: np.ndarray, plan: TimingPlan) -> np.ndarray:
    """Warm up, then time ``runner.infer(batch)`` repeatedly; seconds per call."""
    warm_up(runner, batch, plan.warmup_s)
    return timed_runs(runner, batch, plan)


def warm_up(runner, batch: np.ndarray, seconds: float) -> None:
    """Run for ``seconds`` (at least one call, however short the warm-up)."""
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    start = time.perf_counter()
    runner.infer(batch)
    while time.perf_counter() - start < seconds:
        runner.infer(batch)


def timed_runs(runner, batch: np.ndarray, plan: TimingPlan) -> np.ndarray:
    """The timed calls of ``plan`` (no warm-up); seconds per call, as the runner timed them."""
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    first = len(runner.inference_times)
    if plan.iterations:
        for _ in range(plan.iterations):
            runner.infer(batch)
    else:
        start = time.perf_counter()
        n = 0
        while n < plan.min_iterations or time.perf_counter() - start < plan.duration_s:
            runner.infer(batch)
            n += 1
    return np.asarray(runner.inference_times[first:], dtype=np.float64)


def latency_stats(times_s: np.ndarray, batch: int) -> dict[str, Any]:
    """min/mean/percentiles/max in ms, std, coefficient of variation and images per second."""
    ms = np.asarray(times_s, dtype=np.float64) * 1000.0
    if ms.size == 0:
        raise ValueError("no timings")
    mean = float(ms.mean())
    std = float(ms.std())
    latency = {"min": float(ms.min()), "mean": mean}
    latency.update({f"p{q}": float(np.percentile(ms, q)) for q in PERCENTILES})
    latency["max"] = float(ms.max())
    latency["std"] = std
    return {
        "latency_ms": latency,
        "latency_per_image_ms": mean / batch,
        "throughput_ips": batch * 1000.0 / mean if mean > 0 else None,
        "cv": std / mean if mean > 0 else None,
        "iterations": int(ms.size),
        "timed_s": float(ms.sum()) / 1000.0,
    }
