"""Activation ranges from ONNX Runtime runs over the calibration set: minmax, percentile, entropy.

Every range is computed once and then used by all INT8 artifacts. Pass 1 records each tensor's
min and max; percentile and entropy then histogram |x| over [0, amax] in a second pass (exact,
where a streaming histogram would have to re-bin) and choose a threshold t, giving the range
(max(min, -t), min(max, t)). Entropy is the KL-divergence search of NVIDIA's 8-bit inference
talk (Migacz, GTC 2017): the threshold whose 128-level quantization loses least information.
"""

from __future__ import annotations

import copy
import math
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from socket_edge.errors import ArtifactError, DataError

METHODS = ("entropy", "percentile", "minmax")
NUM_BINS = 2048
NUM_QUANTIZED_BINS = 128
ENTROPY_CANDIDATES = 128  # thresholds tried between 128 and 2048 bins (the search is O(bins) each)
PERCENTILE = 99.99


@dataclass
class ActivationRanges:
    """(lo, hi) per tensor name, and how they were found."""

    method: str
    ranges: dict[str, tuple[float, float]]
    images: int = 0

    def amax(self, name: str) -> float:
        lo, hi = self.ranges[name]
        return max(abs(lo), abs(hi))

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "images": self.images,
            "ranges": {k: [float(lo), float(hi)] for k, (lo, hi) in self.ranges.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> ActivationRanges:
        return cls(
            d["method"],
            {k: (float(v[0]), float(v[1])) for k, v in d["ranges"].items()},
            int(d.get("images", 0)),
        )

    def tensors_data(self):
        """The same ranges as ONNX Runtime's quantizer takes them (TensorsData)."""
        from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData

        return TensorsData(
            CalibrationMethod.MinMax,
            {
                k: TensorData(lowest=np.float32(lo), highest=np.float32(hi))
                for k, (lo, hi) in self.ranges.items()
            },
        )


def collect(
    model_path: str | Path,
    batches: Iterable[np.ndarray] | None,
    tensors: list[str],
    method: str = "entropy",
    batch_factory: Callable[[], Iterable[np.ndarray]] | None = None,
    show_progress: bool = False,
    total_batches: int | None = None,
    model: Any = None,
) -> ActivationRanges:
    """Ranges of ``tensors`` of the ONNX model over the calibration batches.

    ``batch_factory()`` returns a fresh iterable of batches (histogram methods read the data
    twice); ``batches`` alone suffices for minmax. ``model``: ``model_path`` already parsed.
    """
    if method not in METHODS:
        raise DataError(f"unknown calibration method {method!r} (choose from {', '.join(METHODS)})")
    if batch_factory is None:
        if batches is None:
            raise ValueError("collect() needs batches or batch_factory")
        data = list(batches)
        batch_factory = lambda: data  # noqa: E731
    session = _exposing_session(model_path, tensors, model)
    stats = _Stats(tensors)
    passes = 1 if method == "minmax" else 2
    total = None if total_batches is None else total_batches * passes
    _run(session, stats, batch_factory, passes, f"calibrate ({method})", total, show_progress)
    if stats.images == 0:
        raise DataError("no calibration images to compute ranges from")
    for name in tensors:
        if not math.isfinite(stats.lo[name]) or not math.isfinite(stats.hi[name]):
            raise ArtifactError(
                f"tensor {name!r} took non-finite values during calibration", model_path
            )
    return ActivationRanges(method, {t: stats.range(t, method) for t in tensors}, stats.images)


class _Stats:
    """Per tensor: min and max (pass 1), histogram of |x| over [0, amax] (pass 2)."""

    def __init__(self, tensors: list[str]) -> None:
        self.lo = {t: math.inf for t in tensors}
        self.hi = {t: -math.inf for t in tensors}
        self.hists = {t: np.zeros(NUM_BINS, np.int64) for t in tensors}
        self.images = 0

    def amax(self, name: str) -> float:
        return max(abs(self.lo[name]), abs(self.hi[name]))

    def add(self, name: str, arr: np.ndarray, step: int) -> None:
        if step > 0:
            _add_histogram(self.hists[name], arr, self.amax(name))
        elif arr.size:
            self.lo[name] = min(self.lo[name], float(arr.min()))
            self.hi[name] = max(self.hi[name], float(arr.max()))

    def range(self, name: str, method: str) -> tuple[float, float]:
        """(lo, hi) clipped at ``method``'s threshold."""
        amax = self.amax(name)
        if method == "minmax" or amax == 0.0:
            t = amax
        elif method == "percentile":
            t = percentile_threshold(self.hists[name], amax, PERCENTILE)
        else:
            t = entropy_threshold(self.hists[name], amax)
        return (max(self.lo[name], -t), min(self.hi[name], t))


def _run(
    session: Any,
    stats: _Stats,
    batch_factory: Callable[[], Iterable[np.ndarray]],
    passes: int,
    label: str,
    total: int | None,
    show_progress: bool,
) -> None:
    """Feed every batch ``passes`` times through ``session`` into ``stats``."""
    from socket_edge.console import bar

    tensors = list(stats.lo)
    input_name = session.get_inputs()[0].name
    with bar(label, total, show_progress) as progress:
        for step in range(passes):
            for batch in batch_factory():
                outs = session.run(tensors, {input_name: np.ascontiguousarray(batch, np.float32)})
                if step == 0:
                    stats.images += len(batch)
                for name, arr in zip(tensors, outs, strict=True):
                    stats.add(name, arr, step)
                progress.advance()


def _exposing_session(model_path: str | Path, tensors: list[str], model: Any = None) -> Any:
    """A CPU ONNX Runtime session of the model with ``tensors`` as outputs."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="socket-edge-calib.") as tmp:
        augmented = Path(tmp) / "augmented.onnx"
        _expose(model_path, tensors, augmented, model)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.log_severity_level = 3
        return ort.InferenceSession(str(augmented), options, providers=["CPUExecutionProvider"])


def _expose(model_path: str | Path, tensors: list[str], out: Path, model: Any = None) -> None:
    """Save a copy of the model (``model``, else read from ``model_path``) with ``tensors`` added
    to its outputs."""
    import onnx

    # A copy: the caller's graph keeps its outputs.
    model = onnx.load(str(model_path)) if model is None else copy.deepcopy(model)
    present = {o.name for o in model.graph.output}
    for name in tensors:
        if name not in present:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    onnx.save(model, str(out))


def _add_histogram(hist: np.ndarray, arr: np.ndarray, amax: float) -> None:
    if amax <= 0.0 or arr.size == 0:
        hist[0] += arr.size
        return
    idx = np.minimum((np.abs(arr.ravel()) * (len(hist) / amax)).astype(np.int64), len(hist) - 1)
    hist += np.bincount(idx, minlength=len(hist))


def percentile_threshold(hist: np.ndarray, amax: float, percentile: float = PERCENTILE) -> float:
    """The |x| below which ``percentile`` % of the values lie (upper edge of its bin)."""
    total = hist.sum()
    if total == 0:
        return amax
    idx = int(np.searchsorted(np.cumsum(hist), percentile / 100.0 * total))
    return min(amax, (idx + 1) * amax / len(hist))


def entropy_threshold(
    hist: np.ndarray,
    amax: float,
    num_quantized: int = NUM_QUANTIZED_BINS,
    candidates: int = ENTROPY_CANDIDATES,
) -> float:
    """The threshold minimising KL(P || Q): P the |x| histogram clipped at the threshold, Q its
    quantization to ``num_quantized`` levels spread back over P's non-empty bins."""
    nbins = len(hist)
    h = hist.astype(np.float64)
    if nbins > 1:
        # Exact zeros (everything a ReLU cut) pile up in bin 0; left as they are, they dominate
        # the divergence and push the threshold down to the smallest candidate. Count bin 0 like
        # its neighbour, as NVIDIA's own entropy calibrator does.
        h[0] = h[1]
    if h.sum() == 0 or nbins <= num_quantized:
        return amax
    stride = max(1, (nbins - num_quantized) // candidates)
    ends = list(range(num_quantized, nbins + 1, stride))
    if ends[-1] != nbins:
        ends.append(nbins)
    best_end, best_kl = nbins, math.inf
    for end in ends:
        sliced = h[:end]
        p = sliced.copy()
        p[end - 1] += h[end:].sum()  # P: clipped values land in the last bin
        # Q: the slice WITHOUT the clipped mass, merged into num_quantized levels and spread
        # back over the slice's non-empty bins; the clipped mass is what Q misses.
        edges = (np.arange(num_quantized + 1) * end) // num_quantized
        starts, sizes = edges[:-1], np.diff(edges)
        nonzero = sliced > 0
        chunk_sum = np.add.reduceat(sliced, starts)
        chunk_nz = np.add.reduceat(nonzero.astype(np.float64), starts)
        q = np.where(nonzero, np.repeat(chunk_sum / np.maximum(chunk_nz, 1.0), sizes), 0.0)
        kl = _kl(p, q)
        if kl < best_kl:
            best_kl, best_end = kl, end
    return best_end * amax / nbins


def _kl(p: np.ndarray, q: np.ndarray, eps: float = 1e-4) -> float:
    """KL(P || Q) of two histograms; Q's empty bins where P has mass get ``eps`` of a count."""
    mask = p > 0
    if not mask.any() or q.sum() == 0:
        return math.inf
    q = np.where(mask & (q == 0), eps, q)
    pn, qn = p[mask] / p.sum(), q[mask] / q.sum()
    return float(np.sum(pn * np.log(pn / qn)))
