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

Scores on held-out task-irrelevant pairs (TI pairs kept out of adaptation; still no labels): the
cross-modal premise of SOCKET is that the adapted model should read a depth/IR image as the
source model reads its RGB partner.

- ``ti_agreement``: the share of held-out pairs on which the adapted model's top-1 class on the
  target image is the source model's top-1 class on the RGB image, in [0, 1].
- ``ti_feature_cosine``: the mean cosine similarity of the two models' features on each pair
  (the classifier is shared, so the feature spaces are comparable).
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


def ti_agreement(source_logits: torch.Tensor, target_logits: torch.Tensor) -> float:
    """Share of pairs whose top-1 classes agree (source on RGB, adapted model on the target)."""
    return float((source_logits.argmax(1) == target_logits.argmax(1)).double().mean())


def pair_scores(
    source_features: torch.Tensor,
    source_logits: torch.Tensor,
    target_features: torch.Tensor,
    target_logits: torch.Tensor,
) -> dict[str, float]:
    cosine = torch.nn.functional.cosine_similarity(
        source_features.double(), target_features.double(), dim=1
    )
    return {
        "ti_agreement": ti_agreement(source_logits, target_logits),
        "ti_feature_cosine": float(cosine.mean()),
    }


def score_pairs(
    checkpoint: str | Path,
    source: str | Path,
    paired: str | Path,
    device: str | None = None,
) -> dict[str, float]:
    """The adapted ``checkpoint``'s agreement with its ``source`` model on the held-out TI pairs
    under ``paired`` (``rgb/`` and the target modality's folder, matched by file stem)."""
    from ..data.datasets import PairedFolder
    from ..models.checkpoint import load_checkpoint
    from ..torchutil import make_loader
    from ..training import resolve_device

    dev = resolve_device(device)
    model, meta = load_checkpoint(checkpoint, device=str(dev))
    src, _ = load_checkpoint(source, expect_arch=meta["arch"], device=str(dev))
    pairs = PairedFolder(paired, meta["modality"], int(meta["image_size"]))
    out: list[list[torch.Tensor]] = [[], [], [], []]  # source features, logits; target's
    with torch.no_grad():
        for rgb, target, _ in make_loader(pairs, 256, shuffle=False):  # each pair read once
            for i, (net, x) in enumerate(((src, rgb), (model, target))):
                f = net.features(x.to(dev))
                out[2 * i].append(f.float().cpu())
                out[2 * i + 1].append(net.classify(f).float().cpu())
    return pair_scores(*(torch.cat(t) for t in out))


def check_held_out(paired: str | Path | None, held_out: str | Path, modality: str) -> int:
    """The number of held-out pairs; fails if one of them also adapts (a stem in ``paired``)."""
    from ..data.datasets import match_pairs
    from ..errors import DataError

    kept = match_pairs(held_out, modality)
    used: set[str] = set()
    if paired is not None and Path(paired).is_dir():  # (a bag's pairs have no file stems)
        used = {p.stem for p in match_pairs(paired, modality)}
    both = sorted(p.stem for p in kept if p.stem in used)
    if both:
        shown = ", ".join(both[:3]) + (f", ... ({len(both)} in all)" if len(both) > 3 else "")
        raise DataError(f"held-out pairs also in --paired ({shown}): hold them out of it", held_out)
    return len(kept)


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
