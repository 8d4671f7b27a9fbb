"""The timing loop and its statistics, on a runner whose latencies are known."""

from __future__ import annotations

import numpy as np
import pytest

from socket_edge.bench.latency import TimingPlan, latency_stats, measure
from socket_edge.runtime.base import ArtifactInfo, Runner


class CountingRunner(Runner):
    """Returns zeros; counts its calls."""

    backend = "fake"

    def load_info(self) -> ArtifactInfo:
        return ArtifactInfo(self.path, "onnx", ["a", "b"], "depth", 8, {}, {})

    def activate_impl(self) -> None:
        self.calls = 0

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.zeros((len(batch), 2), dtype=np.float32)


def test_stats_of_known_latencies():
    times_s = np.arange(1, 101) / 1000.0  # 1..100 ms
    out = latency_stats(times_s, batch=4)
    lat = out["latency_ms"]
    assert lat["min"] == pytest.approx(1.0)
    assert lat["max"] == pytest.approx(100.0)
    assert lat["mean"] == pytest.approx(50.5)
    assert lat["p50"] == pytest.approx(50.5)
    assert lat["p90"] == pytest.approx(90.1)
    assert lat["p99"] == pytest.approx(99.01)
    assert out["throughput_ips"] == pytest.approx(4 * 1000 / 50.5)
    assert out["latency_per_image_ms"] == pytest.approx(50.5 / 4)
    assert out["cv"] == pytest.approx(np.std(np.arange(1, 101)) / 50.5)
    assert out["iterations"] == 100
    assert out["timed_s"] == pytest.approx(5.050)


def test_constant_latency_has_zero_variation():
    out = latency_stats(np.full(20, 0.002), batch=1)
    assert out["cv"] == pytest.approx(0.0)
    assert out["latency_ms"]["p99"] == pytest.approx(2.0)
    with pytest.raises(ValueError):
        latency_stats(np.array([]), batch=1)


def test_iterations_are_exact_and_warm_up_runs_first(tmp_path):
    with CountingRunner(tmp_path / "m.onnx") as runner:
        times = measure(runner, np.zeros((2, 1, 8, 8)), TimingPlan(warmup_s=0.0, iterations=7))
        assert len(times) == 7
        assert runner.calls == 8  # one warm-up call even with a zero warm-up
        assert np.array_equal(times, np.asarray(runner.inference_times[1:]))


def test_duration_mode_runs_at_least_the_minimum(tmp_path):
    with CountingRunner(tmp_path / "m.onnx") as runner:
        times = measure(
            runner,
            np.zeros((1, 1, 8, 8)),
            TimingPlan(warmup_s=0.05, duration_s=0.0, min_iterations=12),
        )
        assert len(times) == 12
        assert runner.calls > 12  # warm-up calls ran for 50 ms before
        times = measure(
            runner,
            np.zeros((1, 1, 8, 8)),
            TimingPlan(warmup_s=0.0, duration_s=0.05, min_iterations=1),
        )
        assert times.size > 1


def test_plan_is_described_for_the_report():
    assert TimingPlan(1, 5).describe() == "warm-up 1 s, then 5 s (at least 10 iterations)"
    assert TimingPlan(0.5, 5, iterations=200).describe() == "warm-up 0.5 s, then 200 iterations"
