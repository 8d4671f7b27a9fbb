"""What each epoch trains towards: the current model's scores of every target image, the
pseudo-labels (centroids) and neighbours' predictions drawn from them, and the check for classes
the adapted model may have collapsed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import distributed
from ..console import warn
from ..data.datasets import UnlabelledFolder
from ..distributed import Group
from ..torchutil import make_loader
from . import losses
from .config import AdaptConfig


@torch.no_grad()
def score_targets(
    model, dataset: UnlabelledFolder, device, batch_size: int = 256, group: Group | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, logits) of every target image from the current model (eval mode, no
    augmentation). In a process group each process scores a share; all receive the whole."""
    group = group or Group()
    was_training, was_augmenting = model.training, dataset.augment
    model.eval()
    dataset.augment = False
    mine = torch.utils.data.Subset(dataset, distributed.shard(len(dataset), group))
    feats, logits = [], []
    for x, _ in make_loader(mine, batch_size, shuffle=False):
        f = model.features(x.to(device))
        feats.append(f.float())
        logits.append(model.classify(f).float())
    model.train(was_training)
    dataset.augment = was_augmenting
    n = len(dataset)
    return (
        distributed.gather_rows(torch.cat(feats), n, group),
        distributed.gather_rows(torch.cat(logits), n, group),
    )


@dataclass
class EpochTargets:
    """What one epoch trains towards, from the model at its start: the pseudo-label of every
    target image, and the predictions of each image's nearest neighbours (None when unused)."""

    labels: torch.Tensor | None
    neighbour_probs: torch.Tensor | None  # (images, k, classes)


def refresh_targets(
    model,
    dataset: UnlabelledFolder,
    device,
    cfg: AdaptConfig,
    weights: dict[str, float],
    group: Group | None = None,
) -> EpochTargets:
    """Pseudo-labels and neighbour predictions of every target image from the current model.

    Computed over all images; rank 0's are sent to every process so that all train on the same.
    """
    group = group or Group()
    if weights["pl"] == 0 and weights.get("nc", 0) == 0:
        return EpochTargets(None, None)
    feats, logits = score_targets(model, dataset, device, group=group)
    labels = neighbour_probs = None
    if weights["pl"] > 0:
        labels = losses.centroid_pseudo_labels(feats, logits, keep_classes=cfg.pl_keep_classes)
        labels = distributed.broadcast(labels, group).cpu()
    if weights.get("nc", 0) > 0:
        knn = losses.nearest_neighbours(feats, cfg.nc_neighbours)
        neighbour_probs = distributed.broadcast(logits.softmax(1)[knn].contiguous(), group).cpu()
    return EpochTargets(labels, neighbour_probs)


def warn_rare_classes(
    logits: torch.Tensor, classes: list[str], fraction: float
) -> dict[str, float]:
    """Warn (and return {class: share}) when classes get < ``fraction`` of a uniform share of
    the target predictions: the adapted model may have collapsed them into others."""
    rare = losses.rare_classes(logits.argmax(1), len(classes), fraction)
    named = {classes[c]: share for c, share in rare.items()}
    if named:
        shares = ", ".join(f"{name} {share:.1%}" for name, share in named.items())
        warn(
            f"possible class collapse: {shares} of the target predictions (uniform "
            f"{1 / len(classes):.1%}, warning below {fraction:g} of it); check with --eval "
            "on a few labelled images, or compare --method shot"
        )
    return named
