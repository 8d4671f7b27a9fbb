"""The adaptation loop: one plain training loop for source-only, SHOT and SOCKET.

Per step, on a batch of unlabelled target images and a batch of TI target images (their RGB
partners' source features were computed once, before training):

    L = a * L_PL + b * L_IM + c * L_BN + d * L_TI

(the terms and which choices are the paper's: docs/architecture.md, "The adaptation objective").

The classifier is frozen; the backbone trains at 0.1x the learning rate of the bottleneck; the
learning rate follows lr * (1 + 10 p)^-0.75 over the run (p = progress in [0, 1]). As published,
the target batch and the TI batch pass through the model separately, so that BatchNorm normalises
the target images with their own statistics; hooks collect the BN moments of the target pass
(``joint_batch``: one pass over both, as earlier socket-edge releases did). Every epoch
refreshes the pseudo-labels, writes a resumable state file and appends one line to the log.

Under torchrun the same loop runs in every process (see socket_edge.distributed): each takes its
share of every global batch, DDP averages the gradients, BatchNorm layers and the terms that need
the whole batch (BN moments, the diversity term, the pseudo-label centroids) see all of it, and
only rank 0 writes files or draws progress bars.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import distributed, guard
from ..console import bar, warn
from ..data.datasets import LabelledFolder, PairedFolder, UnlabelledFolder
from ..data.encoding import Encoding, default_encoding
from ..data.transforms import CropFlip, apply_crop_flip, draw_crop_flip
from ..distributed import Group
from ..errors import CheckpointError, SocketEdgeError
from ..evaluate import evaluate_model
from ..files import sha256_file
from ..models.checkpoint import (
    build_model,
    load_weights,
    make_meta,
    read_checkpoint,
    save_checkpoint,
)
from ..models.network import SocketNet
from ..outputs import check_resume, file_digest, listing_digest, single_writer
from ..training import (
    autocast,
    continue_from,
    epoch_seed,
    make_loader,
    save_epoch_state,
    saved_state,
    seed_everything,
    shard_loader,
    state_path,
)
from . import losses
from .batchnorm import globalize_batchnorm
from .config import AdaptConfig
from .moments import MomentCollector, source_statistics


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


def refresh_pseudo_labels(
    model, dataset: UnlabelledFolder, device, batch_size: int = 256, group: Group | None = None
) -> torch.Tensor:
    """SHOT's pseudo-labels of every target image from the current model (rank 0's, everywhere)."""
    group = group or Group()
    feats, logits = score_targets(model, dataset, device, batch_size, group)
    labels = losses.centroid_pseudo_labels(feats, logits)
    return distributed.broadcast(labels, group).cpu()


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


def _check_source(meta: dict[str, Any], path: Path, modality: str) -> None:
    if modality not in ("depth", "ir"):
        raise SocketEdgeError(
            f"modality must be depth or ir, got {modality!r}", settings=("modality",)
        )
    if meta.get("modality") != "rgb":
        raise CheckpointError(
            f"is a {meta.get('modality')} model; adapt needs the RGB source model "
            "(from `socket-edge train-source`)",
            path,
        )


def check_init(init: dict[str, Any], path: Path, meta: dict[str, Any], modality: str) -> None:
    """``init`` must be this source's architecture and classes, adapted to ``modality``."""
    im = init["meta"]
    for key in ("arch", "classes", "image_size", "bottleneck_dim"):
        if im.get(key) != meta.get(key):
            raise CheckpointError(
                f"init does not match the source model: {key} {im.get(key)!r} vs "
                f"{meta.get(key)!r} in the source",
                path,
                settings=("init",),
            )
    if im.get("modality") != modality:
        raise CheckpointError(
            f"init is a {im.get('modality')} model, modality is {modality}",
            path,
            settings=("init", "modality"),
        )


def _cycle(loader_factory):
    """Endless batches; a fresh pass (new order) only when the previous one is used up."""
    k = 0
    while True:
        yield from loader_factory(k)
        k += 1


def _load_pairs(paired, modality: str, size: int, weights: dict[str, float]):
    """The TI pairs, or None (and the TI term switched off, with a warning) when there are none."""
    if weights["ti"] == 0:
        return None
    pairs = None
    if paired is None:
        warn("no --paired folder: SOCKET runs without the TI alignment term")
    else:
        pairs = (
            paired.paired(modality, size)  # a bag's two topics (data/bags.py: BagPairs)
            if hasattr(paired, "paired")
            else PairedFolder(paired, modality, size, augment=False)
        )
        if len(pairs) == 0:
            warn(f"{paired}: no task-irrelevant pairs; SOCKET runs without the TI alignment term")
            pairs = None
    if pairs is None:
        weights["ti"] = 0.0
    return pairs


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
        """The published schedule: lr * (1 + 10 p)^-0.75, backbone at lr_mult (0.1x)."""
        factor = (1 + 10 * step / self.total_steps) ** -0.75
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.lr * group["lr_mult"] * factor

    def losses(self, x, idx, ti_batch, targets: EpochTargets) -> dict[str, torch.Tensor]:
        """Each weighted loss term of one step; target and TI images share one forward pass."""
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
            values = guard.stack_terms(named)
            bad = guard.nonfinite_terms(list(named), values, self.group)
            if bad:
                raise self.diverged(epoch, i, bad)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            images += len(x) + (len(ti_batch[0]) if ti_batch is not None else 0)
            for k, v in zip(named, values.tolist(), strict=True):
                sums[k] = sums.get(k, 0.0) + v
            progress.advance()
            progress.set(
                epoch=f"{epoch + 1}/{cfg.epochs}", **{k: v / (i + 1) for k, v in sums.items()}
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
    """SGD over backbone (at ``backbone_lr_mult``) and bottleneck; the classifier stays frozen."""
    return torch.optim.SGD(
        [
            {"params": list(model.backbone.parameters()), "lr_mult": cfg.backbone_lr_mult},
            {"params": list(model.bottleneck.parameters()), "lr_mult": 1.0},
        ],
        lr=cfg.lr,
        momentum=0.9,
        nesterov=True,
        weight_decay=cfg.weight_decay,
    )


@dataclass
class CachedTI:
    """The TI target images and the frozen source's features of their RGB partners."""

    views: TIViews
    feats: torch.Tensor  # (pairs, views, features)


def _cache_ti(
    src: dict[str, Any], source: Path, pairs: PairedFolder, cfg: AdaptConfig, device, group: Group
) -> CachedTI:
    source_model = _source_model(src, source).to(device).eval()
    views = ti_views(len(pairs), cfg.ti_views, cfg.seed, pairs.pad)
    feats = cache_source_features(source_model, pairs, views, device, group=group)
    # (the source never runs again: its TI features are cached)
    return CachedTI(TIViews(pairs, views), feats)


def prepare(
    src: dict[str, Any],
    source: Path,
    target,
    modality: str,
    paired,
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
        target.unlabelled(modality, size, augment=True)  # a bag topic (data/bags.py: BagTopic)
        if hasattr(target, "unlabelled")
        else UnlabelledFolder(target, modality, size, augment=True)
    )
    pairs = _load_pairs(paired, modality, size, weights)
    model = _target_model(src, source, encoding, device)
    src_means, src_vars = source_statistics(model.backbone)
    if init is not None:  # re-adaptation: continue from the deployed model
        load_weights(model, init["state_dict"], src["meta"]["arch"], init_path or "init")
    forward = _training_forward(model, cfg, weights, device, group)
    optimizer = _optimizer(model, cfg)
    ti = _cache_ti(src, source, pairs, cfg, device, group) if pairs is not None else None
    epochs = 0 if cfg.method == "source-only" else cfg.epochs
    steps_per_epoch = len(make_loader(target_set, cfg.batch_size, True, 0, drop_last=True))
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


def adapted_meta(
    meta: dict[str, Any],
    source: Path,
    encoding: Encoding,
    run: Run,
    init: Path | None = None,
    init_sha256: str | None = None,
) -> dict[str, Any]:
    """The output checkpoint's metadata: the source's, with the modality and the method (and
    the ``init`` checkpoint a re-adaptation started from)."""
    fresh = make_meta(meta["arch"], meta["classes"], int(meta["image_size"]), encoding, "adapted")
    cfg = run.cfg
    method: dict[str, Any] = {
        "name": cfg.method,
        "weights": run.weights,
        "settings": cfg.to_dict(),
        "ti_pairs": len(run.ti_set) if run.ti_set is not None else 0,
        "source_checkpoint": {"path": str(source), "sha256": sha256_file(source)},
    }
    if init is not None:
        method["init_checkpoint"] = {"path": str(init), "sha256": init_sha256}
    return {
        **meta,
        "modality": encoding.modality,
        "encoding": encoding.to_dict(),
        "stage": "adapted",
        "method": method,
        "preprocess": fresh["preprocess"],
        "versions": fresh["versions"],
        "created": fresh["created"],
    }


def _resume(
    out: Path, run: Run, arch: str, settings: dict[str, Any], resume: bool
) -> tuple[int, list]:
    """(first epoch to run, history so far): from the state file when resuming.

    In a process group rank 0 reads the state file and sends it to the others, so only rank 0's
    machine needs the output folder.
    """
    group, spath = run.group, state_path(out)
    state = saved_state(out, resume) if group.is_main else None
    state = distributed.broadcast_object(state, group)
    if state is None:
        return 0, []
    if group.is_main:
        start = continue_from(state, out, settings)
    else:  # the same check, so that every process stops alike on a mismatch
        check_resume(spath, state.get("config"), settings)
        start = int(state["epoch"])
    load_weights(run.model, state["state_dict"], arch, spath)
    run.optimizer.load_state_dict(state["optimizer"])
    return start, list(state["history"])


def _inputs(source: Path, target, paired) -> dict[str, str | None]:
    """What a resume state must have been made from: the source's sha256, the folders' listings."""
    return {
        "source": file_digest(source),
        "target": target.digest() if hasattr(target, "digest") else listing_digest(target),
        "paired": paired.digest() if hasattr(paired, "digest") else listing_digest(paired),
    }


def _check_batches(cfg: AdaptConfig, group: Group) -> None:
    """Both global batches must split evenly across the processes of ``group``."""
    group.split(cfg.batch_size, "batch_size")
    group.split(cfg.ti_batch_size, "ti_batch_size")


@dataclass
class Checkpoints:
    """The source checkpoint, the optional ``init`` checkpoint, and the target encoding."""

    src: dict[str, Any]
    init: dict[str, Any] | None
    encoding: Encoding

    @property
    def meta(self) -> dict[str, Any]:
        return self.src["meta"]


def _read_checkpoints(
    source: Path, modality: str, init: Path | None, encoding: Encoding | None
) -> Checkpoints:
    """Read and check the source (and ``init``); the encoding: given, ``init``'s, or the default."""
    src = read_checkpoint(source)
    _check_source(src["meta"], source, modality)
    init_ckpt = None
    if init is not None:
        init_ckpt = read_checkpoint(init)
        check_init(init_ckpt, init, src["meta"], modality)
        encoding = encoding or Encoding.from_dict(init_ckpt["meta"]["encoding"])
    encoding = encoding or default_encoding(modality)
    if encoding.modality != modality:
        raise SocketEdgeError(
            f"encoding is for {encoding.modality}, modality is {modality}", settings=("modality",)
        )
    return Checkpoints(src, init_ckpt, encoding)


def _resume_settings(
    cfg: AdaptConfig, ckpts: Checkpoints, modality: str, inputs, init: Path | None, group: Group
) -> dict[str, Any]:
    """What a resume state must match: the settings, the encoding and the inputs' digests.

    ``inputs``: (source, target, paired); rank 0 digests them and sends the result to the rest.
    """
    settings = {**cfg.to_dict(), "encoding": ckpts.encoding.to_dict(), "modality": modality}
    settings["inputs"] = distributed.broadcast_object(
        _inputs(*inputs) if group.is_main else None, group
    )
    if init is not None:
        settings["init_sha256"] = sha256_file(init)
    return settings


@dataclass
class Output:
    """Where an adaptation writes: the checkpoint path, its metadata, the settings a resume of
    it must match."""

    path: Path
    meta: dict[str, Any]
    settings: dict[str, Any]

    def save_epoch(self, run: Run, epoch: int, history: list[dict[str, Any]]) -> None:
        """The log line and the resumable state of (0-based) ``epoch``, just finished."""
        save_epoch_state(
            self.path, run.model, self.meta, run.optimizer, epoch, history, self.settings
        )

    def save_final(self, run: Run, history: list[dict[str, Any]]) -> None:
        """The adapted checkpoint; the state file goes."""
        self.meta["training"] = {**self.meta.get("training", {}), "adapt_history": history}
        save_checkpoint(self.path, run.model.cpu(), self.meta)
        state_path(self.path).unlink(missing_ok=True)


def evaluate(run: Run, eval_set: LabelledFolder) -> float:
    """Top-1 of the current model on the labelled ``eval_set`` (monitoring only)."""
    return evaluate_model(run.model, eval_set, device=run.device).top1


def _train(
    run: Run,
    output: Output,
    start_epoch: int,
    history: list[dict[str, Any]],
    eval_set: LabelledFolder | None,
    show: bool,
    callbacks: list | None,
) -> None:
    """Epochs ``start_epoch`` .. ``run.epochs``: train, score, log, keep the state, call back."""
    epochs = run.epochs
    with bar(f"adapt {run.cfg.method}", run.total_steps if epochs else None, show) as progress:
        progress.advance(start_epoch * run.steps_per_epoch)
        for epoch in range(start_epoch, epochs):
            record = run.train_epoch(epoch, progress)
            if eval_set is not None:
                record["eval_top1"] = evaluate(run, eval_set)
                progress.set(
                    epoch=f"{epoch + 1}/{epochs}",
                    loss=record.get("loss", 0.0),
                    eval=record["eval_top1"],
                )
            history.append(record)
            if run.group.is_main:
                output.save_epoch(run, epoch, history)
            for cb in callbacks or ():
                cb(epoch + 1, record)


def _final_checks(
    run: Run, history: list[dict[str, Any]], eval_set: LabelledFolder | None, classes: list[str]
) -> dict[str, Any]:
    """The adapted model's eval top-1 (if scored) and the classes it may have collapsed."""
    found: dict[str, Any] = {}
    if history and "eval_top1" in history[-1]:
        found["eval_top1"] = history[-1]["eval_top1"]
    elif eval_set is not None:
        found["eval_top1"] = evaluate(run, eval_set)
    if run.epochs > 0 and run.cfg.collapse_fraction > 0:
        _, logits = score_targets(run.model, run.target_set, run.device)
        found["rare_classes"] = warn_rare_classes(logits, classes, run.cfg.collapse_fraction)
    return found


def _eval_set(eval_data, modality: str, meta: dict[str, Any]) -> LabelledFolder | None:
    if not eval_data:
        return None
    size, classes = int(meta["image_size"]), list(meta["classes"])
    return LabelledFolder(eval_data, modality, size, classes=classes)


@single_writer("adapt")
def adapt(
    source: str | Path,
    target: str | Path,
    out: str | Path,
    modality: str,
    paired: str | Path | None = None,
    config: AdaptConfig | None = None,
    encoding: Encoding | None = None,
    eval_data: str | Path | None = None,
    resume: bool = False,
    show_progress: bool = True,
    callbacks: list | None = None,
    init: str | Path | None = None,
) -> dict[str, Any]:
    """Adapt the RGB model ``source`` to ``modality`` and write the adapted checkpoint to ``out``.

    ``init``: re-adaptation: the target model starts from this adapted checkpoint (same
    architecture and classes as ``source``; its encoding unless ``encoding`` is given).

    ``callbacks`` are called as ``cb(epoch, record)`` after each epoch's state file is written
    (in every process of a group). Under torchrun, each process runs this function on its share.
    """
    cfg = config or AdaptConfig()
    source, out = Path(source), Path(out)
    init = Path(init) if init is not None else None
    with distributed.joined(cfg.device, on_failure=lambda: _resume_hint(out)) as (group, device):
        _check_batches(cfg, group)
        ckpts = _read_checkpoints(source, modality, init, encoding)
        meta = ckpts.meta
        seed_everything(cfg.seed)
        run = prepare(
            ckpts.src, source, target, modality, paired, cfg, ckpts.encoding, device, group,
            ckpts.init, init, state_path(out),
        )  # fmt: skip
        eval_set = _eval_set(eval_data, modality, meta) if group.is_main else None
        settings = _resume_settings(cfg, ckpts, modality, (source, target, paired), init, group)
        start_epoch, history = _resume(out, run, meta["arch"], settings, resume)
        out_meta = adapted_meta(
            meta, source, ckpts.encoding, run, init, settings.get("init_sha256")
        )
        output = Output(out, out_meta, settings)
        t_run = time.perf_counter()
        show = show_progress and group.is_main and run.epochs > 0
        _train(run, output, start_epoch, history, eval_set, show, callbacks)
        result: dict[str, Any] = {
            "out": str(out),
            "method": cfg.method,
            "weights": run.weights,
            "history": history,
            "seconds": time.perf_counter() - t_run,
            "processes": group.world_size,
        }
        if group.is_main:
            result |= _final_checks(run, history, eval_set, list(meta["classes"]))
            output.save_final(run, history)
        return result


def _resume_hint(out: Path) -> str:
    """What to do after a group lost a process mid-run."""
    spath = state_path(out)
    saved = f"{spath} holds the last finished epoch" if spath.exists() else "no epoch finished"
    return f"{saved}; rerun the same command with --resume"
