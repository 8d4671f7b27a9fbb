"""``adapt()``: one adaptation from the checkpoints to the adapted file. It reads and checks the
source (and ``init``) checkpoints, builds the run (``loop.prepare``), resumes from the state file,
trains the epochs (``loop.Run.train_epoch``: the step maths), scores them, keeps each epoch's state,
and writes the adapted checkpoint; under torchrun, in every process of the group.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import distributed
from ..console import bar
from ..data.datasets import LabelledFolder
from ..data.encoding import Encoding
from ..distributed import Group
from ..evaluate import evaluate_model
from ..outputs import single_writer
from ..training import seed_everything, state_path
from .balance import balance_classifier
from .config import AdaptConfig
from .loop import Run, prepare
from .resume import (
    Output,
    adapted_meta,
    read_checkpoints,
    resume_hint,
    resume_settings,
    resume_state,
)
from .targets import score_targets, warn_rare_classes

if TYPE_CHECKING:  # annotations only
    import torch


def score_epoch(run: Run, eval_set: LabelledFolder) -> float:
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
                record["eval_top1"] = score_epoch(run, eval_set)
                progress.set(
                    epoch=f"{epoch + 1}/{epochs}",
                    loss=record.get("loss", 0.0),
                    eval=record["eval_top1"],
                )
            history.append(record)
            if run.group.is_main:
                output.save_epoch(run.model, run.optimizer, epoch, history)
            for cb in callbacks or ():
                cb(epoch + 1, record)


def _final_checks(
    run: Run,
    history: list[dict[str, Any]],
    eval_set: LabelledFolder | None,
    classes: list[str],
    balanced_logits: torch.Tensor | None = None,
) -> dict[str, Any]:
    """The adapted model's eval top-1 (if scored) and the classes it may have collapsed.

    ``balanced_logits``: the model was balanced after its last epoch was scored (``balance``),
    and these are its target logits since (not scored again)."""
    found: dict[str, Any] = {}
    if history and "eval_top1" in history[-1] and balanced_logits is None:
        found["eval_top1"] = history[-1]["eval_top1"]
    elif eval_set is not None:
        found["eval_top1"] = score_epoch(run, eval_set)
    if run.epochs > 0 and run.cfg.collapse_fraction > 0:
        logits = balanced_logits
        if logits is None:
            _, logits = score_targets(run.model, run.target_set, run.device)
        found["rare_classes"] = warn_rare_classes(logits, classes, run.cfg.collapse_fraction)
    return found


def _eval_set(eval_data, modality: str, meta: dict[str, Any]) -> LabelledFolder | None:
    if not eval_data:
        return None
    size, classes = int(meta["image_size"]), list(meta["classes"])
    return LabelledFolder(eval_data, modality, size, classes=classes)


def _check_batches(cfg: AdaptConfig, group: Group) -> None:
    """Both global batches must split evenly across the processes of ``group``."""
    group.split(cfg.batch_size, "batch_size")
    group.split(cfg.ti_batch_size, "ti_batch_size")


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
    # Before joining: a process that raised while another was still connecting made that one
    # fail with the transport's error (gloo "Connection closed by peer") instead of this line.
    _check_batches(cfg, distributed.group_from_env())
    with distributed.joined(cfg.device, on_failure=lambda: resume_hint(out)) as (group, device):
        ckpts = read_checkpoints(source, modality, init, encoding)
        meta = ckpts.meta
        seed_everything(cfg.seed)
        run = prepare(
            ckpts.src, source, target, modality, paired=paired, cfg=cfg,
            encoding=ckpts.encoding, device=device, group=group, init=ckpts.init,
            init_path=init, state_file=state_path(out),
        )  # fmt: skip
        eval_set = _eval_set(eval_data, modality, meta) if group.is_main else None
        settings = resume_settings(cfg, ckpts, modality, (source, target, paired), init, group)
        start_epoch, history = resume_state(
            out, run.model, run.optimizer, group, meta["arch"], settings, resume
        )
        out_meta = adapted_meta(
            meta, source, ckpts.encoding, cfg=cfg, weights=run.weights,
            ti_pairs=len(run.ti_set) if run.ti_set is not None else 0,
            init=init, init_sha256=settings.get("init_sha256"),
        )  # fmt: skip
        output = Output(out, out_meta, settings)
        t_run = time.perf_counter()
        show = show_progress and group.is_main and run.epochs > 0
        _train(run, output, start_epoch, history, eval_set, show, callbacks)
        balanced_logits = None
        if run.epochs > 0 and cfg.setting("balance_classes"):
            offsets, balanced_logits = balance_classifier(run.model, run.target_set, device, group)
            output.meta["method"]["class_offsets"] = dict(
                zip(meta["classes"], offsets, strict=True)
            )
        result: dict[str, Any] = {
            "out": str(out),
            "method": cfg.method,
            "weights": run.weights,
            "history": history,
            "seconds": time.perf_counter() - t_run,
            "processes": group.world_size,
        }
        if group.is_main:
            result |= _final_checks(run, history, eval_set, list(meta["classes"]), balanced_logits)
            output.save_final(run.model, history)
        return result
