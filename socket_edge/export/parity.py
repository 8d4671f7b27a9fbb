"""Parity of an exported ONNX model with the torch model it came from, in ONNX Runtime."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.onnxruntime import ort_logits, ort_session

ATOL = 1e-4  # max |logit difference| accepted...
# ...unless the logits are so large that float32 rounding alone exceeds it (|logit| ~ 1000 in
# barely trained models, where one ulp is 6e-5): then a few ulps of the largest logit.
RTOL = 2e-6


def torch_logits(model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    import torch

    model.eval()
    with torch.inference_mode():
        outs = [
            model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size]))).float().numpy()
            for i in range(0, len(x), batch_size)
        ]
    return np.concatenate(outs)


def parity_check(
    model,
    onnx_path: str | Path,
    x: np.ndarray,
    batch_sizes: list[int],
    atol: float = ATOL,
    source: str = "",
    rtol: float = RTOL,
) -> dict[str, Any]:
    """ONNX Runtime vs torch on ``x`` at every batch size: max |logit diff| and top-1 agreement.

    Passes when the difference is within max(atol, rtol * max |logit|) and top-1 agrees on all.
    """
    reference = torch_logits(model, x)
    finite = bool(np.isfinite(reference).all())
    tolerance = max(atol, rtol * float(np.abs(reference).max())) if finite else atol
    session = ort_session(onnx_path)
    worst, agreement = 0.0, 1.0
    for b in sorted(set(batch_sizes)):
        out = ort_logits(session, x, b)
        finite = finite and bool(np.isfinite(out).all())
        # NaN never wins max() against a number: a non-finite logit is an explicit failure
        diff = float(np.abs(out - reference).max()) if finite else math.inf
        worst = max(worst, diff)
        agreement = min(agreement, float((out.argmax(1) == reference.argmax(1)).mean()))
    return {
        "max_abs_logit_diff": worst,
        "top1_agreement": agreement,
        "n": int(len(x)),
        "batch_sizes": sorted(set(batch_sizes)),
        "max_abs_logit": float(np.abs(reference).max()),
        "atol": atol,
        "rtol": rtol,
        "tolerance": tolerance,
        "images": source,
        "finite": finite,
        "passed": bool(finite and worst <= tolerance and agreement == 1.0),
    }
