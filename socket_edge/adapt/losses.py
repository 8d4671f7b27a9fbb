"""The four SOCKET losses as small pure functions, plus SHOT's centroid pseudo-labels.

- information_maximization: mean per-sample entropy minus the entropy of the batch-mean
  prediction (confident and diverse predictions).
- pseudo_label_loss: cross-entropy to labels from feature centroids (``centroid_pseudo_labels``).
- ti_alignment: distance between target features of TI target images and the frozen source's
  features of their RGB partners (Euclidean as published, or scale-free cosine).
- neighbourhood_consistency: each prediction pulled towards the predictions of its nearest
  target images in feature space (a departure: NRC / AaD's attraction term).
- bn_moment_loss: for each BatchNorm2d, the distance between the batch mean/variance of its input
  on target data and the running mean/variance stored in the source model; first layer weighted
  higher (``first_weight``). As published a weighted sum of L2 norms, or per-channel RMS with
  weights that sum to 1 (scale-free in width and depth).

docs/architecture.md ("The adaptation objective") states the formulas and which are published.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .config import BN_SCALES, TI_DISTANCES

EPS = 1e-5


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of each row of ``probs``."""
    return -(probs * torch.log(probs + EPS)).sum(-1)


def information_maximization(
    logits: torch.Tensor, batch_mean: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> torch.Tensor:
    """L_IM = mean_i H(p_i) - H(mean_i p_i); minimal for confident, class-balanced predictions.

    ``batch_mean`` averages the predictions over the whole batch when it is split across
    processes (the diversity term must see all of it); by default, over ``logits``' rows.
    """
    probs = logits.float().softmax(-1)
    mean = probs.mean(0) if batch_mean is None else batch_mean(probs)
    return entropy(probs).mean() - entropy(mean)


def pseudo_label_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), labels)


def ti_alignment(
    target_features: torch.Tensor, source_features: torch.Tensor, distance: str = "euclidean"
) -> torch.Tensor:
    """Mean distance between the target and source features of each TI pair.

    ``euclidean`` (published): ||f_t - f_s||_2, in the units of the features, so its weight
    depends on their scale. ``cosine``: 1 - cos(f_t, f_s), in [0, 2] whatever the scale.
    """
    t, s = target_features.float(), source_features.float()
    if distance == "cosine":
        return (1 - F.cosine_similarity(t, s, dim=1)).mean()
    if distance != "euclidean":
        raise ValueError(f"unknown TI distance {distance!r} (choose from {TI_DISTANCES})")
    return torch.linalg.vector_norm(t - s, dim=1).mean()


def bn_moment_loss(
    means: Sequence[torch.Tensor],
    variances: Sequence[torch.Tensor],
    source_means: Sequence[torch.Tensor],
    source_vars: Sequence[torch.Tensor],
    first_weight: float = 10.0,
    scale: str = "sum",
) -> torch.Tensor:
    """Sum over layers of w_l (||mu_l - mu_l^src||_2 + ||var_l - var_l^src||_2).

    w_l = ``first_weight`` for the first layer, 1 for the others. ``scale="sum"`` is the
    published form; ``"rms"`` divides each layer's norms by sqrt(channels) and the sum by
    sum_l w_l, so that wide and narrow layers, deep and shallow networks count alike.
    """
    if scale not in BN_SCALES:
        raise ValueError(f"unknown BN scale {scale!r} (choose from {BN_SCALES})")
    if not means:
        raise ValueError("no BatchNorm moments were collected")
    total = means[0].new_zeros(())
    weights = 0.0
    for i, (m, v, ms, vs) in enumerate(
        zip(means, variances, source_means, source_vars, strict=True)
    ):
        w = first_weight if i == 0 else 1.0
        norms = torch.linalg.vector_norm(m.float() - ms) + torch.linalg.vector_norm(v.float() - vs)
        total = total + w * (norms / m.numel() ** 0.5 if scale == "rms" else norms)
        weights += w
    return total / weights if scale == "rms" else total


def rare_classes(predictions: torch.Tensor, classes: int, fraction: float) -> dict[int, float]:
    """{class: share} of the classes predicted for fewer than ``fraction`` / ``classes`` of the
    samples: the sign of a collapse (a class the model has stopped predicting)."""
    share = torch.bincount(predictions.flatten(), minlength=classes).float() / max(
        1, predictions.numel()
    )
    return {int(c): float(share[c]) for c in range(classes) if share[c] < fraction / classes}


@torch.no_grad()
def centroid_pseudo_labels(
    features: torch.Tensor,
    logits: torch.Tensor,
    iterations: int = 1,
    min_share: float = 0.0,
    keep_classes: bool = False,
) -> torch.Tensor:
    """SHOT's self-supervised pseudo-labels: nearest class centroid in cosine distance.

    Centroids start as the softmax-weighted means of the (L2-normalised, bias-augmented)
    features, then ``iterations`` rounds of hard assignment refine them (as k-means would).
    Classes predicted for fewer than ``min_share`` of the samples get no centroid. As in SHOT, a
    class that no sample is assigned to loses its centroid, so it can never come back;
    ``keep_classes`` keeps its previous centroid instead (every class stays a candidate label).
    """
    f = torch.cat([features.float(), torch.ones_like(features[:, :1])], 1)
    f = F.normalize(f, dim=1)
    weights = logits.float().softmax(1)
    previous = None
    for _ in range(iterations + 1):
        centroids = F.normalize(weights.t() @ f / (weights.sum(0)[:, None] + 1e-8), dim=1)
        share = weights.sum(0) / weights.sum()
        usable = (share > 0) & (share >= min_share)
        if keep_classes and previous is not None:
            centroids[~usable] = previous[~usable]
            usable[:] = True
        previous = centroids
        distance = 1 - f @ centroids.t()
        distance[:, ~usable] = float("inf")
        labels = distance.argmin(1)
        weights = F.one_hot(labels, logits.shape[1]).float()
    return labels


@torch.no_grad()
def nearest_neighbours(features: torch.Tensor, k: int, chunk: int = 4096) -> torch.Tensor:
    """(N, k) indexes of each row's ``k`` nearest other rows in cosine similarity."""
    f = F.normalize(features.float(), dim=1)
    k = min(k, len(f) - 1)
    out = []
    for start in range(0, len(f), chunk):
        sim = f[start : start + chunk] @ f.t()
        rows = torch.arange(start, start + len(sim), device=f.device)
        sim[torch.arange(len(sim), device=f.device), rows] = -float("inf")  # not itself
        out.append(sim.topk(k, dim=1).indices)
    return torch.cat(out)


def neighbourhood_consistency(logits: torch.Tensor, neighbour_probs: torch.Tensor) -> torch.Tensor:
    """-mean_i mean_k p_i . q_ik: each prediction pulled towards those of its feature-space
    neighbours ``neighbour_probs`` (N, k, C; held fixed), as NRC and AaD do. In [-1, 0]."""
    p = logits.float().softmax(-1)
    return -(p[:, None, :] * neighbour_probs.float()).sum(-1).mean()
