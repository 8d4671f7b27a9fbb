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
from ..outputs import check_resume, file_digest, listing_digest, single_writer
from ..training import (
    append_log,
    autocast,
    continue_from,
    epoch_seed,
    make_loader,
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


def refresh_pseudo_labels(
    model, dataset: UnlabelledFolder, device, batch_size: int = 256, group: Group | None = None
) -> torch.Tensor:
    """Pseudo-labels of every target image from the current model.

    The centroids are computed over all images, and rank 0's labels are sent to every process
    so that all train on the same ones.
    """
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
        raise SocketEdgeError(f"modality must be depth or ir, got {modality!r}")
    if meta.get("modality") != "rgb":
        raise CheckpointError(
            f"is a {meta.get('modality')} model; adapt needs the RGB source model "
            "(from `socket-edge train-source`)",
            path,
        )


def check_init(init: dict[str, Any], path: Path, meta: dict[str, Any], modality: str) -> None:
    """``--init`` must be this source's architecture and classes, adapted to ``modality``."""
    im = init["meta"]
    for key in ("arch", "classes", "image_size", "bottleneck_dim"):
        if im.get(key) != meta.get(key):
            raise CheckpointError(
                f"--init does not match the source model: {key} {im.get(key)!r} vs "
                f"{meta.get(key)!r} in --source",
                path,
            )
    if im.get("modality") != modality:
        raise CheckpointError(
            f"--init is a {im.get('modality')} model, --modality is {modality}", path
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
        pairs = PairedFolder(paired, modality, size, augment=False)
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
    """What one adaptation trains with; ``train_epoch`` runs one pass over the target images."""

    cfg: AdaptConfig
    weights: dict[str, float]
    device: Any
    model: Any
    forward: Any  # FeaturesAndLogits over model; DDP-wrapped in a process group
    optimizer: Any
    scaler: Any
    target_set: UnlabelledFolder
    src_means: list[torch.Tensor]
    src_vars: list[torch.Tensor]
    ti_set: TIViews | None = None
    ti_feats: torch.Tensor | None = None  # (pairs, views, features), from the frozen source
    steps_per_epoch: int = 1
    total_steps: int = 1
    group: Group = Group()
    state_file: Path | None = None  # where finished epochs are kept (named in errors)

    def ti_batches(self, es: int):
        if self.ti_set is None:
            return None
        self.ti_set.set_epoch(es)
        cfg, ti_set = self.cfg, self.ti_set
        return _cycle(
            lambda k: shard_loader(ti_set, cfg.ti_batch_size, es + 1 + k, self.group, cfg.workers)
        )

    def set_lr(self, step: int) -> None:
        """The published schedule: lr * (1 + 10 p)^-0.75, backbone at lr_mult (0.1x)."""
        factor = (1 + 10 * step / self.total_steps) ** -0.75
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.lr * group["lr_mult"] * factor

    def losses(self, x, idx, ti_batch, labels) -> dict[str, torch.Tensor]:
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
        if w["pl"] > 0:
            terms["pl"] = losses.pseudo_label_loss(logits, labels[idx].to(self.device))
        if w["bn"] > 0:
            layers = len(self.src_means)  # the target pass's moments come first
            terms["bn"] = losses.bn_moment_loss(
                moments.means[:layers],
                moments.variances[:layers],
                self.src_means,
                self.src_vars,
                self.cfg.bn_first_weight,
                self.cfg.bn_scale,
            )
        if ti_batch is not None:
            _, ti_idx, ti_view = ti_batch
            terms["ti"] = losses.ti_alignment(
                feats[n:], self.ti_feats[ti_idx, ti_view], self.cfg.ti_distance
            )
        return terms

    def diverged(self, epoch: int, step: int, terms: list[str]) -> guard.DivergenceError:
        """The error for a NaN/inf at (0-based) ``epoch`` and ``step``; the state file of the
        last finished epoch stays for --resume."""
        if epoch > 0 and self.state_file is not None:
            kept = f"{self.state_file} keeps epoch {epoch} for --resume"
        else:
            kept = "no epoch had finished"
        return guard.diverged(
            "adaptation",
            epoch + 1,
            step + 1,
            self.steps_per_epoch,
            terms,
            f"try a smaller --lr (now {self.cfg.lr:g}) or smaller loss weights",
            kept,
        )

    def train_epoch(self, epoch: int, progress) -> dict[str, Any]:
        cfg, weights = self.cfg, self.weights
        es = epoch_seed(cfg.seed, epoch)
        torch.manual_seed(es)
        t0 = time.perf_counter()
        labels = (
            refresh_pseudo_labels(self.model, self.target_set, self.device, group=self.group)
            if weights["pl"] > 0
            else None
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
            terms = self.losses(x, idx, ti_batch, labels)
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
        if labels is not None:
            record["pseudo_label_classes"] = int(labels.unique().numel())
        return record


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
) -> Run:
    """Data, target model (classifier frozen), source statistics, cached TI features, optimizer.

    ``init`` (a checkpoint dict, e.g. the deployed adapted model): the target model starts from
    its weights; the BN reference statistics and the TI features still come from the source.
    """
    group = group or Group()
    meta = src["meta"]
    size = int(meta["image_size"])
    weights = cfg.effective_weights()
    target_set = UnlabelledFolder(target, modality, size, augment=True)
    pairs = _load_pairs(paired, modality, size, weights)

    model = _source_model(src, source)
    model.set_encoding(encoding)
    model.to(device, memory_format=torch.channels_last)
    for p in model.classifier.parameters():
        p.requires_grad_(False)
    src_means, src_vars = source_statistics(model.backbone)
    if init is not None:  # re-adaptation: continue from the deployed model
        load_weights(model, init["state_dict"], meta["arch"], init_path or "--init")
    forward: nn.Module = FeaturesAndLogits(model, joint=cfg.joint_batch)
    if group.active:
        globalize_batchnorm(model, group)
        # The BN-moment term alone leaves the last layers without gradient; DDP must know.
        only_bn = weights["im"] == weights["pl"] == weights["ti"] == 0
        forward = distributed.data_parallel(forward, device, static_graph=only_bn)
    run = Run(
        cfg=cfg,
        weights=weights,
        device=device,
        model=model,
        forward=forward,
        optimizer=torch.optim.SGD(
            [
                {"params": list(model.backbone.parameters()), "lr_mult": cfg.backbone_lr_mult},
                {"params": list(model.bottleneck.parameters()), "lr_mult": 1.0},
            ],
            lr=cfg.lr,
            momentum=0.9,
            nesterov=True,
            weight_decay=cfg.weight_decay,
        ),
        scaler=torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and cfg.amp),
        target_set=target_set,
        src_means=[t.to(device) for t in src_means],
        src_vars=[t.to(device) for t in src_vars],
        group=group,
    )
    if pairs is not None:
        source_model = _source_model(src, source).to(device).eval()
        views = ti_views(len(pairs), cfg.ti_views, cfg.seed, pairs.pad)
        run.ti_feats = cache_source_features(source_model, pairs, views, device, group=group)
        run.ti_set = TIViews(pairs, views)
        del source_model  # the source never runs again: its TI features are cached
    epochs = 0 if cfg.method == "source-only" else cfg.epochs
    run.steps_per_epoch = len(make_loader(target_set, cfg.batch_size, True, 0, drop_last=True))
    run.total_steps = max(1, epochs * run.steps_per_epoch)
    return run


def adapted_meta(
    meta: dict[str, Any], source: Path, encoding: Encoding, run: Run
) -> dict[str, Any]:
    """The output checkpoint's metadata: the source's, with the modality and the method."""
    fresh = make_meta(meta["arch"], meta["classes"], int(meta["image_size"]), encoding, "adapted")
    cfg = run.cfg
    return {
        **meta,
        "modality": encoding.modality,
        "encoding": encoding.to_dict(),
        "stage": "adapted",
        "method": {
            "name": cfg.method,
            "weights": run.weights,
            "settings": cfg.to_dict(),
            "ti_pairs": len(run.ti_set) if run.ti_set is not None else 0,
            "source_checkpoint": {"path": str(source), "sha256": sha256_file(source)},
        },
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
        "target": listing_digest(target),
        "paired": listing_digest(paired),
    }


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
    with distributed.joined(cfg.device, on_failure=lambda: _resume_hint(out)) as (group, device):
        group.split(cfg.batch_size, "--batch-size")
        group.split(cfg.ti_batch_size, "ti_batch_size")
        src = read_checkpoint(source)
        meta = src["meta"]
        _check_source(meta, source, modality)
        init_ckpt = None
        if init is not None:
            init = Path(init)
            init_ckpt = read_checkpoint(init)
            check_init(init_ckpt, init, meta, modality)
            encoding = encoding or Encoding.from_dict(init_ckpt["meta"]["encoding"])
        encoding = encoding or default_encoding(modality)
        if encoding.modality != modality:
            raise SocketEdgeError(f"encoding is for {encoding.modality}, --modality is {modality}")
        seed_everything(cfg.seed)
        run = prepare(
            src, source, target, modality, paired, cfg, encoding, device, group, init_ckpt, init
        )
        eval_set = None
        if eval_data and group.is_main:
            eval_set = LabelledFolder(
                eval_data, modality, int(meta["image_size"]), classes=list(meta["classes"])
            )
        settings = {**cfg.to_dict(), "encoding": encoding.to_dict(), "modality": modality}
        settings["inputs"] = distributed.broadcast_object(
            _inputs(source, target, paired) if group.is_main else None, group
        )
        if init is not None:
            settings["init_sha256"] = sha256_file(init)
        start_epoch, history = _resume(out, run, meta["arch"], settings, resume)
        run.state_file = state_path(out)
        out_meta = adapted_meta(meta, source, encoding, run)
        if init is not None:
            out_meta["method"]["init_checkpoint"] = {
                "path": str(init),
                "sha256": settings["init_sha256"],
            }

        epochs = 0 if cfg.method == "source-only" else cfg.epochs
        t_run = time.perf_counter()
        show = show_progress and group.is_main and epochs > 0
        with bar(f"adapt {cfg.method}", run.total_steps if epochs else None, show) as progress:
            progress.advance(start_epoch * run.steps_per_epoch)
            for epoch in range(start_epoch, epochs):
                record = run.train_epoch(epoch, progress)
                if eval_set is not None:
                    record["eval_top1"] = evaluate_model(
                        run.model, eval_set, device=run.device
                    ).top1
                    progress.set(
                        epoch=f"{epoch + 1}/{epochs}",
                        loss=record.get("loss", 0.0),
                        eval=record["eval_top1"],
                    )
                history.append(record)
                if group.is_main:
                    append_log(out, record)
                    save_checkpoint(
                        state_path(out),
                        run.model,
                        out_meta,
                        optimizer=run.optimizer.state_dict(),
                        epoch=epoch + 1,
                        history=history,
                        config=settings,
                    )
                for cb in callbacks or ():
                    cb(epoch + 1, record)

        result: dict[str, Any] = {
            "out": str(out),
            "method": cfg.method,
            "weights": run.weights,
            "history": history,
            "seconds": time.perf_counter() - t_run,
            "processes": group.world_size,
        }
        if not group.is_main:
            return result
        if history and "eval_top1" in history[-1]:
            result["eval_top1"] = history[-1]["eval_top1"]
        elif eval_set is not None:
            result["eval_top1"] = evaluate_model(run.model, eval_set, device=run.device).top1
        if epochs > 0 and cfg.collapse_fraction > 0:
            _, logits = score_targets(run.model, run.target_set, run.device)
            result["rare_classes"] = warn_rare_classes(
                logits, list(meta["classes"]), cfg.collapse_fraction
            )
        out_meta["training"] = {**meta.get("training", {}), "adapt_history": history}
        save_checkpoint(out, run.model.cpu(), out_meta)
        state_path(out).unlink(missing_ok=True)
        return result


def _resume_hint(out: Path) -> str:
    """What to do after a group lost a process mid-run."""
    spath = state_path(out)
    saved = f"{spath} holds the last finished epoch" if spath.exists() else "no epoch finished"
    return f"{saved}; rerun the same command with --resume"
