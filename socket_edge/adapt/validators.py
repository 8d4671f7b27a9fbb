"""Label-free scores of an adapted model on its unlabelled target images.

Target labels are what a robot team does not have, so a setting can only be chosen on scores
computed from the images alone. Ericsson et al. (arXiv 2309.03879) compared such validators for
source-free adaptation: prediction entropy picked collapsed models, RankMe was among the best.

- ``rankme``: the effective rank of the feature matrix (Garrido et al., ICML 2023): exp of the
  entropy of its normalised singular values. Collapsed or degenerate features have a low rank.
- ``mutual_information``: H(mean p) - mean H(p) in nats (what L_IM maximises): confident and
  class-diverse predictions score high; a collapse onto few classes scores low.
- ``prediction_balance``: entropy of the predicted (argmax) class shares over log(classes), in
  [0, 1]; 1 when every class is predicted equally often.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from .losses import entropy

EPS = 1e-12


def rankme(features: torch.Tensor) -> float:
    """exp(H(s / sum s)) for the singular values s of the (N, D) feature matrix."""
    s = torch.linalg.svdvals(features.double())
    p = s / (s.sum() + EPS) + EPS
    return float(torch.exp(-(p * p.log()).sum()))


def mutual_information(logits: torch.Tensor) -> float:
    probs = logits.double().softmax(1)
    return float(entropy(probs.mean(0)) - entropy(probs).mean())


def prediction_balance(logits: torch.Tensor) -> float:
    classes = logits.shape[1]
    share = torch.bincount(logits.argmax(1), minlength=classes).double() / len(logits)
    share = share[share > 0]
    return float(-(share * share.log()).sum() / math.log(classes))


def scores(features: torch.Tensor, logits: torch.Tensor) -> dict[str, float]:
    return {
        "rankme": rankme(features),
        "mutual_information": mutual_information(logits),
        "prediction_balance": prediction_balance(logits),
    }


def score_checkpoint(
    checkpoint: str | Path, target: str | Path, device: str | None = None
) -> dict[str, float]:
    """The label-free scores of an adapted checkpoint on the images under ``target``."""
    from ..data.datasets import UnlabelledFolder
    from ..models.checkpoint import load_checkpoint
    from ..training import resolve_device
    from .targets import score_targets

    dev = resolve_device(device)
    model, meta = load_checkpoint(checkpoint, device=str(dev))
    dataset = UnlabelledFolder(target, meta["modality"], int(meta["image_size"]))
    features, logits = score_targets(model, dataset, dev)
    return scores(features.cpu(), logits.cpu())


def choose(candidates: dict[str, list[dict[str, Any]]], validator: str = "rankme") -> str:
    """The rule: the candidate whose mean ``validator`` score over all its cells is highest."""
    means = {
        label: sum(c[validator] for c in cells) / len(cells)
        for label, cells in candidates.items()
        if cells
    }
    if not means:
        raise ValueError("no candidate has label-free scores")
    return max(means, key=means.__getitem__)
