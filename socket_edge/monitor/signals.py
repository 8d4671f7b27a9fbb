"""Per-frame signals a monitor compares with the reference: numpy only (the robot install).

Input signals come from the raw map the model is fed (canonical units, after the resize):
``valid_share`` (depth: share of pixels with a reading), ``p05``/``p50``/``p95`` (percentiles of
the valid raw values: depth in mm, IR as stored, RGB in [0, 1]) and ``foreground`` (the share of
valid pixels farther from the frame's median than half its p05-p95 range: how much of the frame
stands out from its background). The percentiles follow the sensor's response (gain, offset,
range); ``foreground`` does not move with gain or offset, only with what fills the frame, so it
tells a moved camera (a mount, a lens, a distance: objects that look smaller or larger) where
the percentiles may not (an IR camera with automatic gain; IR only). Output signals come from
the logits: ``max_prob`` (the top softmax probability), ``entropy`` (of the softmax, divided by
log K so that it lies in [0, 1]) and the predicted class.
"""

from __future__ import annotations

import numpy as np

INPUT_SIGNALS = {
    # Depth is metric: a moved camera shows in the distances themselves, and ``foreground`` (a
    # class-dependent object size) only added false alarms with a weak model (RESULTS, monitor).
    "depth": ("valid_share", "p05", "p50", "p95"),
    "ir": ("p05", "p50", "p95", "foreground"),
    "rgb": ("p05", "p50", "p95"),  # foreground unmeasured on RGB streams: not yet
}
OUTPUT_SIGNALS = ("max_prob", "entropy")
# Output signals are kept to FP16's precision (its epsilon is ~1e-3): the reference is recorded
# with one backend and batch size, the robot runs another (TensorRT FP16/INT8, batch 1), and
# differences below that are rounding, not drift. Rank tests would see them: a model whose
# outputs hardly vary (barely trained) would be flagged on the very frames of its reference.
OUTPUT_RESOLUTION = 1e-3


def input_signal_names(modality: str) -> tuple[str, ...]:
    return INPUT_SIGNALS[modality]


def input_signals(frames: np.ndarray, modality: str) -> dict[str, np.ndarray]:
    """Signals of a batch of raw maps (N, C, H, W): one value per frame each."""
    x = np.asarray(frames, dtype=np.float32).reshape(len(frames), -1)
    valid = x > 0 if modality == "depth" else np.isfinite(x)
    out: dict[str, np.ndarray] = {}
    if modality == "depth":
        out["valid_share"] = valid.mean(axis=1).astype(np.float64)
    # Percentiles of the valid values; a frame without any valid pixel gets 0 (as the sensor says).
    masked = np.where(valid, x, np.nan)
    with np.errstate(all="ignore"), _quiet_nan():
        q = np.nanpercentile(masked, [5, 50, 95], axis=1)
    q = np.nan_to_num(q, nan=0.0)
    out["p05"], out["p50"], out["p95"] = (q[i].astype(np.float64) for i in range(3))
    if "foreground" not in INPUT_SIGNALS[modality]:
        return out
    # Half the p05-p95 range: a scale of the frame's own, so gain and offset cancel; a flat
    # frame (no range) has nothing standing out.
    half_range = 0.5 * (q[2] - q[0])[:, None]
    stands_out = valid & (np.abs(x - q[1][:, None]) > half_range) & (half_range > 0)
    counts = np.maximum(valid.sum(axis=1), 1)
    out["foreground"] = (stands_out.sum(axis=1) / counts).astype(np.float64)
    return out


def output_signals(logits: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(max_prob, normalised entropy) per frame, and the predicted classes, from logits (N, K)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    k = z.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -(np.where(p > 0, p * np.log(p), 0.0)).sum(axis=1)
    ent = ent / np.log(k) if k > 1 else np.zeros(len(z))
    signals = {"max_prob": p.max(axis=1), "entropy": ent}
    return {k: np.round(v / OUTPUT_RESOLUTION) * OUTPUT_RESOLUTION for k, v in signals.items()}, (
        p.argmax(axis=1)
    )


class _quiet_nan:
    """Silence numpy's all-NaN-slice warning (frames without valid pixels are expected)."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)
