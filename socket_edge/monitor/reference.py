"""Reference statistics ("what healthy looks like"), window distances and their null thresholds.

The sidecar's ``reference`` block (written by `socket-edge export`)::

    version, modality, classes (K), computed_with (artifact whose outputs were used),
    frames {folder, reference, held_back, frame_size [H, W] | null, channels, seed},
    signals {name: {quantiles [SKETCH points], mean, std, kind: input | output}},
    class_shares [K],
    input_percentiles {p01, p05, p50, p95, p99} (pooled raw values, for people),
    held_back {signals {name: [per-frame values]}, predicted [class per frame]}

Distances of a window to the reference: for every scalar signal the two-sample
Kolmogorov-Smirnov statistic between the window's values and the reference's quantile sketch
(scale-free, any unit), for the predicted classes the total variation distance between the
window's class shares and the reference's. Thresholds come from null windows drawn (with
replacement) from the held-back in-distribution frames, which the reference never saw: each
signal's distance becomes an exceedance level p (share of null windows at least as far), the
window's score is the smallest p over its signals, and the verdict thresholds are the
``false_alarm`` (drifted) and ``warn_rate`` (drifting) quantiles of that score over the null
windows, so the stated rates hold for the combination, not per signal.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ArtifactError
from .signals import OUTPUT_SIGNALS, input_signal_names, input_signals, output_signals

VERSION = 1
SKETCH = 201  # quantile-sketch points per signal
NULL_WINDOWS = 2000
CLASSES = "classes"  # the distance name of the class shares


def build_reference(
    ref_frames: np.ndarray,
    ref_logits: np.ndarray,
    held_frames: np.ndarray,
    held_logits: np.ndarray,
    modality: str,
    classes: list[str],
    **describe: Any,
) -> dict[str, Any]:
    """The reference block from reference frames/logits and held-back frames/logits."""
    if len(ref_frames) == 0 or len(held_frames) == 0:
        raise ArtifactError(
            "reference statistics need reference and held-back images (got "
            f"{len(ref_frames)} and {len(held_frames)})"
        )
    k = len(classes)
    ref_sig = {**input_signals(ref_frames, modality), **output_signals(ref_logits)[0]}
    ref_pred = output_signals(ref_logits)[1]
    held_sig = {**input_signals(held_frames, modality), **output_signals(held_logits)[0]}
    held_pred = output_signals(held_logits)[1]
    probs = (np.arange(SKETCH) + 0.5) / SKETCH
    signals = {}
    for name, values in ref_sig.items():
        signals[name] = {
            "kind": "output" if name in OUTPUT_SIGNALS else "input",
            "quantiles": _round(np.quantile(values, probs)),
            "mean": float(values.mean()),
            "std": float(values.std()),
        }
    valid = ref_frames > 0 if modality == "depth" else np.isfinite(ref_frames)
    pooled = ref_frames[valid]
    pct = np.percentile(pooled, [1, 5, 50, 95, 99]) if pooled.size else np.zeros(5)
    return {
        "version": VERSION,
        "modality": modality,
        "classes": k,
        **describe,
        "signals": signals,
        "class_shares": _round(np.bincount(ref_pred, minlength=k) / len(ref_pred)),
        "input_percentiles": dict(
            zip(("p01", "p05", "p50", "p95", "p99"), _round(pct), strict=True)
        ),
        "held_back": {
            "signals": {name: _round(v) for name, v in held_sig.items()},
            "predicted": [int(c) for c in held_pred],
        },
    }


def _round(a: np.ndarray) -> list[float]:
    # Exact values (JSON keeps a float64 round trip): rounding would break the ties that
    # discrete signals (valid-pixel shares) have with the robot's own values.
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def check_reference(doc: dict[str, Any] | None, where: str) -> dict[str, Any]:
    """The reference block of a sidecar, or a one-line error saying how to get one."""
    ref = (doc or {}).get("reference")
    if not ref:
        raise ArtifactError(
            "has no reference statistics to monitor against: export it again with "
            "`reference` DIR (or `int8` with `calib` DIR)",
            where,
            settings=("reference", "int8", "calib"),
        )
    if int(ref.get("version", 0)) > VERSION:
        raise ArtifactError("reference statistics are from a newer socket-edge; upgrade", where)
    for key in ("signals", "class_shares", "held_back"):
        if key not in ref:
            raise ArtifactError(f"reference statistics lack {key!r}", where)
    return ref


# ---------------------------------------------------------------------------------------------
# Distances


def ks_distance(window: np.ndarray, sketch: np.ndarray) -> np.ndarray:
    """Two-sample KS statistic of each row of ``window`` (B, n) against the sorted ``sketch``."""
    w = np.sort(np.atleast_2d(window), axis=1)
    b, n = w.shape
    grid = np.concatenate([np.broadcast_to(sketch, (b, len(sketch))), w], axis=1)
    f_ref = np.searchsorted(sketch, grid, side="right") / len(sketch)
    f_win = np.stack([np.searchsorted(w[i], grid[i], side="right") for i in range(b)]) / n
    return np.abs(f_win - f_ref).max(axis=1)


def tv_distance(predicted: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Total variation between the class shares of each row of ``predicted`` (B, n) and ``shares``."""
    pred = np.atleast_2d(predicted)
    k = len(shares)
    counts = np.stack([np.bincount(row, minlength=k)[:k] for row in pred]) / pred.shape[1]
    return 0.5 * np.abs(counts - shares).sum(axis=1)


def distances(
    ref: dict[str, Any], values: dict[str, np.ndarray], predicted: np.ndarray | None
) -> dict[str, np.ndarray]:
    """Distance of each signal in ``values`` (arrays (B, n)) and of the class shares."""
    out = {
        name: ks_distance(v, np.asarray(ref["signals"][name]["quantiles"]))
        for name, v in values.items()
    }
    if predicted is not None:
        out[CLASSES] = tv_distance(predicted, np.asarray(ref["class_shares"]))
    return out


class NullModel:
    """Distances of in-distribution windows of one size (bootstrapped from held-back frames)."""

    def __init__(
        self,
        ref: dict[str, Any],
        size: int,
        names: tuple[str, ...],
        with_classes: bool,
        windows: int = NULL_WINDOWS,
        seed: int = 0,
    ):
        held = ref["held_back"]
        n_held = len(held["predicted"])
        idx = np.random.default_rng([seed, size]).integers(0, n_held, (windows, size))
        values = {name: np.asarray(held["signals"][name])[idx] for name in names}
        predicted = np.asarray(held["predicted"])[idx] if with_classes else None
        self.size = size
        dist = distances(ref, values, predicted)
        self.null = {k: np.sort(v) for k, v in dist.items()}
        scores = np.min([self._p(k, v) for k, v in dist.items()], 0)
        self.scores = np.sort(scores)
        self.held_back = n_held

    def _p(self, name: str, d: np.ndarray) -> np.ndarray:
        """Exceedance level of distance(s) ``d``: the share of null windows at least as far."""
        null = self.null[name]
        above = len(null) - np.searchsorted(null, d, side="left")
        return (1.0 + above) / (1.0 + len(null))

    def levels(self, dist: dict[str, float]) -> dict[str, float]:
        return {k: float(self._p(k, np.asarray([v]))[0]) for k, v in dist.items()}

    def threshold(self, rate: float) -> float:
        """The score below which only ``rate`` of in-distribution windows fall."""
        k = int(np.floor(rate * len(self.scores)))
        return float(self.scores[k]) if k < len(self.scores) else 1.0

    def distance_threshold(self, name: str, rate: float) -> float:
        """The distance of ``name`` that only ``rate`` of null windows pass (for people)."""
        null = self.null[name]
        return float(np.quantile(null, 1.0 - rate))


def signal_names(ref: dict[str, Any], with_input: bool) -> tuple[str, ...]:
    names = tuple(OUTPUT_SIGNALS)
    if with_input:
        names = input_signal_names(ref["modality"]) + names
    return tuple(n for n in names if n in ref["signals"])
