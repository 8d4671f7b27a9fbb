"""The SOCKET/SHOT network: encoder -> backbone -> bottleneck (Linear + BatchNorm1d) -> classifier.

``features(x)`` is the bottleneck output (what the TI alignment and the pseudo-label centroids
use); ``classify(f)`` is the weight-normalised linear classifier, frozen during adaptation.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ..data.encoding import Encoding, build_encoder
from .backbones import backbone_spec, build_backbone

BOTTLENECK_DIM = 256


class SocketNet(nn.Module):
    def __init__(
        self,
        arch: str,
        num_classes: int,
        encoding: Encoding,
        bottleneck_dim: int = BOTTLENECK_DIM,
        weights: str | Path | None = None,
    ):
        super().__init__()
        self.arch = arch
        self.encoder = build_encoder(encoding)
        self.backbone = build_backbone(arch, weights)
        self.bottleneck = nn.Sequential(
            nn.Linear(backbone_spec(arch).features, bottleneck_dim),
            nn.BatchNorm1d(bottleneck_dim),
        )
        self.classifier = weight_norm(nn.Linear(bottleneck_dim, num_classes), dim=0)

    @property
    def encoding(self) -> Encoding:
        return self.encoder.encoding

    def set_encoding(self, encoding: Encoding) -> None:
        """Swap the input encoding (e.g. RGB -> depth); the encoder has no trainable weights."""
        device = next(self.parameters()).device
        self.encoder = build_encoder(encoding).to(device)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(self.backbone(self.encoder(x)))

    def classify(self, f: torch.Tensor) -> torch.Tensor:
        return self.classifier(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))
