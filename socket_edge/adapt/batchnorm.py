"""BatchNorm over the whole batch when the batch is split across processes.

In training mode a BatchNorm layer normalises with the statistics of its batch; split across N
processes, each would see 1/N of it and the adapted model would depend on N. ``GlobalBatchNorm``
layers normalise with the all-reduced statistics of the whole batch and keep identical running
statistics on every process. (torch's SyncBatchNorm does the same but refuses CPU tensors, so gloo
runs could not use it; this one runs under gloo and NCCL alike.) State-dict keys are unchanged, so
checkpoints load into plain BatchNorm.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..distributed import Group, batch_moments


class _GlobalBatchNorm(_BatchNorm):
    group: Group
    # (mean, biased variance) of the last training batch's input, for the BN-moment term
    last_batch_moments: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        if not batch_stats:
            self.last_batch_moments = None
            return super().forward(x)
        self._check_input_dim(x)
        shape = [1, -1] + [1] * (x.dim() - 2)
        shift = None if self.running_mean is None else self.running_mean.view(shape)
        xf = x if x.dtype == torch.float64 else x.float()  # statistics in fp32 at least
        mean, var = batch_moments(xf, self.group, [0, *range(2, x.dim())], shift=shift)
        self.last_batch_moments = (mean, var)
        if self.training and self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), x)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean, var, x) -> None:
        if self.running_mean is None or self.running_var is None:
            return
        self.num_batches_tracked.add_(1)
        factor = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
        n = x.numel() / x.shape[1] * self.group.world_size  # every rank holds an equal share
        self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1 - factor).add_(var * (n / max(n - 1, 1)), alpha=factor)


class GlobalBatchNorm1d(_GlobalBatchNorm, nn.BatchNorm1d):
    pass


class GlobalBatchNorm2d(_GlobalBatchNorm, nn.BatchNorm2d):
    pass


def globalize_batchnorm(module: nn.Module, group: Group) -> nn.Module:
    """Replace every BatchNorm1d/2d in ``module`` (in place) by its whole-batch version.

    The new layers take over the old ones' parameters and buffers (the same tensors), so an
    optimizer built afterwards, or before, trains the same parameters.
    """
    kinds = {nn.BatchNorm1d: GlobalBatchNorm1d, nn.BatchNorm2d: GlobalBatchNorm2d}
    for name, child in list(module.named_children()):
        new_kind = kinds.get(type(child))
        if new_kind is None:
            globalize_batchnorm(child, group)
            continue
        new = new_kind.__new__(new_kind)
        new.__dict__ = dict(child.__dict__)  # same parameters, buffers, hooks and settings
        new.group = group
        setattr(module, name, new)
    return module
