"""Supervised training: the RGB source model (``train-source``) and the labelled-target oracle.

A plain loop in the style of torchvision's reference scripts: SGD with Nesterov momentum, label
smoothing 0.1, a short linear warm-up then cosine decay, one resumable state file per run.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .console import bar, warn
from .data.datasets import LabelledFolder
from .data.encoding import Encoding, default_encoding
from .errors import SocketEdgeError
from .evaluate import evaluate_model
from .files import listing_digest
from .guard import (
    DivergenceError,
    check_settings,
    diverged,
    nonfinite_tensors,
)
from .outputs import single_writer
from .torchutil import autocast, make_loader, resolve_device
from .training import (
    continue_from,
    epoch_seed,
    file_digest,
    optimiser_step,
    save_epoch_state,
    saved_state,
    seed_everything,
    state_path,
)

if TYPE_CHECKING:  # torch is imported when training starts, not with this module
    import torch

    from .models.network import SocketNet


@dataclass
class TrainConfig:
    arch: str = "resnet18"
    image_size: int = 64
    # Length: ``epochs`` if given, else enough epochs for ``steps`` updates. A step budget suits
    # 1,000 to 100,000 images alike (16 epochs of 6,000 images, 67 of 1,440: see RESULTS.md).
    epochs: int | None = None
    steps: int = 3000
    batch_size: int = 32  # beat 64 by ~2 points of RGB val at 16 epochs on the built-in data
    lr: float = 0.05
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup_epochs: float = 1.0
    # Stop after the first epoch whose val top-1 reaches this (needs a val folder): a model
    # deliberately left weak, e.g. the adaptation suite's weak source. None: run the budget.
    stop_at_val: float | None = None
    seed: int = 0
    device: str | None = None
    workers: int = 0
    amp: bool = True

    def __post_init__(self) -> None:
        check_settings(self, TRAIN_RULES)

    def epochs_for(self, images: int) -> int:
        """Epochs to run on ``images`` training images: ``epochs``, or the step budget's."""
        if self.epochs is not None:
            return self.epochs
        return max(1, math.ceil(self.steps / math.ceil(images / self.batch_size)))


# Each numeric setting's range; a NaN, inf or out-of-range value fails before any work.
TRAIN_RULES: dict[str, dict[str, Any]] = {
    "image_size": {"minimum": 16, "integer": True},
    "epochs": {"minimum": 1, "integer": True, "optional": True},
    "steps": {"minimum": 1, "integer": True},
    "batch_size": {"minimum": 2, "integer": True},  # BatchNorm needs two images per batch
    "lr": {"above": 0},
    "weight_decay": {"minimum": 0},
    "label_smoothing": {"minimum": 0, "maximum": 1},
    "warmup_epochs": {"minimum": 0},
    "stop_at_val": {"above": 0, "maximum": 1, "optional": True},
    "seed": {"minimum": 0, "integer": True},
    "workers": {"minimum": 0, "integer": True},
}


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _diverged(
    cfg: TrainConfig, spath: Path, steps: int, epoch: int, step: int, terms: list[str]
) -> DivergenceError:
    """The error for a NaN/inf at (0-based) ``epoch`` and ``step`` of ``steps``."""
    kept = f"{spath} keeps epoch {epoch} for resume" if epoch > 0 else "no epoch had finished"
    return diverged(
        "training",
        epoch + 1,
        step + 1,
        steps,
        terms,
        f"try a smaller lr (now {cfg.lr:g})",
        kept,
        settings=("lr", "resume"),
    )


def train_one_epoch(
    model, loader, optimizer, scaler, cfg: TrainConfig, lr_at, diverged, shown
) -> dict[str, Any]:
    """One pass over ``loader`` (as torchvision's reference ``train_one_epoch``): the epoch's
    loss, train accuracy, seconds and images/s. ``lr_at(i)`` is step i's learning rate,
    ``diverged(i, terms)`` the error to raise on a NaN/inf, ``shown(**figures)`` the progress."""
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    model.train()
    t0, seen, correct, loss_sum, i = time.perf_counter(), 0, 0, 0.0, 0
    for i, (x, y) in enumerate(loader):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(i)
        x = x.to(device, non_blocking=True, memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True)
        with autocast(device, cfg.amp):
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        value = optimiser_step(loss, {"ce": loss}, optimizer, scaler, partial(diverged, i))
        seen += len(y)
        correct += int((logits.argmax(1) == y).sum())
        loss_sum += float(value[0]) * len(y)
        shown(loss=loss_sum / seen, acc=correct / seen)
    if nonfinite_tensors(model.state_dict()):  # the last step's update
        raise diverged(i, ["weights"])
    seconds = time.perf_counter() - t0
    return {
        "loss": loss_sum / seen,
        "train_acc": correct / seen,
        "seconds": seconds,
        "images_per_s": seen / seconds,
    }


def _reached(history: list[dict[str, Any]], stop_at_val: float | None) -> bool:
    """Whether the last finished epoch's val top-1 reached ``stop_at_val`` (None: never)."""
    return stop_at_val is not None and bool(history) and history[-1]["val_acc"] >= stop_at_val


def _warn_if_still_improving(history: list[dict[str, Any]]) -> None:
    """Validation accuracy still rising over the last quarter of the run: it stopped too soon."""
    vals = [r["val_acc"] for r in history if "val_acc" in r]
    if len(vals) < 8:
        return
    quarter = len(vals) // 4
    before, last = max(vals[:-quarter]), max(vals[-quarter:])
    if last - before > 0.01:
        warn(
            f"validation top-1 rose from {before:.3f} to {last:.3f} in the last {quarter} epochs: "
            "the model may gain from a longer run (--steps, now the budget of updates)"
        )


@dataclass(frozen=True)
class Schedule:
    """The run's length and learning rate: a short linear warm-up, then cosine decay."""

    lr: float
    epochs: int
    steps_per_epoch: int
    warmup: int  # steps

    @property
    def total(self) -> int:
        return self.epochs * self.steps_per_epoch

    @classmethod
    def for_run(cls, cfg: TrainConfig, images: int) -> Schedule:
        steps_per_epoch = math.ceil(images / cfg.batch_size)
        epochs = cfg.epochs_for(images)
        total = epochs * steps_per_epoch
        warmup = min(int(cfg.warmup_epochs * steps_per_epoch), total // 10)  # large data: <= 10%
        return cls(cfg.lr, epochs, steps_per_epoch, warmup)

    def lr_at(self, epoch: int, step: int) -> float:
        """The learning rate of (0-based) ``step`` of ``epoch``."""
        return self.lr * _lr_factor(epoch * self.steps_per_epoch + step, self.total, self.warmup)


@dataclass
class Setup:
    """What a supervised run trains: data, model, optimizer, and the checkpoint's metadata."""

    device: torch.device
    train_set: LabelledFolder
    val_set: LabelledFolder | None
    model: SocketNet  # in channels_last on ``device``
    optimizer: torch.optim.SGD
    scaler: torch.amp.GradScaler
    meta: dict[str, Any]  # the output checkpoint's metadata
    settings: dict[str, Any]  # what a resume must match: the config and the inputs' digests


def _warn_mobilenet_from_scratch(cfg: TrainConfig, weights) -> None:
    if weights is None and cfg.arch.startswith("mobilenet"):
        # measured on the built-in data: near chance for 8 of 16 epochs, 21.5% RGB val at the end
        warn(
            f"{cfg.arch} barely trains from scratch with this recipe; start it from ImageNet "
            "weights (--weights FILE) or use resnet18"
        )


def _setup(
    data, cfg: TrainConfig, modality: str, encoding: Encoding | None, val, weights, stage: str
) -> Setup:
    """Data, model, optimizer and metadata of a run (seeded: the model's initial weights are)."""
    import torch

    from .models.checkpoint import make_meta
    from .models.network import SocketNet

    encoding = encoding or default_encoding(modality)
    if encoding.modality != modality:
        raise SocketEdgeError(f"encoding is for {encoding.modality}, data is {modality}")
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    train_set = LabelledFolder(data, modality, cfg.image_size, augment=True)
    classes = train_set.classes
    val_set = LabelledFolder(val, modality, cfg.image_size, classes=classes) if val else None
    _warn_mobilenet_from_scratch(cfg, weights)
    model = SocketNet(cfg.arch, len(classes), encoding, weights=weights)
    model = model.to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay
    )
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and cfg.amp)
    training = {**asdict(cfg), "data": str(data)}
    meta = make_meta(cfg.arch, classes, cfg.image_size, encoding, stage, training=training)
    inputs = {
        "data": listing_digest(data),
        "val": listing_digest(val),
        "weights": file_digest(weights),
    }
    settings = {**asdict(cfg), "inputs": inputs}
    return Setup(device, train_set, val_set, model, optimizer, scaler, meta, settings)


def _resume(setup: Setup, out: str | Path, resume: bool, arch: str) -> tuple[int, list]:
    """(first epoch to run, history so far): from the state file when resuming."""
    from .models.checkpoint import load_weights

    state = saved_state(out, resume)
    if state is None:
        return 0, []
    start_epoch, history = continue_from(state, out, setup.settings), list(state["history"])
    load_weights(setup.model, state["state_dict"], arch, state_path(out))
    setup.optimizer.load_state_dict(state["optimizer"])
    return start_epoch, history


def _epoch_loader(train_set: LabelledFolder, cfg: TrainConfig, epoch: int):
    """The epoch's shuffled batches; its seed also sets augmentation and dropout."""
    import torch

    es = epoch_seed(cfg.seed, epoch)
    torch.manual_seed(es)
    train_set.set_epoch(es)
    return make_loader(train_set, cfg.batch_size, True, es, workers=cfg.workers)


def val_top1(model, val_set: LabelledFolder, device) -> float:
    """Top-1 accuracy on the labelled ``val_set``."""
    return evaluate_model(model, val_set, device=device).top1


@single_writer("train-source")
def train_supervised(
    data: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    modality: str = "rgb",
    encoding: Encoding | None = None,
    val: str | Path | None = None,
    weights: str | Path | None = None,
    resume: bool = False,
    stage: str = "source",
    show_progress: bool = True,
    callbacks: list | None = None,
) -> dict[str, Any]:
    """Train a classifier on ``data/<class>/<image>`` and write a checkpoint to ``out``."""
    from .models.checkpoint import save_checkpoint

    cfg = config or TrainConfig()
    if cfg.stop_at_val is not None and val is None:
        raise SocketEdgeError(
            "stop_at_val needs a validation folder (val)", settings=("stop_at_val", "val")
        )
    setup = _setup(data, cfg, modality, encoding, val, weights, stage)
    start_epoch, history = _resume(setup, out, resume, cfg.arch)
    sched = Schedule.for_run(cfg, len(setup.train_set))
    epochs, steps = sched.epochs, sched.steps_per_epoch
    t_start = time.perf_counter()
    with bar(f"train {cfg.arch}", sched.total, show_progress) as progress:
        progress.advance(start_epoch * steps)
        for epoch in range(start_epoch, epochs):
            if _reached(history, cfg.stop_at_val):  # a resumed run that had already stopped
                break

            def shown(epoch: int = epoch, **figures: float) -> None:
                progress.advance()
                progress.set(epoch=f"{epoch + 1}/{epochs}", **figures)

            loader = _epoch_loader(setup.train_set, cfg, epoch)
            lr_at = partial(sched.lr_at, epoch)
            diverged = partial(_diverged, cfg, state_path(out), steps, epoch)
            record = {"epoch": epoch + 1}
            record |= train_one_epoch(
                setup.model, loader, setup.optimizer, setup.scaler, cfg, lr_at, diverged, shown
            )
            if setup.val_set is not None:
                record["val_acc"] = val_top1(setup.model, setup.val_set, setup.device)
                progress.set(
                    epoch=f"{epoch + 1}/{epochs}", loss=record["loss"], val=record["val_acc"]
                )
            history.append(record)
            save_epoch_state(
                out, setup.model, setup.meta, setup.optimizer, epoch, history, setup.settings
            )
            for cb in callbacks or ():
                cb(epoch + 1, record)
            if _reached(history, cfg.stop_at_val):
                break
    stopped = _reached(history, cfg.stop_at_val)
    if not stopped:
        _warn_if_still_improving(history)
    training = setup.meta["training"]
    training.update(
        history=history,
        epochs=len(history) if stopped else epochs,
        seconds=time.perf_counter() - t_start,
    )
    save_checkpoint(out, setup.model.cpu(), setup.meta)
    state_path(out).unlink(missing_ok=True)
    return {
        "out": str(out),
        "classes": setup.train_set.classes,
        "history": history,
        "val_acc": history[-1].get("val_acc") if history else None,
    }
