"""The calibration set: a seeded draw of unlabelled target images, plus held-back images.

Images go through exactly the inference preprocessing: the dataset's resize + centre crop gives
the raw map (depth in mm, IR as stored) that a robot feeds the model; the encoder is inside the
ONNX graph, so calibration runs the same operations as deployment. The held-back images (never
in the calibration draw) are what the accuracy gate scores.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from socket_edge.console import warn
from socket_edge.errors import DataError

DEFAULT_SIZE = 512
DEFAULT_HOLDOUT = 256
# NVIDIA's usual advice: ~500 images; fewer than ~300 makes ranges noisy.
RECOMMENDED_MIN = 300


@dataclass
class CalibrationSet:
    """Files drawn for calibration and for the accuracy gate, and how to load them."""

    root: Path
    modality: str
    image_size: int
    files: list[Path]
    holdout: list[Path]
    requested: int
    seed: int
    sha256: str = ""
    _dataset: object = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, files: list[Path]) -> np.ndarray:
        """Raw maps (N, C, H, W) float32 after the inference resize + centre crop."""
        if not files:
            return np.zeros(
                (0, 1 if self.modality != "rgb" else 3, self.image_size, self.image_size),
                np.float32,
            )
        return np.stack([np.asarray(self._loader().load(p)) for p in files]).astype(np.float32)

    def batches(self, batch_size: int, files: list[Path] | None = None) -> Iterator[np.ndarray]:
        """The calibration images (or ``files``) in order, ``batch_size`` at a time."""
        files = self.files if files is None else files
        for start in range(0, len(files), batch_size):
            yield self.load(files[start : start + batch_size])

    def labels(self, files: list[Path], classes: list[str]) -> np.ndarray | None:
        """Labels from class subfolders (``root/<class>/<image>``), or None if any is missing."""
        if _is_bag(self.root):
            return None  # a bag topic's frames carry no labels
        out = []
        for p in files:
            rel = p.relative_to(self.root).parts
            if len(rel) < 2 or rel[-2] not in classes:
                return None
            out.append(classes.index(rel[-2]))
        return np.asarray(out, dtype=np.int64)

    def describe(self) -> dict:
        return {
            "folder": str(self.root),
            "size": len(self.files),
            "requested": self.requested,
            "seed": self.seed,
            "holdout": len(self.holdout),
            "sha256": self.sha256,
        }

    def _loader(self):
        if self._dataset is None:
            from socket_edge.data.datasets import UnlabelledFolder

            self._dataset = UnlabelledFolder(self.root, self.modality, self.image_size)
        return self._dataset


def draw(
    root: str | Path,
    modality: str,
    image_size: int,
    size: int = DEFAULT_SIZE,
    seed: int = 0,
    holdout: int = DEFAULT_HOLDOUT,
    what: str = "calibration folder",
    warn_short: bool = True,
) -> CalibrationSet:
    """Draw ``size`` images (seeded) from ``root`` for calibration and up to ``holdout`` others.

    Fewer images than asked: warn and use all of them (nothing is held back then). None: error.
    """
    from socket_edge.data.datasets import UnlabelledFolder

    if size < 1:
        raise DataError(f"calibration size must be at least 1, got {size}")
    root = root if _is_bag(root) else Path(root)
    try:
        dataset = (
            root.unlabelled(modality, image_size)  # a bag topic (socket_edge.data.bags)
            if _is_bag(root)
            else UnlabelledFolder(root, modality, image_size)
        )
    except DataError as exc:
        raise DataError(f"{what}: {exc}") from None
    files = list(dataset.files)
    order = np.random.default_rng(seed).permutation(len(files))
    if len(files) < size and warn_short:
        warn(
            f"{root}: {len(files)} images, fewer than the {size} asked for calibration; "
            f"using all {len(files)}"
            + (
                f" (fewer than {RECOMMENDED_MIN} gives noisy ranges)"
                if len(files) < RECOMMENDED_MIN
                else ""
            )
        )
    chosen = [files[i] for i in order[:size]]
    rest = [files[i] for i in order[size : size + max(holdout, 0)]]
    cs = CalibrationSet(root, modality, image_size, chosen, rest, size, seed, _dataset=dataset)
    cs.sha256 = set_hash(cs)
    return cs


def set_hash(cs: CalibrationSet) -> str:
    """sha256 of the drawn files (relative name + content, in draw order) and the preprocessing."""
    from socket_edge.data.transforms import interpolation_for

    h = hashlib.sha256()
    h.update(f"{cs.modality}|{cs.image_size}|{interpolation_for(cs.modality)}\n".encode())
    for p in cs.files:
        if _is_bag(cs.root):  # a bag frame: its name and its decoded pixels
            h.update(str(p).rsplit("#", 1)[-1].encode())
            h.update(b"\0")
            h.update(hashlib.sha256(cs._loader().load(p).tobytes()).digest())
            continue
        h.update(p.relative_to(cs.root).as_posix().encode())
        h.update(b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _is_bag(root: object) -> bool:
    """A bag topic (``socket_edge.data.bags.BagTopic``) rather than a folder."""
    return hasattr(root, "unlabelled")


def stamp(model_sha256: str, set_sha256: str, method: str) -> str:
    """The key every INT8 artifact carries: model + calibration set + method (16 hex digits)."""
    return hashlib.sha256(f"{model_sha256}|{set_sha256}|{method}".encode()).hexdigest()[:16]
