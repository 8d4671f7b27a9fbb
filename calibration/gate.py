"""The accuracy gate: INT8 against FP32 on held-back target images, and what to keep in float.

With labels (class subfolders matching the model's classes) the drop is the top-1 difference in
points; without labels it is the disagreement with FP32 in points (an upper bound on the drop).
When the drop exceeds the budget, each weighted layer is ranked by the drop measured with only
that layer kept in float, and the most sensitive are kept in float, one more at a time, until
the drop fits. Layers are named by their ONNX node names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from socket_edge.errors import ArtifactError


@dataclass
class Comparison:
    """INT8 vs FP32 on the same images."""

    n: int
    agreement: float  # share of images with the same top-1 class, in [0, 1]
    fp32_top1: float | None = None  # None without labels
    int8_top1: float | None = None

    @property
    def labelled(self) -> bool:
        return self.fp32_top1 is not None

    @property
    def drop(self) -> float:
        """Points lost: top-1 drop with labels, else disagreement with FP32."""
        if self.fp32_top1 is not None and self.int8_top1 is not None:
            return 100.0 * (self.fp32_top1 - self.int8_top1)
        return 100.0 * (1.0 - self.agreement)

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "labelled": self.labelled,
            "agreement": self.agreement,
            "fp32_top1": self.fp32_top1,
            "int8_top1": self.int8_top1,
            "drop_points": self.drop,
        }


def compare(
    fp32_logits: np.ndarray, int8_logits: np.ndarray, labels: np.ndarray | None = None
) -> Comparison:
    a, b = np.asarray(fp32_logits).argmax(1), np.asarray(int8_logits).argmax(1)
    if len(a) == 0:
        raise ArtifactError("the accuracy gate has no images to compare on")
    agreement = float((a == b).mean())
    if labels is None:
        return Comparison(len(a), agreement)
    labels = np.asarray(labels)
    return Comparison(len(a), agreement, float((a == labels).mean()), float((b == labels).mean()))


@dataclass
class GateResult:
    drop: float
    max_drop: float
    float_layers: list[str] = field(default_factory=list)
    sensitivity: dict[str, float] = field(default_factory=dict)  # drop with only this layer float
    initial_drop: float = 0.0
    evaluations: int = 1

    @property
    def passed(self) -> bool:
        return self.drop <= self.max_drop + 1e-9

    def to_dict(self) -> dict:
        ranked = sorted(self.sensitivity.items(), key=lambda kv: kv[1])
        return {
            "max_drop": self.max_drop,
            "drop_points": self.drop,
            "passed": self.passed,
            "initial_drop_points": self.initial_drop,
            "float_layers": self.float_layers,
            "evaluations": self.evaluations,
            "sensitivity": [{"node": k, "drop_points_if_float": v} for k, v in ranked],
        }


def fit_budget(
    measure: Callable[[list[str]], float],
    candidates: list[str],
    max_drop: float,
    initial_drop: float | None = None,
    progress: Callable[[str], None] | None = None,
    rank: Callable[[str], float] | None = None,
) -> GateResult:
    """Keep the most sensitive ``candidates`` in float until ``measure(float_layers) <= max_drop``.

    ``measure(layers)`` quantizes with ``layers`` kept in float and returns the drop in points;
    ``rank(layer)`` (default ``measure([layer])``) scores one layer kept in float, for the
    ranking, and may be cheaper. Costs one ranking call per candidate plus one measurement per
    layer kept in float. The drop is not monotonic in the layers kept (activations between
    float layers stay quantized, and a few hundred images are a coarse measure), so every
    prefix of the ranking is tried rather than stopping when all layers in float do not fit.
    """
    drop = measure([]) if initial_drop is None else initial_drop
    result = GateResult(drop, max_drop, initial_drop=drop)
    if result.passed:
        return result
    rank = rank or (lambda layer: measure([layer]))
    for i, name in enumerate(candidates):
        if progress:
            progress(f"ranking layer {i + 1}/{len(candidates)}")
        result.sensitivity[name] = rank(name)
        result.evaluations += 1
    order = sorted(candidates, key=lambda c: (result.sensitivity[c], candidates.index(c)))
    kept: list[str] = []
    for name in order:
        kept.append(name)
        drop = measure(list(kept))
        result.evaluations += 1
        if progress:
            progress(f"{len(kept)} layer(s) in float: drop {drop:.2f} points")
        if drop <= max_drop + 1e-9:
            break
    result.drop, result.float_layers = drop, kept
    return result
