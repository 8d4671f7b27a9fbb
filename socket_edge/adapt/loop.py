"""The adaptation loop: one plain training loop for source-only, SHOT and SOCKET.

Per step, on a batch of unlabelled target images and a batch of TI target images (their RGB
partners' source features were computed once, before training):

    L = a * L_PL + b * L_IM + c * L_BN + d * L_TI

The classifier is frozen; the backbone trains at 0.1x the learning rate of the bottleneck; the
learning rate follows lr * (1 + 10 p)^-0.75 over the run (p = progress in [0, 1]). Target and TI
target images share one forward pass, in which hooks collect the BatchNorm moments. Every epoch
refreshes the pseudo-labels, writes a resumable state file and appends one line to the log.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..console import bar, info, warn
from ..data.datasets import LabelledFolder, PairedFolder, UnlabelledFolder
from ..data.encoding import Encoding, default_encoding
from ..data.transforms import CropFlip, apply_crop_flip, draw_crop_flip
from ..errors import CheckpointError, SocketEdgeError
from ..files import sha256_file
from ..models.checkpoint import build_model, load_weights, read_checkpoint, save_checkpoint
from ..training import (
    append_log,
    autocast,
    epoch_seed,
    make_loader,
    resolve_device,
    seed_everything,
    state_path,
    truncate_log,
)
from . import losses
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
    source, pairs: PairedFolder, views: list[list[CropFlip]], device, batch_size: int = 128
) -> torch.Tensor:
    """Bottleneck features of the frozen source on every view of every TI RGB image: (P, V, D)."""
    source.eval()
    flat = [(i, v) for i in range(len(pairs)) for v in range(len(views[i]))]
    feats = []
    for start in range(0, len(flat), batch_size):
        chunk = flat[start : start + batch_size]
        x = torch.stack(
            [
                apply_crop_flip(
                    pairs.load(pairs.pairs[i].rgb, "rgb"), views[i][v], pairs.pad, "rgb"
                )
                for i, v in chunk
            ]
        )
        feats.append(source.features(x.to(device)).float())
    out = torch.cat(feats)
    return out.view(len(pairs), len(views[0]), -1)


@torch.no_grad()
def refresh_pseudo_labels(
    model, dataset: UnlabelledFolder, device, batch_size: int = 256
) -> torch.Tensor:
    """Pseudo-labels of every target image from the current model (eval mode, no augmentation)."""
    was_training, was_augmenting = model.training, dataset.augment
    model.eval()
    dataset.augment = False
    feats, logits = [], []
    for x, _ in make_loader(dataset, batch_size, shuffle=False):
        f = model.features(x.to(device))
        feats.append(f.float())
        logits.append(model.classify(f).float())
    model.train(was_training)
    dataset.augment = was_augmenting
    return losses.centroid_pseudo_labels(torch.cat(feats), torch.cat(logits)).cpu()


def _check_source(meta: dict[str, Any], path: Path, modality: str) -> None:
    if modality not in ("depth", "ir"):
        raise SocketEdgeError(f"--modality must be depth or ir, got {modality!r}")
    if meta.get("modality") != "rgb":
        raise CheckpointError(
            f"is a {meta.get('modality')} model; adapt needs the RGB source model "
            "(from `socket-edge train-source`)",
            path,
        )


def _cycle(loader_factory):
    """Endless batches; a fresh pass (new order) only when the previous one is used up."""
    k = 0
    while True:
        yield from loader_factory(k)
        k += 1


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
) -> dict[str, Any]:
    """Adapt the RGB model ``source`` to ``modality`` and write the adapted checkpoint to ``out``."""
    cfg = config or AdaptConfig()
    source = Path(source)
    src = read_checkpoint(source)
    meta = src["meta"]
    _check_source(meta, source, modality)
    encoding = encoding or default_encoding(modality)
    if encoding.modality != modality:
        raise SocketEdgeError(f"encoding is for {encoding.modality}, --modality is {modality}")
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    size = int(meta["image_size"])
    weights = cfg.effective_weights()

    target_set = UnlabelledFolder(target, modality, size, augment=True)
    pairs = None
    if weights["ti"] > 0:
        if paired is None:
            warn("no --paired folder: SOCKET runs without the TI alignment term")
        else:
            pairs = PairedFolder(paired, modality, size, augment=False)
            if len(pairs) == 0:
                warn(
                    f"{paired}: no task-irrelevant pairs; SOCKET runs without the TI alignment term"
                )
                pairs = None
        if pairs is None:
            weights["ti"] = 0.0
    eval_set = (
        LabelledFolder(eval_data, modality, size, classes=list(meta["classes"]))
        if eval_data
        else None
    )

    model = build_model(meta)
    load_weights(model, src["state_dict"], meta["arch"], source)
    model.set_encoding(encoding)
    model.to(device, memory_format=torch.channels_last)
    for p in model.classifier.parameters():
        p.requires_grad_(False)
    src_means, src_vars = source_statistics(model.backbone)
    src_means = [t.to(device) for t in src_means]
    src_vars = [t.to(device) for t in src_vars]

    ti_feats, ti_set = None, None
    if pairs is not None:
        source_model = build_model(meta)
        load_weights(source_model, src["state_dict"], meta["arch"], source)
        source_model.to(device).eval()
        views = ti_views(len(pairs), cfg.ti_views, cfg.seed, pairs.pad)
        ti_feats = cache_source_features(source_model, pairs, views, device)
        ti_set = TIViews(pairs, views)
        del source_model  # the source never runs again: its TI features are cached

    optimizer = torch.optim.SGD(
        [
            {"params": list(model.backbone.parameters()), "lr_mult": cfg.backbone_lr_mult},
            {"params": list(model.bottleneck.parameters()), "lr_mult": 1.0},
        ],
        lr=cfg.lr,
        momentum=0.9,
        nesterov=True,
        weight_decay=cfg.weight_decay,
    )
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and cfg.amp)

    out = Path(out)
    spath = state_path(out)
    run_settings = {**cfg.to_dict(), "encoding": encoding.to_dict(), "modality": modality}
    start_epoch, history = 0, []
    if resume and spath.exists():
        state = read_checkpoint(spath)
        if state.get("config") != run_settings:
            raise SocketEdgeError(
                "resume state was written with other settings; rerun without "
                "--resume or with the same options",
                spath,
            )
        load_weights(model, state["state_dict"], meta["arch"], spath)
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, history = int(state["epoch"]), list(state["history"])
        truncate_log(out, start_epoch)
        info(f"resuming from {spath} after epoch {start_epoch}")
    elif not resume:
        truncate_log(out, 0)

    out_meta = {**meta}
    out_meta.update(
        modality=modality,
        encoding=encoding.to_dict(),
        stage="adapted",
        method={
            "name": cfg.method,
            "weights": weights,
            "settings": cfg.to_dict(),
            "ti_pairs": len(pairs) if pairs is not None else 0,
            "source_checkpoint": {"path": str(source), "sha256": sha256_file(source)},
        },
    )
    from ..models.checkpoint import make_meta

    fresh = make_meta(meta["arch"], meta["classes"], size, encoding, "adapted")
    out_meta.update(
        preprocess=fresh["preprocess"], versions=fresh["versions"], created=fresh["created"]
    )

    epochs = 0 if cfg.method == "source-only" else cfg.epochs
    steps_per_epoch = len(make_loader(target_set, cfg.batch_size, True, 0, drop_last=True))
    total_steps = max(1, epochs * steps_per_epoch)
    t_run = time.perf_counter()
    with bar(
        f"adapt {cfg.method}", total_steps if epochs else None, show_progress and epochs > 0
    ) as progress:
        progress.advance(start_epoch * steps_per_epoch)
        for epoch in range(start_epoch, epochs):
            es = epoch_seed(cfg.seed, epoch)
            torch.manual_seed(es)
            t0 = time.perf_counter()
            labels = refresh_pseudo_labels(model, target_set, device) if weights["pl"] > 0 else None
            target_set.set_epoch(es)
            loader = make_loader(
                target_set, cfg.batch_size, True, es, drop_last=True, workers=cfg.workers
            )
            ti_batches = None
            if ti_set is not None:
                ti_set.set_epoch(es)
                ti_batches = _cycle(
                    lambda k, es=es: make_loader(
                        ti_set,
                        cfg.ti_batch_size,
                        True,
                        es + 1 + k,
                        drop_last=True,
                        workers=cfg.workers,
                    )
                )
            model.train()
            sums: dict[str, float] = {}
            images = 0
            for i, (x, idx) in enumerate(loader):
                step = epoch * steps_per_epoch + i
                factor = (1 + 10 * step / total_steps) ** -0.75
                for group in optimizer.param_groups:
                    group["lr"] = cfg.lr * group["lr_mult"] * factor
                n = len(x)
                batch = x
                if ti_batches is not None:
                    x_ti, ti_idx, ti_view = next(ti_batches)
                    batch = torch.cat([x, x_ti])
                batch = batch.to(device, non_blocking=True, memory_format=torch.channels_last)
                with MomentCollector(model.backbone) as moments, autocast(device, cfg.amp):
                    feats = model.features(batch)
                    logits = model.classify(feats[:n])
                terms: dict[str, torch.Tensor] = {}
                if weights["im"] > 0:
                    terms["im"] = losses.information_maximization(logits)
                if weights["pl"] > 0:
                    assert labels is not None
                    terms["pl"] = losses.pseudo_label_loss(logits, labels[idx].to(device))
                if weights["bn"] > 0:
                    terms["bn"] = losses.bn_moment_loss(
                        moments.means, moments.variances, src_means, src_vars, cfg.bn_first_weight
                    )
                if ti_batches is not None:
                    assert ti_feats is not None
                    terms["ti"] = losses.ti_alignment(feats[n:], ti_feats[ti_idx, ti_view])
                loss = sum(weights[k] * v for k, v in terms.items())
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                images += len(batch)
                for k, v in {"loss": loss, **terms}.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
                progress.advance()
                progress.set(
                    epoch=f"{epoch + 1}/{epochs}", **{k: v / (i + 1) for k, v in sums.items()}
                )
            seconds = time.perf_counter() - t0
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                **{k: v / max(1, steps_per_epoch) for k, v in sums.items()},
                "seconds": seconds,
                "images_per_s": images / seconds,
            }
            if labels is not None:
                record["pseudo_label_classes"] = int(labels.unique().numel())
            if eval_set is not None:
                from ..evaluate import evaluate_model

                record["eval_top1"] = evaluate_model(model, eval_set, device=device).top1
                progress.set(
                    epoch=f"{epoch + 1}/{epochs}",
                    loss=record.get("loss", 0.0),
                    eval=record["eval_top1"],
                )
            history.append(record)
            append_log(out, record)
            save_checkpoint(
                spath,
                model,
                out_meta,
                optimizer=optimizer.state_dict(),
                epoch=epoch + 1,
                history=history,
                config=run_settings,
            )
            for cb in callbacks or ():
                cb(epoch + 1, record)

    result: dict[str, Any] = {
        "out": str(out),
        "method": cfg.method,
        "weights": weights,
        "history": history,
        "seconds": time.perf_counter() - t_run,
    }
    if eval_set is not None and not history:
        from ..evaluate import evaluate_model

        result["eval_top1"] = evaluate_model(model, eval_set, device=device).top1
    elif history and "eval_top1" in history[-1]:
        result["eval_top1"] = history[-1]["eval_top1"]
    out_meta["training"] = {**meta.get("training", {}), "adapt_history": history}
    save_checkpoint(out, model.cpu(), out_meta)
    spath.unlink(missing_ok=True)
    return result
