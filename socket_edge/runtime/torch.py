"""Runner for socket-edge checkpoints (.pt) with PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..torchutil import resolve_device
from .base import ArtifactInfo, Runner


def checkpoint_info(path: Path, meta: dict) -> ArtifactInfo:
    return ArtifactInfo(
        path=path,
        kind="checkpoint",
        classes=list(meta["classes"]),
        modality=meta["modality"],
        image_size=int(meta["image_size"]),
        encoding=dict(meta["encoding"]),
        preprocess=dict(meta.get("preprocess", {})),
        precision="fp32",
        arch=meta["arch"],
        extra={"stage": meta.get("stage"), "method": meta.get("method")},
    )


class TorchRunner(Runner):
    backend = "torch"
    options = frozenset({"device", "threads"})

    def __init__(self, path: str | Path, device: str | None = "cpu", threads: int | None = None):
        self.device_name = device or "cpu"
        self.threads = threads
        self._checkpoint: dict | None = None
        self.model = None
        super().__init__(path)

    def load_info(self) -> ArtifactInfo:
        from ..models.checkpoint import read_checkpoint

        self._checkpoint = read_checkpoint(self.path)
        return checkpoint_info(self.path, self._checkpoint["meta"])

    def activate_impl(self) -> None:
        import torch

        from ..models.checkpoint import build_model, load_weights

        if self.threads:
            torch.set_num_threads(self.threads)
        self.device = resolve_device(self.device_name)
        assert self._checkpoint is not None
        meta = self._checkpoint["meta"]
        model = build_model(meta)
        load_weights(model, self._checkpoint["state_dict"], meta["arch"], self.path)
        self.model = model.to(self.device).eval()

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            logits = self.model(x)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            return logits.float().cpu().numpy()

    def deactivate_impl(self) -> None:
        self.model = None

    def describe(self) -> dict:
        return {**super().describe(), "device": str(getattr(self, "device", self.device_name))}
