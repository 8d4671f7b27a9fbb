"""Datasets over the folder layouts of the README ("Data layout"): labelled, unlabelled, and task-irrelevant pairs.

Items are numpy arrays (no torch needed to read data for ONNX Runtime or TensorRT); augmented
items are torch tensors, augmentation being training. Augmentation is deterministic: each sample's crop/flip comes from a generator seeded with
(epoch seed, index), so a resumed run and a fresh run see the same images, in any worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..console import warn
from ..errors import DataError
from ..files import walk_files
from .readers import IMAGE_SUFFIXES, is_image_file, read_image
from .transforms import apply_crop_flip, draw_crop_flip, interpolation_for, resize_center_crop

# Decoded images are kept in memory up to this many bytes per dataset (small data sets: all).
CACHE_BYTES = 1 << 30


def require_dir(path: str | Path, what: str = "folder") -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such {what}", path)
    if not path.is_dir():
        raise DataError(f"not a folder (expected a {what})", path)
    return path


def find_images(root: str | Path, recursive: bool = True) -> list[Path]:
    """All image files under ``root`` in sorted order (hidden files and folders skipped)."""
    root = require_dir(root)
    if recursive:
        return [p for p in walk_files(root) if is_image_file(p)]
    return sorted(p for p in root.iterdir() if is_image_file(p) and not p.name.startswith("."))


def _no_images(root: Path) -> DataError:
    return DataError(f"no images found (looked for {', '.join(IMAGE_SUFFIXES)})", root)


def list_classes(root: str | Path) -> list[str]:
    """Class names of a labelled folder: its subfolders that hold images."""
    root = require_dir(root)
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = [d.name for d in subdirs if find_images(d)]
    if not classes:
        if find_images(root, recursive=False):
            raise DataError(
                "images lie directly in the folder, but labels come from class subfolders "
                "(<class>/<image>); this command needs labelled data",
                root,
            )
        raise _no_images(root)
    return classes


def empty_class_folders(root: str | Path) -> list[str]:
    """Subfolders of a labelled folder that hold no images (hidden ones skipped)."""
    root = require_dir(root)
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and not find_images(p)
    )


class _ImageDataset:
    """Shared loading, caching and augmentation of the folder datasets."""

    cache_bytes: int | None = CACHE_BYTES  # None: keep every image (bag frames are read once)

    def __init__(
        self,
        modality: str,
        image_size: int,
        augment: bool,
        pad: int | None,
        frame_size: tuple[int, int] | None = None,
    ):
        self.modality = modality
        self.image_size = image_size
        # Set for models with resize + crop in their graph: images stay whole frames of this size.
        self.frame_size = tuple(frame_size) if frame_size else None
        self.augment = augment
        self.pad = image_size // 8 if pad is None else pad
        self.epoch_seed = 0
        self._cache: dict[Path, np.ndarray] = {}
        self._cached_bytes = 0
        self._depth_seen: set[Path] = set()
        self._depth_empty = 0
        self._depth_warned = False

    def set_epoch(self, seed: int) -> None:
        """Choose the augmentation draws of this epoch (same seed, same draws)."""
        self.epoch_seed = int(seed)

    def load(self, path: Path, modality: str | None = None) -> np.ndarray:
        """Read and resize one image (cached), before augmentation: a float32 numpy array."""
        modality = modality or self.modality
        t = self._cache.get(path)
        if t is None:
            arr = self.read(path, modality)
            if modality == "depth":
                self._note_depth(path, arr)
            if self.frame_size is None:
                t = resize_center_crop(arr, self.image_size, interpolation_for(modality))
            elif arr.shape[-2:] == self.frame_size:
                t = np.ascontiguousarray(arr, dtype=np.float32)
            else:
                h, w = arr.shape[-2:]
                raise DataError(
                    f"image is {h}x{w}, the model takes {self.frame_size[0]}x"
                    f"{self.frame_size[1]} frames (the frame_size it was exported with)",
                    path,
                    settings=("frame_size",),
                )
            if self.cache_bytes is None or self._cached_bytes + t.nbytes <= self.cache_bytes:
                self._cache[path] = t
                self._cached_bytes += t.nbytes
        return t

    def read(self, path: Path, modality: str) -> np.ndarray:
        """One image in canonical units (a file here; decoded bag frames in ``data/bags/``)."""
        return read_image(path, modality)

    def _note_depth(self, path: Path, arr: np.ndarray) -> None:
        """Count depth maps without a single valid reading; once every image was read, warn if
        they are most of the data set (a broken sensor export looks like that)."""
        if path in self._depth_seen:
            return
        self._depth_seen.add(path)
        self._depth_empty += int(not (arr > 0).any())
        n = len(self._depth_seen)
        if not self._depth_warned and n >= len(self) and 2 * self._depth_empty > n:  # type: ignore[arg-type]
            self._depth_warned = True
            warn(
                f"{getattr(self, 'root', '')}: {self._depth_empty} of {n} depth images have no "
                "valid reading (every pixel 0); check the sensor export (16-bit PNG in mm)"
            )

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.epoch_seed, index])

    def augmented(self, t, index: int):
        """``t`` with this epoch's crop/flip draw for ``index`` (unchanged without augmentation)."""
        if not self.augment:
            return t
        return apply_crop_flip(
            t, draw_crop_flip(self.rng(index), self.pad), self.pad, self.modality
        )


class LabelledFolder(_ImageDataset):
    """``root/<class>/<image>``; items are (image, label)."""

    def __init__(
        self,
        root: str | Path,
        modality: str,
        image_size: int,
        augment: bool = False,
        classes: list[str] | None = None,
        pad: int | None = None,
        frame_size: tuple[int, int] | None = None,
    ):
        super().__init__(modality, image_size, augment, pad, frame_size)
        self.root = require_dir(root)
        found = list_classes(self.root)
        if classes is None:
            empty = empty_class_folders(self.root)
            if empty:
                raise DataError(
                    f"class folder(s) {', '.join(empty)} hold no images: a model trained here "
                    f"would silently have {len(found)} classes, not {len(found) + len(empty)}; "
                    "add images or remove the folder(s)",
                    self.root,
                )
            classes = found
        else:
            absent = [c for c in classes if c not in found]
            if absent:
                warn(
                    f"{self.root}: no images for {len(absent)} of the model's {len(classes)} "
                    f"classes ({', '.join(absent[:10])}{', ...' if len(absent) > 10 else ''}); "
                    "they are not scored"
                )
            unknown = [c for c in found if c not in classes]
            if unknown:
                raise DataError(
                    f"class folders {unknown} are not among the model's classes {list(classes)}",
                    self.root,
                )
        self.classes = list(classes)
        self.samples = [
            (p, self.classes.index(c)) for c in found for p in find_images(self.root / c)
        ]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        return self.augmented(self.load(path), index), label


class UnlabelledFolder(_ImageDataset):
    """Every image under ``root`` (flat, or in class subfolders whose names are ignored)."""

    def __init__(
        self,
        root: str | Path,
        modality: str,
        image_size: int,
        augment: bool = False,
        pad: int | None = None,
        frame_size: tuple[int, int] | None = None,
    ):
        super().__init__(modality, image_size, augment, pad, frame_size)
        self.root = require_dir(root)
        self.files = find_images(self.root)
        if not self.files:
            raise _no_images(self.root)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        return self.augmented(self.load(self.files[index]), index), index


@dataclass(frozen=True)
class Pair:
    stem: str
    rgb: Path
    target: Path


def _by_stem(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in find_images(folder, recursive=False):
        if p.stem in out:
            raise DataError(
                f"two files share the stem {p.stem!r}: {out[p.stem].name}, {p.name}", folder
            )
        out[p.stem] = p
    return out


def _stems(stems: list[str], limit: int = 5) -> str:
    shown = ", ".join(stems[:limit])
    return shown + (f", ... ({len(stems) - limit} more)" if len(stems) > limit else "")


def match_pairs(root: str | Path, modality: str) -> list[Pair]:
    """Match ``root/rgb/<stem>.*`` with ``root/<modality>/<stem>.*`` by file stem."""
    root = require_dir(root, "paired folder")
    rgb_dir, tgt_dir = root / "rgb", root / modality
    for d in (rgb_dir, tgt_dir):
        if not d.is_dir():
            raise DataError(
                f"no '{d.name}/' folder: task-irrelevant pairs need rgb/ and {modality}/ "
                "with images matched by file stem",
                root,
            )
    rgb, tgt = _by_stem(rgb_dir), _by_stem(tgt_dir)
    only_rgb, only_tgt = sorted(set(rgb) - set(tgt)), sorted(set(tgt) - set(rgb))
    if only_rgb or only_tgt:
        parts = []
        if only_rgb:
            parts.append(
                f"{len(only_rgb)} in rgb/ without a {modality} partner ({_stems(only_rgb)})"
            )
        if only_tgt:
            parts.append(
                f"{len(only_tgt)} in {modality}/ without an rgb partner ({_stems(only_tgt)})"
            )
        raise DataError("unpaired images: " + "; ".join(parts), root)
    return [Pair(s, rgb[s], tgt[s]) for s in sorted(rgb)]


class _PairedImages(_ImageDataset):
    """Items of ``self.pairs``: (RGB, target image, index), both under the same crop and flip."""

    pairs: list[Pair]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int):
        pair = self.pairs[index]
        rgb, tgt = self.load(pair.rgb, "rgb"), self.load(pair.target)
        if self.augment:
            p = draw_crop_flip(self.rng(index), self.pad)
            rgb = apply_crop_flip(rgb, p, self.pad, "rgb")
            tgt = apply_crop_flip(tgt, p, self.pad, self.modality)
        return rgb, tgt, index


class PairedFolder(_PairedImages):
    """Task-irrelevant pairs; items are (rgb, target, index), both given the SAME crop and flip."""

    def __init__(
        self,
        root: str | Path,
        modality: str,
        image_size: int,
        augment: bool = False,
        pad: int | None = None,
    ):
        super().__init__(modality, image_size, augment, pad)
        self.root = Path(root)
        self.pairs = match_pairs(root, modality)
