"""torch.distributed for `adapt`: the process group torchrun describes, and the few collectives
the adaptation loop needs to see the whole batch.

Under torchrun every process reads RANK, WORLD_SIZE and LOCAL_RANK (and MASTER_ADDR/PORT) from its
environment; ``start`` joins the group (NCCL on GPUs, gloo on CPUs). Without torchrun, or with one
process, ``Group`` is inactive and every helper here is the identity, so the loop has one code path.

Gradients: the differentiable all-reduce sums gradients in backward. With DDP averaging the
gradients of N processes, a loss term computed from all-reduced statistics then gets exactly the
gradient it would have in one process over the concatenated batch.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .errors import SocketEdgeError
from .torchutil import resolve_device


class GroupSetupError(SocketEdgeError):
    """A bad launch (e.g. a batch that does not split across the processes): the same on every
    rank, so only rank 0 prints it."""

    every_rank = True


class GroupBroken(SocketEdgeError):
    """Another process of the group stopped (died, was killed, lost its network)."""


@dataclass(frozen=True)
class Group:
    """Where this process stands in the group; ``world_size == 1`` means no group at all."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def split(self, batch_size: int, setting: str = "batch_size") -> int:
        """This process's share of a global batch; the batch must split evenly.

        ``setting`` is the settings field that set the batch (the CLI shows it as its flag)."""
        if batch_size % self.world_size:
            raise GroupSetupError(
                f"{setting} {batch_size} does not split across {self.world_size} processes; "
                f"use a multiple of {self.world_size} (the global batch is shared, not repeated)",
                settings=(setting,),
            )
        return batch_size // self.world_size


def group_from_env() -> Group:
    """The group torchrun describes in this process's environment (inactive without torchrun)."""
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    if "WORLD_SIZE" not in os.environ:
        return Group()
    try:
        rank, world, local = (int(os.environ.get(n, "0")) for n in names)
    except ValueError:
        shown = ", ".join(f"{n}={os.environ.get(n)!r}" for n in names)
        raise GroupSetupError(f"torchrun environment is not numeric: {shown}") from None
    if world < 1 or not 0 <= rank < world:
        raise GroupSetupError(
            f"torchrun environment is inconsistent: RANK={rank}, WORLD_SIZE={world}"
        )
    return Group(rank, world, local)


def start(group: Group, device_request: str | None):
    """Join the process group and pick this process's device; returns the torch.device.

    GPUs: NCCL, one GPU per process (cuda:LOCAL_RANK). CPUs (or --device cpu): gloo.
    """
    if not group.active:
        return resolve_device(device_request)
    if device_request not in (None, "auto", "cpu", "cuda"):
        raise GroupSetupError(
            f"device {device_request}: under torchrun each process takes cuda:LOCAL_RANK; "
            "set device to cuda (or cpu), and choose GPUs with CUDA_VISIBLE_DEVICES",
            settings=("device",),
        )
    device = resolve_device(device_request)
    if device.type == "cuda":
        if group.local_rank >= torch.cuda.device_count():
            raise GroupSetupError(
                f"LOCAL_RANK {group.local_rank} has no GPU: this machine has "
                f"{torch.cuda.device_count()}; start at most that many processes per node"
            )
        device = torch.device("cuda", group.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return device


def stop(group: Group) -> None:
    if group.active and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def joined(
    device_request: str | None, on_failure: Callable[[], str] | None = None
) -> Iterator[tuple[Group, Any]]:
    """(group, device) of this process, in the process group while the block runs (see ``start``).

    SIGTERM raises inside it; a collective that fails because another process stopped becomes
    one ``GroupBroken`` line, ending with ``on_failure()`` (what to do next) if given.
    """
    group = group_from_env()
    device = start(group, device_request)
    try:
        with sigterm_raises(group):
            yield group, device
    except Exception as exc:
        if not (group.active and is_group_failure(exc)):
            raise
        then = f"; {on_failure()}" if on_failure else ""
        raise GroupBroken(f"another process of the group stopped ({describe(exc)}){then}") from exc
    finally:
        stop(group)


def data_parallel(module: torch.nn.Module, device, static_graph: bool = False) -> torch.nn.Module:
    """DDP around ``module``, without re-sending buffers each step: the whole-batch BatchNorm
    keeps its running statistics equal on every rank by construction.

    ``static_graph``: the same parameters get gradients every step, but maybe not all of them
    (DDP's find_unused_parameters cannot see that: it walks from the outputs of ``forward``).
    """
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    # torch 2.14 renamed broadcast_buffers (deprecated) to forward_sync_buffers.
    known = inspect.signature(DistributedDataParallel.__init__).parameters
    no_sync = "forward_sync_buffers" if "forward_sync_buffers" in known else "broadcast_buffers"
    return DistributedDataParallel(
        module,
        device_ids=[device] if device.type == "cuda" else None,
        static_graph=static_graph,
        **{no_sync: False},
    )


# ------------------------------------------------------------------ collectives (identity alone)


def all_reduce_sum(t, group: Group):
    """Differentiable sum over the processes (its backward sums the gradients too)."""
    if not group.active:
        return t
    return _AllReduceSum.apply(t)


class _AllReduceSum(torch.autograd.Function):
    # Backward sums too: each rank's loss depends on every rank's share through the sum.
    @staticmethod
    def forward(ctx, t):
        out = t.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


def batch_mean(x, group: Group, dims: Sequence[int] = (0,)):
    """The mean of ``x`` over ``dims`` of the whole (all processes') batch; differentiable."""
    if not group.active:
        return x.mean(dim=tuple(dims))
    return batch_moments(x, group, dims, variance=False)[0]


def batch_moments(x, group: Group, dims: Sequence[int], variance: bool = True, shift=None):
    """(mean, biased variance) of ``x`` over ``dims`` of the whole batch; differentiable.

    Alone: torch's mean/var. In a group: one all-reduce of (sum, sum of squares, count) of
    ``x - shift``; a ``shift`` near the mean (broadcastable to ``x``, equal on every rank, e.g. a
    BatchNorm's running mean) keeps E[d^2] - E[d]^2 from cancelling digits away.
    """
    dims = tuple(dims)
    if not group.active:
        return x.mean(dim=dims), (x.var(dim=dims, unbiased=False) if variance else None)
    d = x if shift is None else x - shift.detach()
    s = d.sum(dim=dims)
    parts = [s.flatten(), (d * d).sum(dim=dims).flatten()] if variance else [s.flatten()]
    count = x.new_tensor([x.numel() / max(1, s.numel())])
    total = all_reduce_sum(torch.cat([*parts, count]), group)
    n, k = total[-1], s.numel()
    mean_d = (total[:k] / n).view_as(s)
    mean = mean_d if shift is None else mean_d + shift.detach().reshape(s.shape)
    if not variance:
        return mean, None
    var = (total[k : 2 * k] / n).view_as(s) - mean_d * mean_d
    return mean, var.clamp_min(0)


def gather_rows(t, total: int, group: Group):
    """Rows that rank r computed for items r, r+N, r+2N, ... put back in item order on every rank.

    (``shard(total, group)`` gives each rank its items.) Not differentiable.
    """
    if not group.active:
        return t
    per_rank = -(-total // group.world_size)
    padded = t.new_zeros((per_rank, *t.shape[1:]))
    padded[: len(t)] = t
    chunks = [torch.empty_like(padded) for _ in range(group.world_size)]
    dist.all_gather(chunks, padded.contiguous())
    out = t.new_empty((total, *t.shape[1:]))
    for r, chunk in enumerate(chunks):
        n = len(range(r, total, group.world_size))
        out[r :: group.world_size] = chunk[:n]
    return out


def shard(total: int, group: Group) -> range:
    """The items this rank computes when work is split by stride (see ``gather_rows``)."""
    return range(group.rank, total, group.world_size)


def broadcast(t, group: Group, src: int = 0):
    """Rank ``src``'s tensor on every rank (in place)."""
    if group.active:
        dist.broadcast(t, src)
    return t


def broadcast_object(obj: Any, group: Group, src: int = 0) -> Any:
    """Rank ``src``'s (picklable) object on every rank."""
    if not group.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def mean_over_ranks(values: dict[str, float], group: Group) -> dict[str, float]:
    """Each value averaged over the processes (for logs), in one all-reduce."""
    if not group.active or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return {k: float(v) / group.world_size for k, v in zip(keys, t.tolist(), strict=True)}


def describe(exc: BaseException) -> str:
    """The gist of a collective's error in a few words (gloo: "[file:line] what. Advice...")."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return re.sub(r"^\[[^\]]*\]\s*", "", line).split(". ")[0][:200]


def is_group_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective failing because another process left the group."""
    if isinstance(exc, (GroupBroken, dist.DistError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("Connection closed by peer", "Connection reset by peer", "Gloo", "NCCL")
    )


@contextlib.contextmanager
def sigterm_raises(group: Group) -> Iterator[None]:
    """In a group, turn SIGTERM (torchrun stopping the group when a process failed) into an
    exception, so that temp files are removed and the error is one line."""
    if not group.active or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop_here(signum: int, frame: object) -> None:
        raise GroupBroken("SIGTERM: torchrun stops the whole group when one process fails")

    previous = signal.signal(signal.SIGTERM, stop_here)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
