"""The INT8 gate: INT8 against FP32 on held-back target images, and what to keep in float.

Two budgets, both checked on every INT8 model: the disagreement with FP32 (share of images whose
top-1 class changes, in percent; needs no labels), and, with labels (class subfolders matching
the model's classes), the top-1 drop in points. A model that changes many decisions can keep its
accuracy (the changes cancel); on a robot nobody can measure accuracy afterwards, so an INT8
artifact must be faithful to its FP32 model, not only as accurate.

When a budget is exceeded, each weighted layer is ranked by the excess measured with only that
layer kept in float, and the most sensitive are kept in float, one more at a time, until both
fit. Layers are named by their ONNX node names.
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
    def disagreement(self) -> float:
        """Percent of images whose top-1 class differs from FP32's."""
        return 100.0 * (1.0 - self.agreement)

    @property
    def drop(self) -> float:
        """Points lost: top-1 drop with labels, else disagreement with FP32 (an upper bound)."""
        if self.fp32_top1 is not None and self.int8_top1 is not None:
            return 100.0 * (self.fp32_top1 - self.int8_top1)
        return self.disagreement

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "labelled": self.labelled,
            "agreement": self.agreement,
            "disagreement_percent": self.disagreement,
            "fp32_top1": self.fp32_top1,
            "int8_top1": self.int8_top1,
            "drop_points": self.drop if self.labelled else None,
        }


def compare(
    fp32_logits: np.ndarray, int8_logits: np.ndarray, labels: np.ndarray | None = None
) -> Comparison:
    a, b = np.asarray(fp32_logits).argmax(1), np.asarray(int8_logits).argmax(1)
    if len(a) == 0:
        raise ArtifactError("the INT8 gate has no images to compare on")
    if not (np.isfinite(fp32_logits).all() and np.isfinite(int8_logits).all()):
        agreement = 0.0  # a NaN/inf logit is no decision at all
    else:
        agreement = float((a == b).mean())
    if labels is None:
        return Comparison(len(a), agreement)
    labels = np.asarray(labels)
    return Comparison(len(a), agreement, float((a == labels).mean()), float((b == labels).mean()))


@dataclass(frozen=True)
class Budget:
    """What INT8 may cost: ``max_disagreement`` percent of top-1 decisions changed (always), and
    ``max_drop`` points of top-1 (only where labels exist)."""

    max_drop: float = 1.0
    max_disagreement: float = 2.0

    def excess(self, c: Comparison) -> float:
        """Points over the tighter-hit budget (<= 0: within both)."""
        over = c.disagreement - self.max_disagreement
        if c.labelled:
            over = max(over, c.drop - self.max_drop)
        return over

    def describe(self, c: Comparison) -> str:
        changed = round(c.n * (1.0 - c.agreement))
        text = (
            f"disagreement with FP32 {c.disagreement:.2f}% ({changed} of {c.n} images; budget "
            f"{self.max_disagreement:g}%)"
        )
        if c.labelled:
            text = f"top-1 drop {c.drop:.2f} points (budget {self.max_drop:g}), " + text
        return text


def worst(comparisons: list[Comparison], budget: Budget) -> Comparison:
    """The comparison furthest over (or least within) ``budget``."""
    return max(comparisons, key=budget.excess)


@dataclass
class GateResult:
    drop: float  # the measured value the search drives down (for export: excess over budgets)
    max_drop: float  # what it must reach (for export: 0)
    float_layers: list[str] = field(default_factory=list)
    sensitivity: dict[str, float] = field(default_factory=dict)  # value with only this in float
    initial_drop: float = 0.0
    evaluations: int = 1

    @property
    def passed(self) -> bool:
        return self.drop <= self.max_drop + 1e-9

    def ranked(self) -> list[str]:
        """Candidates, most sensitive (lowest value when kept in float) first."""
        return [k for k, _ in sorted(self.sensitivity.items(), key=lambda kv: kv[1])]

    def to_dict(self) -> dict:
        return {
            "max_drop": self.max_drop,
            "drop_points": self.drop,
            "passed": self.passed,
            "initial_drop_points": self.initial_drop,
            "float_layers": self.float_layers,
            "evaluations": self.evaluations,
            "sensitivity": [
                {"node": k, "drop_points_if_float": self.sensitivity[k]} for k in self.ranked()
            ],
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

    ``measure(layers)`` quantizes with ``layers`` kept in float and returns what must fit (a drop
    in points, or the excess over several budgets with ``max_drop`` 0); ``rank(layer)`` (default
    ``measure([layer])``) scores one layer kept in float, for the ranking, and may be cheaper.
    Costs one ranking call per candidate plus one measurement per layer kept in float. The value
    is not monotonic in the layers kept (activations between float layers stay quantized, and a
    few hundred images are a coarse measure), so every prefix of the ranking is tried rather than
    stopping when all layers in float do not fit.
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
    best = (drop, [])
    for name in order:
        kept.append(name)
        drop = measure(list(kept))
        result.evaluations += 1
        if progress:
            progress(f"{len(kept)} layer(s) in float: {drop:.2f} points")
        if drop < best[0]:
            best = (drop, list(kept))
        if drop <= max_drop + 1e-9:
            break
    result.drop, result.float_layers = drop, kept
    if not result.passed:  # report the closest it came, not merely the last try
        result.drop, result.float_layers = best[0], best[1] or kept
    return result
