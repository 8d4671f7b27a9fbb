"""EPFL RGB-NIR scene dataset -> socket-edge layout (target modality: ir).

Source layout (Brown & Suesstrunk, CVPR 2011; the release 'nirscene1'): nine category folders,
country, field, forest, indoor, mountain, oldbuilding, street, urban and water, each holding
pairs ``NNNN_rgb.tiff`` (8-bit colour) + ``NNNN_nir.tiff`` (8-bit near-infrared, one channel; some
readers see it as three equal channels). Numbers restart in every category, so output stems are
'<category>-NNNN'. There is no official split: a seeded, stratified one is made.

Task / TI split: the SOCKET papers use this dataset for RGB -> NIR, but no list of their
task-irrelevant categories was found. Our default keeps six categories as the task and makes
country, oldbuilding and water task-irrelevant: each has a close task neighbour (field, urban /
street, mountain / forest scenery), so the TI pairs look like the target data without sharing
its classes. Override with ``--ti-classes`` / ``--task-classes``.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import numpy as np

from ..errors import DataError
from .common import Sample, Scan, class_name, safe_stem
from .images import open_image, read_rgb8

CATEGORIES = (
    "country",
    "field",
    "forest",
    "indoor",
    "mountain",
    "oldbuilding",
    "street",
    "urban",
    "water",
)
DEFAULT_TI = ("country", "oldbuilding", "water")
LAYOUT = (
    "EPFL RGB-NIR scene layout (category folders country, field, forest, indoor, mountain, "
    "oldbuilding, street, urban, water with pairs NNNN_rgb.tiff + NNNN_nir.tiff)"
)
_PAIR = re.compile(r"^(?P<id>.+)_(?P<kind>rgb|nir)\.(tiff?|png)$", re.IGNORECASE)


def read_nir(path: Path) -> np.ndarray:
    """One NIR frame as uint8 (or uint16) H x W."""
    im = open_image(path, "EPFL RGB-NIR")
    if im.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(im).astype(np.uint16)
    if im.mode == "L":
        return np.asarray(im, dtype=np.uint8)
    if im.mode in ("RGB", "RGBA", "P"):
        rgb = np.asarray(im.convert("RGB"))
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return np.ascontiguousarray(rgb[..., 0])
        raise DataError(
            "colour image where the EPFL RGB-NIR layout has a single-channel NIR "
            "frame (are _rgb and _nir swapped?)",
            path,
        )
    raise DataError(f"{im.mode} image: NIR frames are 8- or 16-bit single channel", path)


def find_root(src: Path) -> Path:
    if not src.is_dir():
        raise DataError(f"no such folder (expected the {LAYOUT})", src)
    for root in (src, src / "nirscene1"):
        if root.is_dir() and any((root / c).is_dir() for c in CATEGORIES):
            return root
    seen = sorted(p.name for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    raise DataError(
        f"not an EPFL RGB-NIR folder: expected the {LAYOUT}; found "
        f"{', '.join(seen[:8]) or 'no folders'}",
        src,
    )


def _pairs(folder: Path) -> list[tuple[str, Path, Path]]:
    rgb: dict[str, Path] = {}
    nir: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        m = _PAIR.match(p.name)
        if p.is_file() and m:
            (rgb if m["kind"].lower() == "rgb" else nir)[m["id"]] = p
    only_rgb, only_nir = sorted(set(rgb) - set(nir)), sorted(set(nir) - set(rgb))
    if only_rgb or only_nir:
        parts = [f"{rgb[i].name} has no {i}_nir partner" for i in only_rgb[:3]]
        parts += [f"{nir[i].name} has no {i}_rgb partner" for i in only_nir[:3]]
        more = len(only_rgb) + len(only_nir) - len(parts)
        tail = f"; {more} more" if more else ""
        raise DataError(
            f"unpaired files in the EPFL RGB-NIR layout (every NNNN_rgb.tiff needs "
            f"its NNNN_nir.tiff): {'; '.join(parts)}{tail}",
            folder,
        )
    return [(i, rgb[i], nir[i]) for i in sorted(rgb)]


def scan(src: str | Path) -> Scan:
    root = find_root(Path(src))
    samples: list[Sample] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        pairs = _pairs(folder)
        label = class_name(folder.name)
        for ident, rgb, nir in pairs:
            stem = safe_stem(f"{label}-{ident}")
            samples.append(
                Sample(
                    stem=stem,
                    label=label,
                    load_rgb=partial(read_rgb8, rgb, "EPFL RGB-NIR"),
                    load_target=partial(read_nir, nir),
                    origin=str(rgb),
                    group=stem,
                )
            )
    if not samples:
        raise DataError(
            f"no NNNN_rgb.tiff + NNNN_nir.tiff pairs found: expected the {LAYOUT}", root
        )
    found = {s.label for s in samples}
    return Scan(
        dataset="rgbnir",
        root=root,
        layout=LAYOUT,
        modality="ir",
        samples=samples,
        default_task=sorted(found - set(DEFAULT_TI)),
        default_ti=[c for c in DEFAULT_TI if c in found],
        task_rule="six categories are the task; country, oldbuilding and water are "
        "task-irrelevant (socket-edge's default; no published split found)",
        split={"kind": "seeded"},
    )
