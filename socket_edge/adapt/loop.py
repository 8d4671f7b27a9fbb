"""The adaptation loop: one plain training loop for source-only, SHOT and SOCKET.

Per step, on a batch of unlabelled target images and a batch of TI target images (their RGB
partners' source features were computed once, before training: ``ti_cache``):

    L = a * L_PL + b * L_IM + c * L_BN + d * L_TI

(the terms and which choices are the paper's: docs/architecture.md, "The adaptation objective").

The classifier is frozen; the backbone trains at a multiple of the bottleneck's learning rate
(published 0.1x, socket-rms 1x: ``AdaptConfig.backbone_rate``); the learning rate follows
lr * (1 + 10 p)^-0.75 over the run (p = progress in [0, 1]). As published, the target batch and
the TI batch pass through the model separately, so that BatchNorm normalises the target images
with their own statistics; hooks collect the BN moments of the target pass
(``joint_batch``: a single pass over both, so that BatchNorm normalises target and TI images
together; off by default). Every epoch refreshes the pseudo-labels (``targets``); ``entry.adapt``
drives the epochs, writing a resumable state file and one log line after each (``resume``).

Under torchrun the same loop runs in every process (see socket_edge.distributed): each takes its
share of every global batch, DDP averages the gradients, BatchNorm layers and the terms that need
the whole batch (BN moments, the diversity term, the pseudo-label centroids) see all of it, and
only rank 0 writes files or draws progress bars.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import distributed, guard
from ..data.datasets import UnlabelledFolder
from ..data.encoding import Encoding
from ..distributed import Group
from ..models.checkpoint import build_model, load_weights
from ..models.network import SocketNet
from ..training import (
    autocast,
    epoch_seed,
    make_loader,
    optimiser_step,
    shard_loader,
)
from . import losses
from .batchnorm import globalize_batchnorm
from .config import AdaptConfig
from .moments import MomentCollector, source_statistics
from .targets import EpochTargets, refresh_targets
from .ti_cache import TIViews, cache_ti, load_pairs


def _cycle(loader_factory):
    """Endless batches; a fresh pass (new order) only when the previous one is used up."""
    k = 0
    while True:
        yield from loader_factory(k)
        k += 1


def _source_model(src: dict[str, Any], path: Path):
    model = build_model(src["meta"])
    load_weights(model, src["state_dict"], src["meta"]["arch"], path)
    return model


class FeaturesAndLogits(nn.Module):
    """One training forward: features of the whole batch, logits of its first ``n`` rows (the
    target images; TI target images ride along for their features). What DDP wraps.

    ``joint``: one pass over all rows (BatchNorm sees target and TI images together); otherwise
    the target rows pass first and the TI rows second, each with its own batch statistics.
    """

    def __init__(self, model, joint: bool = True):
        super().__init__()
        self.model = model
        self.joint = joint

    def forward(self, x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.joint or n >= len(x):
            feats = self.model.features(x)
        else:
            feats = torch.cat([self.model.features(x[:n]), self.model.features(x[n:])])
        return feats, self.model.classify(feats[:n])


@dataclass
class Run:
    """What one adaptation trains with (built by ``prepare``, in one place); ``train_epoch`` runs
    one pass over the target images."""

    cfg: AdaptConfig
    weights: dict[str, float]  # the loss weights in effect (TI off without pairs)
    device: torch.device
    model: SocketNet
    forward: nn.Module  # FeaturesAndLogits over model; DDP-wrapped in a process group
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    target_set: UnlabelledFolder
    src_means: list[torch.Tensor]  # the source's BN running statistics, per layer
    src_vars: list[torch.Tensor]
    ti_set: TIViews | None  # None: no TI pairs (or the TI term is off)
    ti_feats: torch.Tensor | None  # (pairs, views, features), from the frozen source
    epochs: int  # epochs to train (0 for source-only)
    steps_per_epoch: int
    total_steps: int
    group: Group
    state_file: Path | None  # where finished epochs are kept (named in errors)

    def ti_batches(self, es: int):
        if self.ti_set is None:
            return None
        self.ti_set.set_epoch(es)
        cfg, ti_set = self.cfg, self.ti_set
        return _cycle(
            lambda k: shard_loader(
                ti_set, cfg.ti_batch_size, es + 1 + k, self.group, cfg.workers, "ti_batch_size"
            )
        )

    def set_lr(self, step: int) -> None:
        """The published schedule: lr * (1 + 10 p)^-0.75, the backbone at its ``lr_mult``."""
        factor = (1 + 10 * step / self.total_steps) ** -0.75
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.lr * group["lr_mult"] * factor

    def losses(self, x, idx, ti_batch, targets: EpochTargets) -> dict[str, torch.Tensor]:
        """Each weighted loss term of one step. The target and TI images pass through the
        model separately (one pass over both with ``joint_batch``); L_BN takes the target
        pass's BatchNorm moments."""
        n = len(x)
        batch = x if ti_batch is None else torch.cat([x, ti_batch[0]])
        batch = batch.to(self.device, non_blocking=True, memory_format=torch.channels_last)
        collector = MomentCollector(self.model.backbone, self.group)
        with collector as moments, autocast(self.device, self.cfg.amp):
            feats, logits = self.forward(batch, n)
        w, terms = self.weights, {}
        if w["im"] > 0:
            terms["im"] = losses.information_maximization(
                logits, lambda p: distributed.batch_mean(p, self.group)
            )
        if targets.labels is not None:
            terms["pl"] = losses.pseudo_label_loss(logits, targets.labels[idx].to(self.device))
        if targets.neighbour_probs is not None:
            terms["nc"] = losses.neighbourhood_consistency(
                logits, targets.neighbour_probs[idx].to(self.device)
            )
        if w["bn"] > 0:
            layers = len(self.src_means)  # the target pass's moments come first
            terms["bn"] = losses.bn_moment_loss(
                moments.means[:layers],
                moments.variances[:layers],
                self.src_means,
                self.src_vars,
                self.cfg.bn_first_weight,
                self.cfg.bn_term_scale,
            )
        if ti_batch is not None:
            _, ti_idx, ti_view = ti_batch
            terms["ti"] = losses.ti_alignment(
                feats[n:], self.ti_feats[ti_idx, ti_view], self.cfg.ti_distance
            )
        return terms

    def diverged(self, epoch: int, step: int, terms: list[str]) -> guard.DivergenceError:
        """The error for a NaN/inf at (0-based) ``epoch`` and ``step``; the state file of the
        last finished epoch stays for a resume."""
        if epoch > 0 and self.state_file is not None:
            kept = f"{self.state_file} keeps epoch {epoch} for resume"
        else:
            kept = "no epoch had finished"
        hint = f"try a smaller lr (now {self.cfg.lr:g}) or smaller loss weights"
        settings: tuple[str, ...] = ("lr", "resume")
        if "bn" in terms and self.cfg.bn_term_scale == "sum":
            # Measured on the built-in depth data: the published (unnormalised) BN term is what
            # runs away; the scale-free form stays stable there (docs/architecture.md).
            hint += ", or bn_scale rms (the scale-free BN term)"
            settings += ("bn_scale",)
        return guard.diverged(
            "adaptation", epoch + 1, step + 1, self.steps_per_epoch, terms, hint, kept,
            settings=settings,
        )  # fmt: skip

    def train_epoch(self, epoch: int, progress) -> dict[str, Any]:
        cfg, weights = self.cfg, self.weights
        es = epoch_seed(cfg.seed, epoch)
        torch.manual_seed(es)
        t0 = time.perf_counter()
        targets = refresh_targets(
            self.model, self.target_set, self.device, cfg, weights, self.group
        )
        self.target_set.set_epoch(es)
        loader = shard_loader(self.target_set, cfg.batch_size, es, self.group, cfg.workers)
        ti_batches = self.ti_batches(es)
        self.model.train()
        sums: dict[str, float] = {}
        images = 0
        for i, (x, idx) in enumerate(loader):
            self.set_lr(epoch * self.steps_per_epoch + i)
            ti_batch = next(ti_batches) if ti_batches is not None else None
            terms = self.losses(x, idx, ti_batch, targets)
            loss = sum(weights[k] * v for k, v in terms.items())
            named = {"loss": loss, **terms}
            # One read-back of all terms serves the log and the divergence check.
            values = optimiser_step(
                loss, named, self.optimizer, self.scaler,
                partial(self.diverged, epoch, i), self.group,
            )  # fmt: skip
            images += len(x) + (len(ti_batch[0]) if ti_batch is not None else 0)
            for k, v in zip(named, values.tolist(), strict=True):
                sums[k] = sums.get(k, 0.0) + v
            progress.advance()
            progress.set(
                epoch=f"{epoch + 1}/{self.epochs}", **{k: v / (i + 1) for k, v in sums.items()}
            )
        if guard.nonfinite_tensors(self.model.state_dict()):  # the last step's update
            raise self.diverged(epoch, self.steps_per_epoch - 1, ["weights"])
        sums = distributed.mean_over_ranks(sums, self.group)
        seconds = time.perf_counter() - t0
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            **{k: v / max(1, self.steps_per_epoch) for k, v in sums.items()},
            "seconds": seconds,
            "images_per_s": images * self.group.world_size / seconds,
        }
        if targets.labels is not None:
            record["pseudo_label_classes"] = int(targets.labels.unique().numel())
        return record


def _target_model(src: dict[str, Any], source: Path, encoding: Encoding, device) -> SocketNet:
    """The source model in the target encoding, on ``device``, with its classifier frozen."""
    model = _source_model(src, source)
    model.set_encoding(encoding)
    model.to(device, memory_format=torch.channels_last)
    for p in model.classifier.parameters():
        p.requires_grad_(False)
    return model


def _training_forward(
    model: SocketNet, cfg: AdaptConfig, weights: dict[str, float], device, group: Group
) -> nn.Module:
    """The forward the loop calls: FeaturesAndLogits, under DDP (and whole-batch BN) in a group."""
    forward: nn.Module = FeaturesAndLogits(model, joint=cfg.joint_batch)
    if group.active:
        globalize_batchnorm(model, group)
        # The BN-moment term alone leaves the last layers without gradient; DDP must know.
        only_bn = weights["im"] == weights["pl"] == weights["ti"] == weights.get("nc", 0) == 0
        forward = distributed.data_parallel(forward, device, static_graph=only_bn)
    return forward


def _optimizer(model: SocketNet, cfg: AdaptConfig) -> torch.optim.SGD:
    """SGD over backbone (at ``backbone_rate``) and bottleneck; the classifier stays frozen."""
    return torch.optim.SGD(
        [
            {"params": list(model.backbone.parameters()), "lr_mult": cfg.backbone_rate},
            {"params": list(model.bottleneck.parameters()), "lr_mult": 1.0},
        ],
        lr=cfg.lr,
        momentum=0.9,
        nesterov=True,
        weight_decay=cfg.weight_decay,
    )


def prepare(
    src: dict[str, Any],
    source: Path,
    target,
    modality: str,
    *,
    paired=None,
    cfg: AdaptConfig,
    encoding: Encoding,
    device,
    group: Group | None = None,
    init: dict[str, Any] | None = None,
    init_path: Path | None = None,
    state_file: Path | None = None,
) -> Run:
    """Data, target model (classifier frozen), source statistics, cached TI features, optimizer.

    ``init`` (a checkpoint dict, e.g. the deployed adapted model): the target model starts from
    its weights; the BN reference statistics and the TI features still come from the source.
    ``state_file``: where the run keeps finished epochs (named when it diverges).
    """
    group = group or Group()
    size = int(src["meta"]["image_size"])
    weights = cfg.effective_weights()
    target_set = (
        target.unlabelled(modality, size, augment=True)  # a bag topic (data/bags: BagTopic)
        if hasattr(target, "unlabelled")
        else UnlabelledFolder(target, modality, size, augment=True)
    )
    pairs = load_pairs(paired, modality, size, weights)
    model = _target_model(src, source, encoding, device)
    src_means, src_vars = source_statistics(model.backbone)
    if init is not None:  # re-adaptation: continue from the deployed model
        load_weights(model, init["state_dict"], src["meta"]["arch"], init_path or "init")
    forward = _training_forward(model, cfg, weights, device, group)
    optimizer = _optimizer(model, cfg)
    ti = None
    if pairs is not None:  # the source's features of the TI views, computed once
        ti = cache_ti(_source_model(src, source), pairs, cfg, device, group)
    steps_per_epoch = len(make_loader(target_set, cfg.batch_size, True, 0, drop_last=True))
    epochs = 0 if cfg.method == "source-only" else cfg.epochs_for(steps_per_epoch)
    return Run(
        cfg=cfg,
        weights=weights,
        device=device,
        model=model,
        forward=forward,
        optimizer=optimizer,
        scaler=torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and cfg.amp),
        target_set=target_set,
        src_means=[t.to(device) for t in src_means],
        src_vars=[t.to(device) for t in src_vars],
        ti_set=ti.views if ti is not None else None,
        ti_feats=ti.feats if ti is not None else None,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        total_steps=max(1, epochs * steps_per_epoch),
        group=group,
        state_file=state_file,
    )
