"""DIML RGB-D (indoor) -> socket-edge layout.

Source layout (the DIML/CVL RGB-D indoor sample release, as its loaders read it):
``{train,test}/{HR,LR}/<NN. Class>/color/<name>_c.png`` with
``.../<NN. Class>/depth_filled/<name>_depth_filled.png`` (16-bit, millimetres), class folders
such as '11. Bedroom' or '01_Warehouse'. The train/ and test/ folders are the official split; a tree
without them (``{HR,LR}/<class>/...`` or ``<class>/...``) gets a seeded split. Facts from the
dataset's page (dimlrgbd.github.io) and the public loaders of this release.

SOCKET's follow-up (arXiv 2401.05014) uses DIML with task-irrelevant classes, but no list of them
was found, so there is no default TI split here: choose one with ``--ti-classes``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from ..errors import DataError
from .common import Sample, Scan, class_name, safe_stem
from .images import read_rgb8, read_uint16

LAYOUT = (
    "DIML RGB-D indoor layout ({train,test}/{HR,LR}/<class>/color/<name>_c.png with "
    "<class>/depth_filled/<name>_depth_filled.png)"
)
RESOLUTIONS = ("HR", "LR")


def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _split_roots(src: Path) -> dict[str | None, Path]:
    """{'train': dir, 'test': dir} for an official split, else {None: dir}."""
    root = src / "indoor" if (src / "indoor").is_dir() else src
    splits: dict[str | None, Path] = {
        sp: root / sp for sp in ("train", "test") if (root / sp).is_dir()
    }
    return splits or {None: root}


def _class_root(split_dir: Path, resolution: str) -> Path:
    if (split_dir / resolution).is_dir():
        return split_dir / resolution
    other = [r for r in RESOLUTIONS if (split_dir / r).is_dir()]
    if other:
        raise DataError(
            f"no {resolution}/ folder (found {', '.join(o + '/' for o in other)}; "
            f"choose it with resolution {other[0]})",
            split_dir,
            settings=("resolution",),
        )
    return split_dir


def _class_frames(folder: Path) -> list[tuple[str, Path, Path]]:
    """(frame name, colour file, depth file) of one class folder."""
    color_dir, depth_dir = folder / "color", folder / "depth_filled"
    if not depth_dir.is_dir():
        raise DataError(f"class folder without depth_filled/ (expected the {LAYOUT})", folder)
    frames, orphans = [], []
    for c in sorted(color_dir.iterdir()):
        if not c.is_file() or c.name.startswith(".") or c.suffix.lower() not in (".png", ".jpg"):
            continue
        name = c.stem[:-2] if c.stem.endswith("_c") else c.stem
        d = depth_dir / f"{name}_depth_filled.png"
        if d.is_file():
            frames.append((name, c, d))
        else:
            orphans.append(c.name)
    if orphans:
        more = f", ... ({len(orphans) - 3} more)" if len(orphans) > 3 else ""
        shown = ", ".join(orphans[:3]) + more
        raise DataError(
            f"DIML layout: colour frames without a depth_filled/<name>"
            f"_depth_filled.png partner: {shown}",
            color_dir,
        )
    return frames


def scan(src: str | Path, resolution: str = "LR") -> Scan:
    src = Path(src)
    if resolution not in RESOLUTIONS:
        raise DataError(
            f"resolution must be HR or LR, got {resolution!r}", settings=("resolution",)
        )
    if not src.is_dir():
        raise DataError(f"no such folder (expected the {LAYOUT})", src)
    samples: list[Sample] = []
    roots = _split_roots(src)
    for split, split_dir in roots.items():
        class_root = _class_root(split_dir, resolution)
        folders = [d for d in _visible_dirs(class_root) if (d / "color").is_dir()]
        if not folders:
            seen = ", ".join(d.name for d in _visible_dirs(class_root)[:8]) or "nothing"
            raise DataError(
                f"no class folders with color/ and depth_filled/: expected the "
                f"{LAYOUT} (found: {seen})",
                class_root,
            )
        for folder in folders:
            label = class_name(folder.name)
            for name, color, depth in _class_frames(folder):
                stem = safe_stem(f"{label}-{name}")
                samples.append(
                    Sample(
                        stem=stem,
                        label=label,
                        load_rgb=partial(read_rgb8, color, "DIML"),
                        load_target=partial(read_uint16, depth, "DIML", "depth"),
                        origin=str(color),
                        group=stem,
                        split=split,
                    )
                )
    if not samples:
        raise DataError(f"no frames found: expected the {LAYOUT}", src)
    classes = sorted({s.label for s in samples})
    official = None not in roots
    return Scan(
        dataset="diml",
        root=src,
        layout=LAYOUT,
        modality="depth",
        samples=samples,
        default_task=classes,
        default_ti=[],
        task_rule="every class (no published task-irrelevant split for DIML; use --ti-classes)",
        split={"kind": "official", "folders": sorted(str(s) for s in roots)}
        if official
        else {"kind": "seeded"},
        options={"resolution": resolution, "depth_folder": "depth_filled"},
    )
