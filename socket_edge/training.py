"""Pieces shared by the training loops (train-source, oracle, adapt): seeding, sharded loaders,
the optimiser step with its divergence guard, resumable state files and the per-epoch JSON-lines
log. The device, mixed-precision and loader
helpers that inference shares are in ``torchutil`` (re-exported here for the loops)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .console import info, warn
from .errors import SocketEdgeError
from .files import digest, write_text
from .guard import DivergenceError, nonfinite_terms, stack_terms
from .models.checkpoint import read_checkpoint, save_checkpoint
from .outputs import remove_temp_files
from .torchutil import autocast, make_loader, resolve_device

__all__ = [  # the loops' helpers, and the torchutil ones they take from here
    "append_log",
    "autocast",
    "check_resume",
    "continue_from",
    "epoch_seed",
    "file_digest",
    "log_path",
    "make_loader",
    "optimiser_step",
    "read_log",
    "resolve_device",
    "save_epoch_state",
    "saved_state",
    "seed_everything",
    "shard_loader",
    "state_path",
    "truncate_log",
]


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch: shuffling, augmentation and dropout all derive from it."""
    return (int(seed) * 1_000_003 + int(epoch) * 7919) % (2**31 - 1)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def shard_loader(
    dataset, batch_size: int, seed: int, group, workers: int = 0, setting: str = "batch_size"
):
    """This process's share of ``make_loader(dataset, batch_size, True, seed, drop_last=True)``.

    Global batch k is split across the processes of ``group`` (DistributedSampler's stride over
    the one-process order), so N processes train on exactly the batches one process would.
    """
    if not group.active:
        return make_loader(dataset, batch_size, True, seed, drop_last=True, workers=workers)
    from torch.utils.data import DataLoader, Subset
    from torch.utils.data.distributed import DistributedSampler

    # The one-process order, read off the very loader a one-process run would iterate.
    order = [
        int(i) for b in make_loader(range(len(dataset)), batch_size, True, seed, True) for i in b
    ]
    subset = Subset(dataset, order)
    sampler = DistributedSampler(
        subset, group.world_size, group.rank, shuffle=False, drop_last=True
    )
    return DataLoader(
        subset,
        batch_size=group.split(batch_size, setting),
        sampler=sampler,
        num_workers=workers,
    )


def optimiser_step(
    loss,
    named: dict[str, Any],
    optimizer,
    scaler,
    diverged: Callable[[list[str]], DivergenceError],
    group=None,
):
    """One update of both training loops: the guard, then zero_grad, backward, step, update.

    ``named``: the step's loss terms by name (``loss`` among them), stacked and read back once
    (``guard.stack_terms``): the values the loop logs, returned. A NaN or inf among them raises
    ``diverged(names)`` before the optimizer moves (in a process group, in every process at the
    same step). ``scaler``: a ``torch.amp.GradScaler`` (disabled off CUDA or without AMP).
    """
    values = stack_terms(named)
    bad = nonfinite_terms(list(named), values, group)
    if bad:
        raise diverged(bad)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return values


def file_digest(path: str | Path | None) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    return digest(path)


def check_resume(state_file: Path, saved: Any, current: dict[str, Any]) -> None:
    """Refuse to resume when the saved state's settings or inputs differ from this run's,
    naming what changed."""
    if saved == current:
        return
    saved = saved if isinstance(saved, dict) else {}
    changes, named = [], ["resume"]
    saved_inputs, inputs = saved.get("inputs") or {}, current.get("inputs") or {}
    for name in inputs:
        if saved_inputs.get(name) != inputs[name]:
            changes.append(_INPUT_WORDS.get(name, name))
            named += [name] if name in _INPUT_WORDS and name != "data" else []
    for key in sorted(set(saved) | set(current)):
        if key == "inputs" or saved.get(key) == current.get(key):
            continue
        changes.append(f"{key} {_brief(saved.get(key))} -> {_brief(current.get(key))}")
    raise SocketEdgeError(
        "resume refused: "
        + "; ".join(changes or ["the settings"])
        + " changed since this state was saved; rerun with the same inputs and settings, or "
        "without resume to start over",
        state_file,
        settings=tuple(named),
    )


# How a changed input is named; the CLI shows these names (but DATA) as flags (--source).
_INPUT_WORDS = {
    "source": "the source checkpoint (sha256)",
    "target": "the target folder (its files, sizes or times)",
    "paired": "the paired folder (its files, sizes or times)",
    "data": "the DATA folder (its files, sizes or times)",
    "val": "the val folder (its files, sizes or times)",
    "weights": "the weights file (sha256)",
}


def _brief(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def state_path(out: str | Path) -> Path:
    """Where a run writing ``out`` keeps its resumable state (removed when the run completes)."""
    out = Path(out)
    return out.with_name(out.stem + ".state" + out.suffix)


def log_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".log.jsonl")


def append_log(out: str | Path, record: dict[str, Any]) -> None:
    path = log_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def read_log(out: str | Path) -> list[dict[str, Any]]:
    """The records of ``out``'s log; a line a killed run left half-written is dropped, with a
    warning, instead of stopping the run."""
    p = log_path(out)
    if not p.exists():
        return []
    lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
    records, bad = [], []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            bad.append(i)
    if bad:
        where = "its last line" if bad == [len(lines)] else f"line(s) {', '.join(map(str, bad))}"
        warn(f"{p}: dropped {where}: half-written (a killed run?), not a JSON record")
    return records


def truncate_log(out: str | Path, epochs_kept: int) -> None:
    """Keep the log lines of the first ``epochs_kept`` epochs (on resume), drop the rest."""
    p = log_path(out)
    if not p.exists():
        return
    kept = [r for r in read_log(out) if (r.get("epoch") or 0) <= epochs_kept]
    write_text(p, "".join(json.dumps(r) + "\n" for r in kept))


def saved_state(out: str | Path, resume: bool) -> dict[str, Any] | None:
    """Start a run that writes ``out``: the state to continue from, or None for a fresh start.

    Removes the temp files killed runs left beside ``out`` and its state file. A fresh start
    (no --resume, or nothing saved: a run killed in its first epoch) empties the log.
    """
    out, spath = Path(out), state_path(out)
    remove_temp_files(out.parent, [out.name, spath.name])
    if resume and spath.exists():
        return read_checkpoint(spath)
    truncate_log(out, 0)
    return None


def save_epoch_state(
    out: str | Path,
    model,
    meta: dict[str, Any],
    optimizer,
    epoch: int,
    history: list[dict[str, Any]],
    settings: dict[str, Any],
) -> None:
    """The log line and the resumable state of (0-based) ``epoch``, just finished; what
    ``saved_state``/``continue_from`` read back."""
    append_log(out, history[-1])
    save_checkpoint(
        state_path(out),
        model,
        meta,
        optimizer=optimizer.state_dict(),
        epoch=epoch + 1,
        history=history,
        config=settings,
    )


def continue_from(state: dict[str, Any], out: str | Path, settings: dict[str, Any]) -> int:
    """Check that ``state`` was saved by a run with these ``settings`` (naming what changed),
    drop the log lines of epochs after it, and return its epoch."""
    spath = state_path(out)
    check_resume(spath, state.get("config"), settings)
    epoch = int(state["epoch"])
    truncate_log(out, epoch)
    info(f"resuming from {spath} after epoch {epoch}")
    return epoch
