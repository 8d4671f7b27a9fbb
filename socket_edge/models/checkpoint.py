"""One checkpoint file holds the weights and everything needed to use them (metadata).

Layout (a plain dict, loadable with ``torch.load(weights_only=True)``)::

    {"format": "socket-edge-checkpoint", "format_version": 1, "meta": {...}, "state_dict": {...}}

``meta`` keys: arch, classes, image_size, bottleneck_dim, modality, encoding, preprocess, stage
(source | adapted | oracle), method (adaptation settings), training (epochs, seed, metrics),
versions, created.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

from .._version import __version__
from ..data.encoding import Encoding
from ..data.transforms import Preprocess
from ..errors import CheckpointError
from ..files import atomic_path

FORMAT = "socket-edge-checkpoint"
FORMAT_VERSION = 1


def library_versions() -> dict[str, str]:
    import torch
    import torchvision

    return {
        "socket_edge": __version__,
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "python": platform.python_version(),
    }


def make_meta(
    arch: str,
    classes: list[str],
    image_size: int,
    encoding: Encoding,
    stage: str,
    bottleneck_dim: int = 256,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "arch": arch,
        "classes": list(classes),
        "image_size": int(image_size),
        "bottleneck_dim": int(bottleneck_dim),
        "modality": encoding.modality,
        "encoding": encoding.to_dict(),
        "preprocess": Preprocess.for_modality(encoding.modality, image_size).to_dict(),
        "stage": stage,
        **extra,
        "versions": library_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def save_checkpoint(path: str | Path, model, meta: dict[str, Any], **extra: Any) -> None:
    """Write weights + metadata atomically; ``extra`` adds keys (e.g. optimizer state to resume)."""
    import torch

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    _refuse_nonfinite(state, path, "refusing to write it")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "meta": meta,
        "state_dict": state,
    }
    payload.update(extra)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and validate the checkpoint dict, without building the model."""
    import torch

    path = Path(path)
    if not path.exists():
        raise CheckpointError("no such file", path)
    if path.is_dir():
        raise CheckpointError("is a folder, expected a checkpoint file (.pt)", path)
    if path.stat().st_size == 0:
        raise CheckpointError("empty file (0 bytes)", path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many types for a foreign file (pickle, zip, index...)
        import zipfile

        if path.suffix == ".onnx":
            why = "it is an ONNX model; pass the .pt it was exported from"
        elif zipfile.is_zipfile(path):
            why = "a PyTorch file holding pickled objects, not socket-edge's plain dict"
        else:
            why = "not a PyTorch file at all"
        raise CheckpointError(f"not a socket-edge checkpoint ({why})", path) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        hint = " (looks like a plain state_dict)" if isinstance(obj, dict) and obj else ""
        raise CheckpointError(
            f"not a socket-edge checkpoint{hint}: make one with `socket-edge train-source`", path
        )
    version = obj.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(
            f"checkpoint format_version must be an integer, got {version!r}", path
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format {version} is newer than this socket-edge understands "
            f"({FORMAT_VERSION}); upgrade socket-edge",
            path,
        )
    _check_contents(obj, path)
    _refuse_nonfinite(obj["state_dict"], path, "the training that wrote it diverged")
    return obj


def _check_contents(obj: dict, path: Path) -> None:
    """The metadata and weights every reader relies on, with the types they rely on."""
    import torch

    meta = obj.get("meta")
    if not isinstance(meta, dict):
        raise CheckpointError("checkpoint metadata is missing or not a dict", path)
    for key in ("arch", "classes", "image_size", "encoding"):
        if key not in meta:
            raise CheckpointError(f"checkpoint metadata lacks {key!r}", path)
    classes, size = meta["classes"], meta["image_size"]
    if not isinstance(meta["arch"], str):
        raise CheckpointError(f"checkpoint arch must be a name, got {meta['arch']!r}", path)
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise CheckpointError("checkpoint 'classes' must be a non-empty list of names", path)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise CheckpointError(
            f"checkpoint image_size must be a positive integer, got {size!r}", path
        )
    if not isinstance(meta["encoding"], dict):
        raise CheckpointError("checkpoint 'encoding' must be a dict", path)
    state = obj.get("state_dict")
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError("checkpoint holds no state_dict of named tensors", path)


def _refuse_nonfinite(state: dict, path: str | Path, then: str) -> None:
    """A checkpoint whose weights hold NaN/inf looks usable (argmax of NaN is class 0): refuse."""
    from ..guard import nonfinite_tensors

    bad = nonfinite_tensors(state)
    if bad:
        raise CheckpointError(
            f"{len(bad)} of {len(state)} tensors hold NaN/inf values (e.g. {bad[0]}); {then}",
            path,
        )


def build_model(meta: dict[str, Any]):
    from .network import SocketNet

    return SocketNet(
        meta["arch"],
        len(meta["classes"]),
        Encoding.from_dict(meta["encoding"]),
        bottleneck_dim=int(meta.get("bottleneck_dim", 256)),
    )


def load_checkpoint(
    path: str | Path, expect_arch: str | None = None, device: str = "cpu"
) -> tuple[Any, dict[str, Any]]:
    """Return (model in eval mode, meta). Fails clearly on a foreign file or a wrong architecture."""
    obj = read_checkpoint(path)
    meta = obj["meta"]
    if expect_arch is not None and meta["arch"] != expect_arch:
        raise CheckpointError(f"is a {meta['arch']} model, expected {expect_arch}", path)
    model = build_model(meta)
    load_weights(model, obj["state_dict"], meta["arch"], path)
    return model.to(device).eval(), meta


def load_weights(model, state_dict: dict, arch: str, path: str | Path) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if missing or unexpected or wrong:
        detail = []
        if wrong:
            k = wrong[0]
            detail.append(
                f"{len(wrong)} shape mismatches (e.g. {k}: {tuple(state_dict[k].shape)} "
                f"vs {tuple(own[k].shape)})"
            )
        if missing:
            detail.append(f"{len(missing)} missing tensors (e.g. {missing[0]})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
        raise CheckpointError(f"weights do not fit architecture {arch}: " + "; ".join(detail), path)
    model.load_state_dict(state_dict)
