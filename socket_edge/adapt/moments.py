"""Collect the batch mean and variance at the input of every BatchNorm2d, in the same forward pass.

Forward hooks record the moments of each layer's input while the model runs on the batch it is
training on, so the BN term costs no second pass. The source's running statistics are snapshotted
once at the start.
"""

from __future__ import annotations

import torch
from torch import nn

from ..distributed import Group, batch_moments


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

    Each forward appends its batch's moments, layer by layer: by default the target images pass
    first and the TI target images second (so the first ``len(layers)`` entries are the target
    pass's); with ``joint_batch`` one pass over both gives one set. With an active ``group``,
    over all processes' shares together.
    """

    def __init__(self, module: nn.Module, group: Group | None = None):
        self.layers = batchnorm_layers(module)
        self.group = group or Group()
        self.means: list[torch.Tensor] = []
        self.variances: list[torch.Tensor] = []
        self._handles: list = []

    def _hook(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], _output) -> None:
        # A whole-batch BatchNorm (adapt.batchnorm) has all-reduced these moments already.
        shared = getattr(module, "last_batch_moments", None)
        if shared is not None:
            self.means.append(shared[0])
            self.variances.append(shared[1])
            return
        mean, var = batch_moments(inputs[0].float(), self.group, (0, 2, 3))
        self.means.append(mean)
        self.variances.append(var)

    def clear(self) -> None:
        self.means, self.variances = [], []

    def __enter__(self) -> MomentCollector:
        self._handles = [bn.register_forward_hook(self._hook) for bn in self.layers]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
