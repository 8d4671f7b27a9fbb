"""Adaptation's files: reading and checking the source (and ``init``) checkpoints, the settings
and input digests a resume state must match, the state file of each finished epoch, and the
adapted checkpoint with its metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import distributed
from ..data.encoding import Encoding, default_encoding
from ..distributed import Group
from ..errors import CheckpointError, SocketEdgeError
from ..files import listing_digest, sha256_file
from ..models.checkpoint import load_weights, make_meta, read_checkpoint, save_checkpoint
from ..training import (
    check_resume,
    continue_from,
    file_digest,
    save_epoch_state,
    saved_state,
    state_path,
)
from .config import AdaptConfig


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


@dataclass
class Checkpoints:
    """The source checkpoint, the optional ``init`` checkpoint, and the target encoding."""

    src: dict[str, Any]
    init: dict[str, Any] | None
    encoding: Encoding

    @property
    def meta(self) -> dict[str, Any]:
        return self.src["meta"]


def read_checkpoints(
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


def adapted_meta(
    meta: dict[str, Any],
    source: Path,
    encoding: Encoding,
    *,
    cfg: AdaptConfig,
    weights: dict[str, float],
    ti_pairs: int,
    init: Path | None = None,
    init_sha256: str | None = None,
) -> dict[str, Any]:
    """The output checkpoint's metadata: the source's, with the modality and the method (its
    loss ``weights`` in effect, ``ti_pairs`` TI pairs used, and the ``init`` checkpoint a
    re-adaptation started from)."""
    fresh = make_meta(meta["arch"], meta["classes"], int(meta["image_size"]), encoding, "adapted")
    method: dict[str, Any] = {
        "name": cfg.method,
        "weights": weights,
        "settings": cfg.to_dict(),
        "ti_pairs": ti_pairs,
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


def _inputs(source: Path, target, paired) -> dict[str, str | None]:
    """What a resume state must have been made from: the source's sha256, the folders' listings."""
    return {
        "source": file_digest(source),
        "target": target.digest() if hasattr(target, "digest") else listing_digest(target),
        "paired": paired.digest() if hasattr(paired, "digest") else listing_digest(paired),
    }


def resume_settings(
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


def resume_state(
    out: Path, model, optimizer, group: Group, arch: str, settings: dict[str, Any], resume: bool
) -> tuple[int, list]:
    """(first epoch to run, history so far): from the state file when resuming, whose weights
    and optimizer state ``model`` and ``optimizer`` take.

    In a process group rank 0 reads the state file and sends it to the others, so only rank 0's
    machine needs the output folder.
    """
    spath = state_path(out)
    state = saved_state(out, resume) if group.is_main else None
    state = distributed.broadcast_object(state, group)
    if state is None:
        return 0, []
    if group.is_main:
        start = continue_from(state, out, settings)
    else:  # the same check, so that every process stops alike on a mismatch
        check_resume(spath, state.get("config"), settings)
        start = int(state["epoch"])
    load_weights(model, state["state_dict"], arch, spath)
    optimizer.load_state_dict(state["optimizer"])
    return start, list(state["history"])


@dataclass
class Output:
    """Where an adaptation writes: the checkpoint path, its metadata, the settings a resume of
    it must match."""

    path: Path
    meta: dict[str, Any]
    settings: dict[str, Any]

    def save_epoch(self, model, optimizer, epoch: int, history: list[dict[str, Any]]) -> None:
        """The log line and the resumable state of (0-based) ``epoch``, just finished."""
        save_epoch_state(self.path, model, self.meta, optimizer, epoch, history, self.settings)

    def save_final(self, model, history: list[dict[str, Any]]) -> None:
        """The adapted checkpoint (``model`` moves to the CPU); the state file goes."""
        self.meta["training"] = {**self.meta.get("training", {}), "adapt_history": history}
        save_checkpoint(self.path, model.cpu(), self.meta)
        state_path(self.path).unlink(missing_ok=True)


def resume_hint(out: Path) -> str:
    """What to do after a group lost a process mid-run."""
    spath = state_path(out)
    saved = f"{spath} holds the last finished epoch" if spath.exists() else "no epoch finished"
    return f"{saved}; rerun the same command with --resume"
