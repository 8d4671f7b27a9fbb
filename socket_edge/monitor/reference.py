"""Reference statistics ("what healthy looks like") and the per-class comparison of a window.

The sidecar's ``reference`` block (written by `socket-edge export`; version 2)::

    version, modality, classes (K), computed_with (artifact whose outputs were used),
    frames {folder, reference, frame_size [H, W] | null, image_size, channels, seed},
    signals {name: {quantiles [SKETCH points], mean, std, kind: input | output}}  (pooled, for people),
    class_shares [K],
    input_percentiles {p01, p05, p50, p95, p99} (pooled raw values, for people),
    per_frame {signals {name: [value per frame]}, predicted [class per frame],
               probs [[softmax output per class, 6 decimals] per frame]}

"What the robot sees" (the class mix: label shift) is told apart from "how the sensor sees it"
(covariate shift) by re-weighting the reference to the window's class mix before comparing:

1. The window's class mix q is estimated from its softmax outputs by the EM procedure of
   Saerens, Latinne and Decaestecker (2002): q <- mean over frames of p(c|x) q_c / p_c,
   normalised per frame, where p is the reference's mean softmax output.
2. Each reference frame gets the weight sum_c (q_c / p_c) p(c|x_i): under a pure change of
   class mix (and calibrated outputs) the weighted reference has the window's distribution, so
   a window of one class drawn from the reference is not drift, whatever its mix.
3. Per signal, each window value gets its mid-rank share u in the weighted reference (mid-PIT:
   the weight below it plus half the weight equal to it), uniform on (0, 1) when nothing but
   the class mix changed. Two z statistics: *location* (mean u against 1/2: the window's values
   lie higher or lower than the reference's) and *spread* (mean |u - 1/2| against 1/4: wider or
   narrower), each over its null standard deviation, which counts the window's n frames and the
   re-weighted reference's effective size m = (sum w)^2 / sum w^2 (the reference's own sampling
   error): var = v (f / n + 1 / m), v = 1/12 and 1/48. Ranks only: scale-free, any unit.

A stream is not a sample: consecutive frames of a robot are correlated (the same view for many
frames), which inflates the variance of a window mean. The window part of the variance is
multiplied by ``f`` >= 1, the long-run to short-run variance ratio of the window's own u
residuals in time order (Bartlett kernel, bandwidth sqrt(n) frames); independent frames give
f close to 1.

The class mix itself is a separate figure: the total variation distance between the window's
predicted class shares and the reference's, with the p-value of a window of independent frames
drawn at the reference's shares. It alarms only when asked.

Version 1 sidecars kept per-frame values only for their 256 held-back frames (``held_back``,
predicted classes without softmax outputs); those serve as the reference then, with one-hot
outputs (re-weighting by predicted class).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ArtifactError
from .signals import OUTPUT_SIGNALS, input_signal_names, input_signals, output_signals

VERSION = 2
SKETCH = 201  # quantile-sketch points per signal (pooled, for people)
MIX_DRAWS = 4000  # simulated windows for the class-mix p-value
EM_STEPS = 200  # at most, for the window's class mix (stops at a change below 1e-7)
CLASSES = "classes"  # the name of the class-mix test


def build_reference(
    images: np.ndarray, logits: np.ndarray, modality: str, classes: list[str], **describe: Any
) -> dict[str, Any]:
    """The reference block (version 2) from in-distribution frames (prepared model inputs) and
    their logits; ``describe`` goes into the block as it is (e.g. ``frames``, ``computed_with``)."""
    if len(images) < 2:
        raise ArtifactError(f"reference statistics need at least 2 images (got {len(images)})")
    k = len(classes)
    out, pred = output_signals(logits)
    probs = softmax(logits)
    sig = {**input_signals(images, modality), **out}
    points = (np.arange(SKETCH) + 0.5) / SKETCH
    signals = {}
    for name, values in sig.items():
        signals[name] = {
            "kind": "output" if name in OUTPUT_SIGNALS else "input",
            "quantiles": _exact(np.quantile(values, points)),
            "mean": float(values.mean()),
            "std": float(values.std()),
        }
    valid = images > 0 if modality == "depth" else np.isfinite(images)
    pooled = images[valid]
    pct = np.percentile(pooled, [1, 5, 50, 95, 99]) if pooled.size else np.zeros(5)
    return {
        "version": VERSION,
        "modality": modality,
        "classes": k,
        **describe,
        "signals": signals,
        "class_shares": _exact(np.bincount(pred, minlength=k) / len(pred)),
        "input_percentiles": dict(
            zip(("p01", "p05", "p50", "p95", "p99"), _exact(pct), strict=True)
        ),
        "per_frame": {
            "signals": {name: _exact(v) for name, v in sig.items()},
            "predicted": [int(c) for c in pred],
            "probs": np.round(probs, 6).tolist(),
        },
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def _exact(a: np.ndarray) -> list[float]:
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
    version = int(ref.get("version", 0))
    if version > VERSION:
        raise ArtifactError("reference statistics are from a newer socket-edge; upgrade", where)
    need = ("signals", "class_shares", "per_frame" if version >= 2 else "held_back")
    for key in need:
        if key not in ref:
            raise ArtifactError(
                f"reference statistics lack {key!r} (export it again with `reference` DIR)",
                where,
                settings=("reference",),
            )
    return ref


def per_frame(ref: dict[str, Any]) -> dict[str, Any]:
    """The per-frame reference values: version 2's ``per_frame``, version 1's ``held_back``."""
    return ref["per_frame"] if "per_frame" in ref else ref["held_back"]


# ---------------------------------------------------------------------------------------------
# Distances and tests


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


def two_sided_p(z: float) -> float:
    """P(|N(0, 1)| >= |z|)."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def dependence_factor(residuals: np.ndarray) -> float:
    """Long-run / short-run variance ratio of a series (Bartlett kernel, bandwidth sqrt(n)),
    at least 1: how much more a sum of these correlated terms varies than independent ones."""
    r = np.asarray(residuals, dtype=np.float64)
    n = len(r)
    g0 = float(r @ r) / n if n else 0.0
    if n < 4 or g0 <= 0:
        return 1.0
    lags = int(math.sqrt(n))
    f = 1.0
    for lag in range(1, min(lags, n - 1) + 1):
        f += 2.0 * (1.0 - lag / (lags + 1.0)) * float(r[:-lag] @ r[lag:]) / n / g0
    return max(1.0, f)


def estimate_mix(probs: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """The class mix of frames with softmax outputs ``probs`` (n, K) from a model whose outputs
    average ``prior`` on the reference (Saerens et al. 2002's EM for a change of prior)."""
    prior = np.clip(np.asarray(prior, dtype=np.float64), 1e-12, None)
    q = prior.copy()
    for _ in range(EM_STEPS):
        a = probs * (q / prior)
        a /= np.clip(a.sum(axis=1, keepdims=True), 1e-300, None)
        new = a.mean(axis=0)
        done = np.abs(new - q).max() < 1e-7
        q = new
        if done:
            break
    return q


@dataclass
class ShiftTest:
    """A signal's comparison of one window with the re-weighted reference (see module doc)."""

    location: float  # z: > 0 when the window's values lie above the reference's
    spread: float  # z: > 0 when they lie further from the reference's middle (wider)
    frames: int
    dependence: float  # f, the variance inflation of correlated frames (>= 1)
    reference_size: float  # effective size of the re-weighted reference

    @property
    def p(self) -> float:
        """The smaller of the two two-sided p-values, doubled (Bonferroni over the pair)."""
        return min(1.0, 2.0 * min(two_sided_p(self.location), two_sided_p(self.spread)))


class ReweightedReference:
    """The reference's per-frame values and outputs, re-weighted to a window's class mix."""

    def __init__(self, ref: dict[str, Any], names: tuple[str, ...]):
        frames = per_frame(ref)
        self.k = int(ref["classes"])
        predicted = np.asarray(frames["predicted"], dtype=np.int64)
        if "probs" in frames:
            probs = np.asarray(frames["probs"], dtype=np.float64).reshape(len(predicted), self.k)
            probs = np.clip(probs, 0.0, None)
            probs /= np.clip(probs.sum(axis=1, keepdims=True), 1e-300, None)
        else:  # version 1: predicted classes only
            probs = np.eye(self.k)[predicted]
        self.probs = probs
        self.prior = probs.mean(axis=0)
        self.order = {}
        self.sorted = {}
        for name in names:
            v = np.asarray(frames["signals"][name], dtype=np.float64)
            order = np.argsort(v, kind="stable")
            self.order[name], self.sorted[name] = order, v[order]
        self.shares = np.asarray(ref["class_shares"], dtype=np.float64)
        self.size = len(predicted)
        self._mix_null: dict[int, np.ndarray] = {}

    def weights(self, window_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the window's estimated class mix q, the reference frames' weights to it)."""
        q = estimate_mix(window_probs, self.prior)
        w = self.probs @ (q / np.clip(self.prior, 1e-12, None))
        top = float(w.max()) if len(w) else 0.0
        return q, (w / top if top > 0 else np.ones_like(w))  # scale-free; no underflow

    def test(self, name: str, values: np.ndarray, weights: np.ndarray) -> ShiftTest:
        """Location and spread of ``values`` (time order) in the reference weighted by ``weights``."""
        y = np.asarray(values, dtype=np.float64)
        n = len(y)
        w = weights[self.order[name]]
        total = float(w.sum())
        if n == 0 or total <= 0:
            return ShiftTest(0.0, 0.0, 0, 1.0, 0.0)
        cum = np.concatenate([[0.0], np.cumsum(w)]) / total
        ref = self.sorted[name]

        def mid_rank(v: np.ndarray) -> np.ndarray:  # the weighted reference's mid-rank CDF
            below = cum[np.searchsorted(ref, v, side="left")]
            return 0.5 * (below + cum[np.searchsorted(ref, v, side="right")])

        u = mid_rank(y)
        s = np.abs(u - 0.5)
        # The null moments of u and |u - 1/2| from the reference itself: 1/2, 1/12, 1/4, 1/48
        # for a continuous signal, smaller where values tie (integer millimetres, a model whose
        # outputs hardly vary); the continuous ones would call a tied window a narrowing.
        share = w / total
        u_ref = mid_rank(ref)
        s_ref = np.abs(u_ref - 0.5)
        m = total**2 / float((w**2).sum())
        f = max(dependence_factor(u - u.mean()), dependence_factor(s - s.mean()))
        scale = f / n + 1.0 / m
        loc = _z(u.mean(), u_ref, share, scale)
        spread = _z(s.mean(), s_ref, share, scale)
        return ShiftTest(float(loc), float(spread), n, f, m)

    def mix(self, predicted: np.ndarray, seed: int = 0) -> tuple[float, float]:
        """(total variation to the reference's class shares, its p-value for a window of
        independent frames at those shares; simulated once per window size)."""
        predicted = np.asarray(predicted, dtype=np.int64)
        n = len(predicted)
        tv = float(tv_distance(predicted[None], self.shares)[0])
        if n not in self._mix_null:
            rng = np.random.default_rng([seed, n])
            counts = rng.multinomial(n, self.shares / self.shares.sum(), MIX_DRAWS) / n
            self._mix_null[n] = np.sort(0.5 * np.abs(counts - self.shares).sum(axis=1))
        null = self._mix_null[n]
        above = len(null) - np.searchsorted(null, tv - 1e-12, side="left")
        return tv, (1.0 + above) / (1.0 + len(null))


def _z(mean: float, null: np.ndarray, share: np.ndarray, scale: float) -> float:
    """(mean - E null) / sd, with the null's weighted variance times ``scale``; 0 where the null
    does not vary (every value tied: no evidence either way)."""
    centre = float(share @ null)
    var = float(share @ (null - centre) ** 2) * scale
    return (mean - centre) / math.sqrt(var) if var > 1e-18 else 0.0


def signal_names(ref: dict[str, Any], with_input: bool) -> tuple[str, ...]:
    names = tuple(OUTPUT_SIGNALS)
    if with_input:
        names = input_signal_names(ref["modality"]) + names
    frames = per_frame(ref)["signals"]
    return tuple(n for n in names if n in ref["signals"] and n in frames)
