"""NYU Depth v2 (labelled set) -> socket-edge layout.

Source: ``nyu_depth_v2_labeled.mat``, a MATLAB v7.3 file (HDF5), read with h5py. As h5py sees it
(MATLAB's column-major arrays appear transposed): ``images`` N x 3 x W x H uint8, ``depths``
(filled) and ``rawDepths`` (raw, 0 = no reading) N x W x H float metres, ``sceneTypes`` and
``scenes`` 1 x N object references to MATLAB char arrays (uint16 codes), e.g. 'kitchen' and
'kitchen_0001a'.
The official split is ``splits.mat`` with ``trainNdxs`` / ``testNdxs`` (1-based frame numbers).
These facts come from the dataset's page (cs.nyu.edu/~silberman/datasets/nyu_depth_v2.html) and
the loaders that read it with h5py.

Classes: the 27 scene types. Default task classes: the nine most frequent scene types, which
scene-classification work on NYUD2 (Gupta et al., CVPR 2013, and later RGB-D scene papers) keeps
as classes, lumping the rest into 'others'; here those remaining types are task-irrelevant
instead. SOCKET's papers do not use NYU Depth v2, so this split is our choice (override with
``--task-classes`` / ``--ti-classes``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from ..errors import DataError
from .common import Sample, Scan, class_name
from .splitfiles import h5_string, read_split_file, require_h5py

FILE_NAME = "nyu_depth_v2_labeled.mat"
LAYOUT = (
    f"NYU Depth v2 labelled layout ({FILE_NAME}: MATLAB v7.3 / HDF5 with 'images' "
    "N x 3 x W x H, 'depths' / 'rawDepths' N x W x H metres, 'sceneTypes', 'scenes')"
)
DEPTH_KEYS = {"raw": "rawDepths", "filled": "depths"}
DEFAULT_TASK = (
    "bathroom",
    "bedroom",
    "bookstore",
    "classroom",
    "dining_room",
    "home_office",
    "kitchen",
    "living_room",
    "office",
)


def metres_to_mm(metres: np.ndarray) -> np.ndarray:
    """Float metres -> uint16 millimetres; NaN, inf and values <= 0 become 0 (no reading)."""
    m = np.asarray(metres, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        mm = np.rint(m * 1000.0)
        mm[~np.isfinite(mm) | (mm < 0)] = 0
    return np.clip(mm, 0, 65535).astype(np.uint16)


class _MatFile:
    """The .mat file, opened once and shared by every sample's loader (h5py locks internally)."""

    def __init__(self, path: Path, depth_key: str):
        self.path, self.depth_key = path, depth_key
        self._file = None
        self._lock = threading.Lock()

    def handle(self):
        with self._lock:
            if self._file is None:
                self._file = require_h5py().File(self.path, "r")
            return self._file

    def rgb(self, index: int) -> np.ndarray:
        return np.ascontiguousarray(self.handle()["images"][index].transpose(2, 1, 0))

    def depth(self, index: int) -> np.ndarray:
        return metres_to_mm(self.handle()[self.depth_key][index].T)


def find_file(src: Path) -> Path:
    if src.is_dir():
        candidate = src / FILE_NAME
        if not candidate.is_file():
            raise DataError(f"no {FILE_NAME} in this folder (expected the {LAYOUT})", src)
        return candidate
    if not src.is_file():
        raise DataError(f"no such file (expected the {LAYOUT})", src)
    return src


@dataclass
class Frames:
    """What the .mat file says about its frames (the pixels are read later, while writing)."""

    count: int
    labels: list[str]  # scene type of each frame
    scenes: list[str]  # scene (recording) of each frame; '' where the file has no 'scenes'


def _check_keys(f, path: Path, depth_key: str) -> None:
    missing = [k for k in ("images", depth_key, "sceneTypes") if k not in f]
    if not missing:
        return
    hinted = depth_key in missing and "depths" in f
    hint = " (depth filled reads 'depths')" if hinted else ""
    raise DataError(
        f"missing HDF5 key {', '.join(map(repr, missing))}{hint}: expected the {LAYOUT} "
        f"(has: {', '.join(sorted(f.keys())) or 'nothing'})",
        path,
        settings=("depth",) if hinted else (),
    )


def _read_frames(path: Path, depth_key: str) -> Frames:
    """The frame count, scene types and scenes, after checking the arrays' shapes."""
    h5py = require_h5py()
    if not h5py.is_hdf5(path):
        raise DataError(f"not an HDF5 (MATLAB v7.3) file: expected the {LAYOUT}", path)
    with h5py.File(path, "r") as f:
        _check_keys(f, path, depth_key)
        images, depths = f["images"], f[depth_key]
        if images.ndim != 4 or images.shape[1] != 3 or images.dtype != np.uint8:
            raise DataError(
                f"'images' is {images.dtype} {images.shape}, expected uint8 N x 3 x W x H", path
            )
        n = images.shape[0]
        if depths.shape != (n, *images.shape[2:]):
            raise DataError(
                f"'{depth_key}' has shape {depths.shape}, expected "
                f"{(n, *images.shape[2:])} to match 'images'",
                path,
            )
        labels = _strings(f, "sceneTypes", n, path)
        scenes = _strings(f, "scenes", n, path) if "scenes" in f else [""] * n
    return Frames(n, labels, scenes)


def scan(src: str | Path, depth: str = "raw", split: str | Path | None = None) -> Scan:
    """Read the labelled .mat file's frames (lazily: pixels are read while writing)."""
    if depth not in DEPTH_KEYS:
        raise DataError(
            f"depth must be raw (rawDepths) or filled (depths), got {depth!r}", settings=("depth",)
        )
    require_h5py()
    path = find_file(Path(src))
    depth_key = DEPTH_KEYS[depth]
    frames = _read_frames(path, depth_key)
    official = (
        read_split_file(split, ("trainNdxs", "testNdxs"), "NYU Depth v2's splits.mat")
        if split
        else None
    )
    mat = _MatFile(path, depth_key)
    samples = [
        Sample(
            stem=f"nyu{i + 1:04d}",
            label=class_name(frames.labels[i]),
            load_rgb=partial(mat.rgb, i),
            load_target=partial(mat.depth, i),
            origin=f"{path}[{i + 1}]",
            group=frames.scenes[i],
            split=official.get(str(i + 1)) if official is not None else None,
        )
        for i in range(frames.count)
    ]
    found = {s.label for s in samples}
    return Scan(
        dataset="nyuv2",
        root=path,
        layout=LAYOUT,
        modality="depth",
        samples=samples,
        default_task=[c for c in DEFAULT_TASK if c in found],
        default_ti=sorted(found - set(DEFAULT_TASK)),
        task_rule="the nine most frequent NYUD2 scene types (the scene-classification convention); "
        "the remaining types are task-irrelevant",
        split={"kind": "official", "file": str(split)} if split else {"kind": "seeded"},
        options={"depth": depth, "depth_key": depth_key},
        details={"frames": frames.count},
    )


def _strings(f, key: str, n: int, path: Path) -> list[str]:
    """A 1 x N (or N x 1) cell array of strings."""
    ds = f[key]
    refs = np.asarray(ds[()]).ravel()
    if refs.size != n or refs.dtype != object:
        raise DataError(
            f"'{key}' should be a cell array of {n} strings (object references), "
            f"got {ds.dtype} {ds.shape}",
            path,
        )
    return [h5_string(f[r]) for r in refs]
