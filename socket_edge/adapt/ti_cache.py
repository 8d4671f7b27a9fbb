"""The TI pairs' cache: each TI target image is shown beside one of its RGB partner's views, whose
frozen-source bottleneck features are computed once, before training (the source never runs
again). Views are seeded crops/flips, so a view's cached feature always matches its target crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import distributed
from ..console import warn
from ..data.datasets import PairedFolder
from ..data.transforms import CropFlip, apply_crop_flip, draw_crop_flip
from ..distributed import Group
from .config import AdaptConfig


class TIViews:
    """TI target images, each shown with one of its pair's cached views (same crop and flip).

    Items are (target image, pair index, view index). The view is drawn per epoch and index, so
    the RGB side's cached source feature always matches the crop/flip applied here.
    """

    def __init__(self, pairs: PairedFolder, views: list[list[CropFlip]]):
        self.pairs, self.views = pairs, views
        self.epoch_seed = 0

    def set_epoch(self, seed: int) -> None:
        self.epoch_seed = seed

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int):
        v = int(np.random.default_rng([self.epoch_seed, index]).integers(len(self.views[index])))
        target = self.pairs.load(self.pairs.pairs[index].target)
        view = self.views[index][v]
        return apply_crop_flip(target, view, self.pairs.pad, self.pairs.modality), index, v


def ti_views(n_pairs: int, views: int, seed: int, pad: int) -> list[list[CropFlip]]:
    """The crop/flip of each cached view: view 0 is the plain image, the rest random."""
    plain = CropFlip(pad, pad, False)
    return [
        [plain]
        + [draw_crop_flip(np.random.default_rng([seed, 7, i, v]), pad) for v in range(1, views)]
        for i in range(n_pairs)
    ]


@torch.no_grad()
def cache_source_features(
    source,
    pairs: PairedFolder,
    views: list[list[CropFlip]],
    device,
    batch_size: int = 128,
    group: Group | None = None,
) -> torch.Tensor:
    """Bottleneck features of the frozen source on every view of every TI RGB image: (P, V, D).

    In a process group each process computes a share and all of them receive the whole.
    """
    group = group or Group()
    source.eval()
    flat = [(i, v) for i in range(len(pairs)) for v in range(len(views[i]))]
    mine = [flat[k] for k in distributed.shard(len(flat), group)]
    # (starts with no rows: with fewer items than processes, a rank may have no share)
    feats = [torch.empty(0, source.bottleneck[0].out_features, device=device)]
    for start in range(0, len(mine), batch_size):
        chunk = mine[start : start + batch_size]
        x = torch.stack(
            [
                apply_crop_flip(
                    pairs.load(pairs.pairs[i].rgb, "rgb"), views[i][v], pairs.pad, "rgb"
                )
                for i, v in chunk
            ]
        )
        feats.append(source.features(x.to(device)).float())
    out = distributed.gather_rows(torch.cat(feats), len(flat), group)
    return out.view(len(pairs), len(views[0]), -1)


@dataclass
class CachedTI:
    """The TI target images and the frozen source's features of their RGB partners."""

    views: TIViews
    feats: torch.Tensor  # (pairs, views, features)


def cache_ti(source_model, pairs: PairedFolder, cfg: AdaptConfig, device, group: Group) -> CachedTI:
    """Draw each pair's views and cache the frozen ``source_model``'s features of them."""
    source_model.to(device).eval()
    views = ti_views(len(pairs), cfg.ti_views, cfg.seed, pairs.pad)
    feats = cache_source_features(source_model, pairs, views, device, group=group)
    # (the source never runs again: its TI features are cached)
    return CachedTI(TIViews(pairs, views), feats)


def load_pairs(paired, modality: str, size: int, weights: dict[str, float]):
    """The TI pairs, or None (and the TI term switched off, with a warning) when there are none."""
    if weights["ti"] == 0:
        return None
    pairs = None
    if paired is None:
        warn("no --paired folder: SOCKET runs without the TI alignment term")
    else:
        pairs = (
            paired.paired(modality, size)  # a bag's two topics (data/bags: BagPairs)
            if hasattr(paired, "paired")
            else PairedFolder(paired, modality, size, augment=False)
        )
        if len(pairs) == 0:
            warn(f"{paired}: no task-irrelevant pairs; SOCKET runs without the TI alignment term")
            pairs = None
    if pairs is None:
        weights["ti"] = 0.0
    return pairs
