"""Top-1 and per-class accuracy of a model, a checkpoint or any runner on a labelled folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .torchutil import make_loader


@dataclass
class EvalResult:
    top1: float
    n: int
    per_class: dict[str, float]
    predictions: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"top1": self.top1, "n": self.n, "per_class": self.per_class}


def score(predictions: np.ndarray, labels: np.ndarray, classes: list[str]) -> EvalResult:
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    per_class = {
        c: float((predictions[labels == i] == i).mean())
        for i, c in enumerate(classes)
        if (labels == i).any()
    }
    top1 = float((predictions == labels).mean()) if len(labels) else 0.0
    return EvalResult(top1, int(len(labels)), per_class, predictions, labels)


def predict_logits(
    model, dataset, device=None, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels (or indices) of a torch model over a dataset, in dataset order."""
    import torch

    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    out, labels = [], []
    with torch.inference_mode():
        for x, y in make_loader(dataset, batch_size, shuffle=False):
            out.append(model(x.to(device)).float().cpu().numpy())
            labels.append(np.asarray(y))
    model.train(was_training)
    return np.concatenate(out), np.concatenate(labels)


def evaluate_model(model, dataset, device=None, batch_size: int = 256) -> EvalResult:
    logits, labels = predict_logits(model, dataset, device, batch_size)
    return score(logits.argmax(1), labels, dataset.classes)


def runner_logits(
    runner, dataset, batch_size: int = 64, show_progress: bool = False, pad: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of an active runner over a dataset, in dataset order. ``pad``: every
    batch full (the last one filled with its last image, and trimmed), for engines built for
    one batch size."""
    from .console import bar

    out, labels = [], []
    starts = range(0, len(dataset), batch_size)  # plain numpy batches: no torch DataLoader
    with bar(f"eval {runner.path.name}", len(starts), show_progress) as progress:
        for start in starts:
            items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            real = len(items)
            if pad:
                items += [items[-1]] * (batch_size - real)
            batch = np.stack([np.asarray(x, np.float32) for x, _ in items])
            out.append(np.asarray(runner.infer(batch))[:real])
            labels.append(np.asarray([y for _, y in items[:real]]))
            progress.advance()
    return np.concatenate(out), np.concatenate(labels)


def evaluate_artifact(
    path,
    data,
    batch_size: int = 64,
    device: str | None = None,
    show_progress: bool = True,
    verify: bool = True,
    label: str | None = None,
) -> EvalResult:
    """Accuracy of a checkpoint, ONNX model or engine on ``data/<class>/<image>``, or on a bag
    topic (``data.bags.BagTopic``) recorded of one class, ``label``.

    ONNX models and engines are verified against their sidecars first (``verify=False`` skips).
    """
    from .data.datasets import LabelledFolder
    from .runtime import load_runner

    options = {"device": device} if device and str(path).endswith((".pt", ".pth")) else {}
    with load_runner(path, verify=verify, **options) as runner:
        info = runner.info
        if hasattr(data, "unlabelled"):  # a bag topic
            from .data.bags import LabelledBag

            dataset = LabelledBag(
                data, label, list(info.classes), info.modality, info.image_size, info.frame_size
            )
        else:
            if label is not None:
                from .errors import SocketEdgeError

                raise SocketEdgeError(
                    "label is for bags; a folder's labels are its class subfolders",
                    data,
                    settings=("label",),
                )
            dataset = LabelledFolder(
                data, info.modality, info.image_size, classes=info.classes,
                frame_size=info.frame_size,
            )  # fmt: skip
        logits, labels = runner_logits(runner, dataset, batch_size, show_progress)
    return score(logits.argmax(1), labels, info.classes)
