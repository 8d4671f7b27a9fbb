"""Modality encodings: turn a raw RGB, depth or IR map into the 3-channel tensor a backbone expects.

An :class:`Encoding` is plain data (recorded in checkpoints and sidecars); :class:`ModalityEncoder`
is the torch module that applies it. The encoder is the first module of every model, so training,
evaluation and the exported ONNX graph run the very same operations: a robot feeds the raw depth
map in millimetres (or the raw IR frame) and the graph encodes it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import SocketEdgeError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

RANGES = ("image", "fixed")
FILLS = ("zero", "mean")
COLORMAPS = ("gray", "jet")


@dataclass(frozen=True)
class Encoding:
    """How a raw map of one modality becomes a normalised 3-channel image.

    Depth/IR: take the valid pixels (depth > 0; every IR pixel), scale them to [0, 1] by the
    image's own min/max (``range='image'``) or by fixed bounds ``lo``/``hi`` in raw units
    (``range='fixed'``: mm for depth), optionally invert (near = bright), set missing pixels to
    ``fill``, map to 3 channels (``gray`` replicates, ``jet`` colours), then subtract ``mean`` and
    divide by ``std`` per channel, exactly as the RGB source model was trained.
    """

    modality: str
    range: str = "image"
    lo: float = 0.0
    hi: float = 1.0
    invert: bool = False
    fill: str = "zero"
    colormap: str = "gray"
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)

    def __post_init__(self) -> None:
        if self.modality not in ("rgb", "depth", "ir"):
            raise SocketEdgeError(f"unknown modality {self.modality!r} (expected rgb, depth or ir)")
        if self.range not in RANGES:
            raise SocketEdgeError(f"encoding range must be one of {RANGES}, got {self.range!r}")
        if self.fill not in FILLS:
            raise SocketEdgeError(f"encoding fill must be one of {FILLS}, got {self.fill!r}")
        if self.colormap not in COLORMAPS:
            raise SocketEdgeError(f"colormap must be one of {COLORMAPS}, got {self.colormap!r}")
        if self.range == "fixed" and not self.hi > self.lo:
            raise SocketEdgeError(f"fixed encoding range needs hi > lo, got [{self.lo}, {self.hi}]")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @property
    def in_channels(self) -> int:
        return 3 if self.modality == "rgb" else 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Encoding:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise SocketEdgeError(f"unknown encoding parameters: {sorted(unknown)}")
        return cls(**{k: tuple(v) if k in ("mean", "std") else v for k, v in d.items()})

    def replace(self, **changes: Any) -> Encoding:
        return Encoding.from_dict({**self.to_dict(), **changes})


def default_encoding(modality: str, **overrides: Any) -> Encoding:
    """The default encoding of each modality: per-image valid range; depth inverted (near = bright)."""
    base: dict[str, Any] = {"modality": modality}
    if modality == "depth":
        base["invert"] = True
    return Encoding(**{**base, **overrides})


def build_encoder(encoding: Encoding):
    """Return a :class:`ModalityEncoder` (a torch module) for ``encoding``."""
    return _encoder_class()(encoding)


_ENCODER_CLASS = None


def _value_range(x, valid, e: Encoding):
    """(lo, hi) per image, (N, 1, 1, 1): the encoding's fixed range, or the valid pixels' own."""
    import torch

    if e.range == "fixed":
        lo = torch.full_like(x[:, :1, :1, :1], e.lo)
        hi = torch.full_like(x[:, :1, :1, :1], e.hi)
        return lo, hi
    inf = torch.full_like(x, float("inf"))
    lo = torch.amin(torch.where(valid, x, inf), dim=(1, 2, 3), keepdim=True)
    hi = torch.amax(torch.where(valid, x, -inf), dim=(1, 2, 3), keepdim=True)
    return lo, hi


def _fill_invalid(v, valid, fill: str):
    """Invalid pixels (no depth reading) set to the valid pixels' mean, or to 0."""
    import torch

    if fill == "mean":
        count = torch.clamp(valid.float().sum(dim=(1, 2, 3), keepdim=True), min=1.0)
        value = torch.where(valid, v, torch.zeros_like(v)).sum(dim=(1, 2, 3), keepdim=True)
        value = value / count
    else:
        value = torch.zeros_like(v[:, :1, :1, :1])
    return torch.where(valid, v, value.expand_as(v))


def _colorize(v, colormap: str):
    """(N, 1, H, W) in [0, 1] -> (N, 3, H, W): the jet colormap, or grey in all three channels."""
    import torch

    if colormap != "jet":
        return v.expand(-1, 3, -1, -1)
    return torch.cat(
        [
            torch.clamp(1.5 - torch.abs(4.0 * v - 3.0), 0.0, 1.0),
            torch.clamp(1.5 - torch.abs(4.0 * v - 2.0), 0.0, 1.0),
            torch.clamp(1.5 - torch.abs(4.0 * v - 1.0), 0.0, 1.0),
        ],
        dim=1,
    )


def _encoder_class():
    # Defined on first use so that importing this module does not import torch.
    global _ENCODER_CLASS
    if _ENCODER_CLASS is not None:
        return _ENCODER_CLASS
    import torch
    from torch import nn

    class ModalityEncoder(nn.Module):
        """Applies an :class:`Encoding` to a batch of raw maps (N, C, H, W)."""

        def __init__(self, encoding: Encoding):
            super().__init__()
            self.encoding = encoding
            self.register_buffer("mean", torch.tensor(encoding.mean).view(1, 3, 1, 1), False)
            self.register_buffer("std", torch.tensor(encoding.std).view(1, 3, 1, 1), False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            e = self.encoding
            x = x.float()
            if e.modality == "rgb":
                return (x - self.mean) / self.std
            valid = x > 0 if e.modality == "depth" else torch.ones_like(x, dtype=torch.bool)
            lo, hi = _value_range(x, valid, e)
            # 1 mm for depth; for IR a tiny fraction of the [0, 1] scale: flat images stay finite.
            eps = 1.0 if e.modality == "depth" else 1e-6
            v = (x - lo) / torch.clamp(hi - lo, min=eps)
            v = torch.clamp(v, 0.0, 1.0)
            if e.invert:
                v = 1.0 - v
            v = _fill_invalid(v, valid, e.fill)
            return (_colorize(v, e.colormap) - self.mean) / self.std

        def extra_repr(self) -> str:
            return repr(self.encoding)

    _ENCODER_CLASS = ModalityEncoder
    return ModalityEncoder
