"""torchvision backbones without their ImageNet heads, and how to load ImageNet weights locally."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError, SocketEdgeError


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    features: int  # width of the pooled feature vector
    head: str  # attribute holding the ImageNet classifier, replaced by Identity


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec("resnet18", 512, "fc"),
        BackboneSpec("resnet34", 512, "fc"),
        BackboneSpec("resnet50", 2048, "fc"),
        BackboneSpec("mobilenet_v3_small", 576, "classifier"),
        BackboneSpec("mobilenet_v3_large", 960, "classifier"),
        BackboneSpec("efficientnet_b0", 1280, "classifier"),
    )
}


def backbone_spec(arch: str) -> BackboneSpec:
    try:
        return BACKBONES[arch]
    except KeyError:
        raise SocketEdgeError(
            f"unknown architecture {arch!r} (choose from {', '.join(BACKBONES)})"
        ) from None


def build_backbone(arch: str, weights: str | Path | None = None):
    """A torchvision model whose forward returns pooled features (its head is an Identity)."""
    import torch
    import torchvision
    from torch import nn

    spec = backbone_spec(arch)
    ctor: Callable[..., nn.Module] = getattr(torchvision.models, arch)
    model = ctor(weights=None)
    if weights is not None:
        state = _load_state_dict(Path(weights))
        own = model.state_dict()
        usable = {k: v for k, v in state.items() if not k.startswith(spec.head + ".")}
        shape_mismatch = [k for k, v in usable.items() if k in own and own[k].shape != v.shape]
        missing = [k for k in own if not k.startswith(spec.head + ".") and k not in usable]
        if shape_mismatch or missing:
            bad = (shape_mismatch or missing)[:3]
            raise CheckpointError(
                f"weights do not fit torchvision {arch} ({len(shape_mismatch)} shape mismatches, "
                f"{len(missing)} missing tensors, e.g. {bad})",
                weights,
            )
        model.load_state_dict(usable, strict=False)
    setattr(model, spec.head, nn.Identity())
    assert isinstance(model, torch.nn.Module)
    return model


def _load_state_dict(path: Path) -> dict:
    import torch

    if not path.is_file():
        raise CheckpointError("no such weights file", path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a bad file
        raise CheckpointError(f"not a torch weights file ({type(exc).__name__})", path) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise CheckpointError("not a state dict of tensors (torchvision ImageNet weights)", path)
    return obj
