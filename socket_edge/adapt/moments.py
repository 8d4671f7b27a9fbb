"""Collect the batch mean and variance at the input of every BatchNorm2d, in the same forward pass.

Forward pre-hooks record the moments while the model runs on the batch it is training on, so the
BN term costs no second pass. The source's running statistics are snapshotted once at the start.
"""

from __future__ import annotations

import torch
from torch import nn


def batchnorm_layers(module: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def source_statistics(module: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Detached copies of the running mean/variance of every BatchNorm2d (the source's memory)."""
    layers = batchnorm_layers(module)
    return (
        [bn.running_mean.detach().clone().float() for bn in layers],
        [bn.running_var.detach().clone().float() for bn in layers],
    )


class MomentCollector:
    """Context manager: while active, each forward of ``module`` records BN input moments.

    ``rows`` limits the moments to the first rows of the batch (e.g. the target images when TI
    target images ride along in the same forward pass); None uses the whole batch.
    """

    def __init__(self, module: nn.Module):
        self.layers = batchnorm_layers(module)
        self.means: list[torch.Tensor] = []
        self.variances: list[torch.Tensor] = []
        self.rows: int | None = None
        self._handles: list = []

    def _hook(self, _module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0]
        if self.rows is not None:
            x = x[: self.rows]
        x = x.float()
        self.means.append(x.mean(dim=(0, 2, 3)))
        self.variances.append(x.var(dim=(0, 2, 3), unbiased=False))

    def clear(self) -> None:
        self.means, self.variances = [], []

    def __enter__(self) -> MomentCollector:
        self._handles = [bn.register_forward_pre_hook(self._hook) for bn in self.layers]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
