"""Divergence guards: non-finite losses, weights and settings stop a run with one line.

A diverged run must never look like a finished one: training loops check each step's loss terms
(one ``isfinite`` over the stacked terms, read back with the loss values they already log),
checkpoints refuse non-finite weights, and settings are checked as finite and in range before any
work starts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .errors import DivergenceError, SettingError

__all__ = [  # the errors are defined in errors.py; adapt and the tests import them from here too
    "TERM_NAMES",
    "DivergenceError",
    "SettingError",
    "check_number",
    "check_settings",
    "describe_terms",
    "diverged",
    "nonfinite_tensors",
    "nonfinite_terms",
    "stack_terms",
]

# Loss-term names as the logs and the CLI know them.
TERM_NAMES = {
    "loss": "total loss",
    "im": "information-maximisation term (L_IM)",
    "pl": "pseudo-label term (L_PL)",
    "bn": "BatchNorm-moment term (L_BN)",
    "ti": "TI-alignment term (L_TI)",
    "ce": "cross-entropy loss",
    "weights": "model weights after the last update",
}


def check_number(
    field: str,
    value: Any,
    *,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    integer: bool = False,
) -> None:
    """Raise ``SettingError`` unless ``value`` is a finite number within the given bounds."""
    words = []
    if above is not None:
        words.append(f"> {above:g}")
    if minimum is not None:
        words.append(f">= {minimum:g}")
    if maximum is not None:
        words.append(f"<= {maximum:g}")
    kind = "an integer" if integer else "a finite number"
    requirement = kind + (" " + " and ".join(words) if words else "")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingError(field, requirement, value)
    if integer and not isinstance(value, int):
        raise SettingError(field, requirement, value)
    if not math.isfinite(value):
        raise SettingError(field, requirement, value)
    if (
        (above is not None and not value > above)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        raise SettingError(field, requirement, value)


def check_settings(obj: Any, rules: Mapping[str, dict[str, Any]]) -> None:
    """``check_number`` on each named attribute of ``obj`` (a settings dataclass)."""
    for name, bounds in rules.items():
        bounds = dict(bounds)
        value = getattr(obj, name)
        if bounds.pop("optional", False) and value is None:
            continue  # unset: the library chooses (e.g. epochs from a step budget)
        check_number(name, value, **bounds)


def stack_terms(terms: Mapping[str, Any]):
    """The loss terms (0-d tensors) as one float32 vector, detached, in ``terms``' order."""
    import torch

    return torch.stack([v.detach().float().reshape(()) for v in terms.values()])


def nonfinite_terms(names: list[str], stacked, group=None) -> list[str]:
    """Names of the terms whose value in ``stacked`` (see ``stack_terms``) is NaN or inf.

    One ``isfinite`` and one read-back; in a process group (``group.active``) the flags are
    summed over all processes first, so that every process stops at the same step.
    """
    import torch

    bad = (~torch.isfinite(stacked)).float()
    if group is not None and group.active:
        import torch.distributed as dist

        dist.all_reduce(bad)
    return [k for k, b in zip(names, bad.tolist(), strict=True) if b > 0]


def nonfinite_tensors(state_dict: Mapping[str, Any]) -> list[str]:
    """Names of the floating-point tensors of ``state_dict`` holding any NaN or inf."""
    import torch

    out = []
    for name, t in state_dict.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(t.isfinite().all()):
            out.append(name)
    return out


def describe_terms(names: list[str]) -> str:
    return ", ".join(TERM_NAMES.get(n, n) for n in names)


def diverged(
    what: str,
    epoch: int,
    step: int,
    steps: int,
    terms: list[str],
    hint: str,
    kept: str,
    settings: tuple[str, ...] = (),
) -> DivergenceError:
    """The one-line error of a run whose loss went NaN/inf at (1-based) ``epoch`` and ``step``;
    ``settings`` are those that ``hint`` and ``kept`` name."""
    return DivergenceError(
        f"{what} diverged at epoch {epoch}, step {step}/{steps}: {describe_terms(terms)} "
        f"not finite (NaN/inf); {hint}; {kept}; nothing written",
        settings=settings,
    )
