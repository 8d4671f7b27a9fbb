"""PyTorch helpers that inference (the .pt runner, evaluation) and the training loops share: the
device to run on, mixed precision, and a DataLoader whose order is a function of its seed. torch
is imported inside each function, never with this module."""

from __future__ import annotations

from pathlib import Path

from .errors import SocketEdgeError


def resolve_device(device: str | None):
    """'cpu', 'cuda', 'cuda:N' or None (= cuda if available); fails clearly if CUDA is missing."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SocketEdgeError(
            f"device {device}: this torch build has no usable CUDA device", settings=("device",)
        )
    return dev


def make_loader(
    dataset,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    drop_last: bool = False,
    workers: int = 0,
):
    """A DataLoader whose order is a function of ``seed`` alone."""
    import torch
    from torch.utils.data import DataLoader

    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last and len(dataset) > batch_size,
        generator=g,
        num_workers=workers,
        persistent_workers=False,
    )


def cpu_has_bf16() -> bool:
    """True where the CPU computes bfloat16 natively (AVX512-BF16 or AMX); else bf16 is emulated."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def autocast(device, enabled: bool = True):
    """Mixed precision: fp16 autocast on CUDA, bf16 on CPUs with native bf16, else nothing."""
    import contextlib

    import torch

    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    if enabled and device.type == "cpu" and cpu_has_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
