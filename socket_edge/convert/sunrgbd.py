"""SUN RGB-D -> socket-edge layout, with the SOCKET paper's task / task-irrelevant class split.

Source layout (the dataset's SUNRGBD.zip): ``SUNRGBD/<sensor>/<subset>/.../<scene folder>/`` for
the sensors kv1, kv2, realsense and xtion; each scene folder holds one frame: ``image/<name>.jpg``,
``depth/<name>.png`` (``depth_bfx/`` the filled version), ``scene.txt`` (its scene class) and
``intrinsics.txt``. Scene folders sit at different depths (xtion's sun3ddata nests deeper).

Facts used, and where they come from:
- Depth PNGs store millimetres rotated by three bits; the SUN RGB-D toolbox's
  ``readData/read3dPoints.m`` decodes ``bitor(bitshift(d,-3), bitshift(d,16-3))`` (uint16) and
  clips at 8 m (some versions 10 m). We decode the same way and clip at ``max_depth_mm``.
- Official split: the toolbox's ``traintestSUNRGBD/allsplit.mat`` holds ``alltrain`` / ``alltest``,
  cell arrays of scene-folder paths that contain ``.../SUNRGBD/<sensor>/...`` (a MATLAB v5 file,
  so reading it needs scipy; a text list works without).
- Task / TI protocol (SOCKET, ECCV 2022, arXiv 2209.04027; the authors' code release
  merlresearch/SOCKET, README and data/gen_txt_TI_data.py; the same protocol in arXiv 2401.05014):
  the task classes are the scene classes present for every one of the four sensors (the paper
  counts 17); the RGB-D pairs of all the remaining classes, from every sensor, are the
  task-irrelevant data. We compute that intersection from the data rather than hard-code a list
  (no published list of the 17 names was found); ``--task-classes`` overrides it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from ..console import warn
from ..errors import DataError
from .common import Sample, Scan, class_name, safe_stem
from .images import read_rgb8, read_uint16
from .splitfiles import read_split_file

SENSORS = ("kv1", "kv2", "realsense", "xtion")
LAYOUT = (
    "SUN RGB-D layout (SUNRGBD/<sensor>/.../<scene folder>/ with image/<name>.jpg, "
    "depth/<name>.png and scene.txt; sensors kv1, kv2, realsense, xtion)"
)
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DEPTH_FOLDERS = {"raw": "depth", "filled": "depth_bfx"}
DEFAULT_MAX_DEPTH_MM = 8000


def decode_depth(raw: np.ndarray, max_depth_mm: int | None = DEFAULT_MAX_DEPTH_MM) -> np.ndarray:
    """SUN RGB-D's stored depth -> plain millimetres (uint16, 0 = no reading)."""
    raw = np.asarray(raw, dtype=np.uint16)
    mm = (raw >> 3) | (raw << 13)  # a 16-bit rotation: uint16 arithmetic drops the high bits
    if max_depth_mm:
        mm = np.minimum(mm, np.uint16(max_depth_mm))
    return mm


def encode_depth(mm: np.ndarray) -> np.ndarray:
    """Millimetres -> SUN RGB-D's stored form (the inverse rotation; used to build test data)."""
    mm = np.asarray(mm, dtype=np.uint16)
    return (mm << 3) | (mm >> 13)


def find_root(src: Path) -> Path:
    """SRC itself or SRC/SUNRGBD, whichever holds the sensor folders."""
    if not src.exists():
        raise DataError(f"no such folder (expected the {LAYOUT})", src)
    if not src.is_dir():
        raise DataError(f"not a folder (expected the {LAYOUT})", src)
    for root in (src, src / "SUNRGBD"):
        if root.is_dir() and any((root / s).is_dir() for s in SENSORS):
            return root
    seen = sorted(p.name for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    raise DataError(
        f"not a SUN RGB-D folder: expected the {LAYOUT}; none of the sensor folders "
        f"{', '.join(SENSORS)} is here or under SUNRGBD/ "
        f"(found: {', '.join(seen[:8]) or 'nothing'})",
        src,
    )


def _is_scene_folder(path: Path) -> bool:
    return (path / "image").is_dir() or (path / "scene.txt").is_file()


def scene_folders(sensor_dir: Path) -> list[Path]:
    """Every scene folder under a sensor folder, at any depth, in sorted order."""
    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk(sensor_dir):
        here = Path(dirpath)
        if _is_scene_folder(here):
            found.append(here)
            dirnames[:] = []  # a scene folder's subfolders are its own data
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    return sorted(found)


def _single_file(folder: Path, suffixes: tuple[str, ...], scene: Path, what: str) -> Path:
    if not folder.is_dir():
        raise DataError(
            f"SUN RGB-D scene folder without {folder.name}/ (expected image/, depth/ and "
            f"scene.txt; {what})",
            scene,
        )
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
    )
    if len(files) != 1:
        raise DataError(
            f"{folder.name}/ holds {len(files)} {'/'.join(suffixes)} files; a SUN RGB-D scene "
            "folder holds one frame",
            scene,
        )
    return files[0]


def read_scene(scene: Path, depth: str) -> tuple[str, Path, Path]:
    """(class, image file, depth file) of a scene folder, or a DataError saying what is missing."""
    label_file = scene / "scene.txt"
    if not label_file.is_file():
        raise DataError(
            "SUN RGB-D scene folder without scene.txt (expected image/, depth/ and scene.txt)",
            scene,
        )
    text = label_file.read_text(encoding="utf-8", errors="replace").strip()
    label = class_name(text.splitlines()[0]) if text else ""
    if not label:
        raise DataError("scene.txt is empty (it should name the scene class)", label_file)
    image = _single_file(scene / "image", _IMAGE_SUFFIXES, scene, "the colour frame")
    depth_dir = scene / DEPTH_FOLDERS[depth]
    depth_file = _single_file(depth_dir, (".png",), scene, f"the {depth} depth frame")
    return label, image, depth_file


def _load_depth(path: Path, max_depth_mm: int | None) -> np.ndarray:
    return decode_depth(read_uint16(path, "SUN RGB-D", "depth"), max_depth_mm)


def _split_key(text: str) -> str:
    """'/n/fs/.../SUNRGBD/kv1/NYUdata/NYU0001/' -> 'kv1/NYUdata/NYU0001'."""
    text = text.strip().replace("\\", "/")
    if "SUNRGBD/" in text:
        text = text.split("SUNRGBD/", 1)[1]
    return text.strip("/")


def _check_sensors(sensors: tuple[str, ...] | None, present: list[str], root: Path) -> None:
    """The chosen sensors must be SUN RGB-D's and have folders here."""
    if not sensors:
        return
    unknown = [s for s in sensors if s not in SENSORS]
    if unknown:
        raise DataError(f"unknown sensor {', '.join(unknown)} (SUN RGB-D has {', '.join(SENSORS)})")
    absent = [s for s in sensors if s not in present]
    if absent:
        raise DataError(
            f"sensor {', '.join(absent)}: no such sensor folder here (found {', '.join(present)})",
            root,
        )


def _official_split(split: str | Path | None) -> dict[str, str] | None:
    """{scene folder relative to SUNRGBD/: 'train' | 'test'} from allsplit.mat or a text list."""
    if not split:
        return None
    official = read_split_file(split, ("alltrain", "alltest"), "SUN RGB-D's allsplit.mat")
    return {_split_key(k): v for k, v in official.items()}


@dataclass
class SensorFrames:
    """The scene folders of every sensor found, as samples, and each sensor's classes."""

    samples: list[Sample]
    classes: dict[str, set[str]]  # sensor -> scene classes with frames


def _read_sensors(
    root: Path,
    present: list[str],
    depth: str,
    max_depth_mm: int | None,
    official: dict[str, str] | None,
) -> SensorFrames:
    frames = SensorFrames([], {})
    for sensor in present:
        frames.classes[sensor] = set()
        for scene in scene_folders(root / sensor):
            label, image, depth_file = read_scene(scene, depth)
            key = scene.relative_to(root).as_posix()
            frames.classes[sensor].add(label)
            frames.samples.append(
                Sample(
                    stem=safe_stem(key),
                    label=label,
                    load_rgb=partial(read_rgb8, image, "SUN RGB-D"),
                    load_target=partial(_load_depth, depth_file, max_depth_mm),
                    origin=str(scene),
                    group=key,
                    split=official.get(key) if official is not None else None,
                    domain=sensor,
                )
            )
    if not frames.samples:
        raise DataError(
            f"no scene folders found: expected the {LAYOUT} (a scene folder has image/, depth/ "
            "and scene.txt)",
            root,
        )
    return frames


def _common_classes(frames: SensorFrames) -> tuple[list[str], set[str]]:
    """(sensors with frames, the classes every one of them has); warns when not all four."""
    with_frames = [s for s in frames.classes if frames.classes[s]]
    common = set.intersection(*(frames.classes[s] for s in with_frames))
    if len(with_frames) < len(SENSORS):
        warn(
            f"only {', '.join(with_frames)} of the four SUN RGB-D sensors found: the task classes "
            f"are those present for {'all of these' if len(with_frames) > 1 else 'this sensor'} "
            "(the SOCKET protocol intersects all four)"
        )
    return with_frames, common


def scan(
    src: str | Path,
    sensors: tuple[str, ...] | None = None,
    depth: str = "raw",
    split: str | Path | None = None,
    max_depth_mm: int | None = DEFAULT_MAX_DEPTH_MM,
) -> Scan:
    """A SUN RGB-D tree as samples: every sensor's frames (task frames only of ``sensors``)."""
    src = Path(src)
    if depth not in DEPTH_FOLDERS:
        raise DataError(
            f"depth must be raw or filled (depth_bfx/, the hole-filled frames), got {depth!r}",
            settings=("depth",),
        )
    root = find_root(src)
    present = [s for s in SENSORS if (root / s).is_dir()]
    _check_sensors(sensors, present, root)
    frames = _read_sensors(root, present, depth, max_depth_mm, _official_split(split))
    with_frames, common = _common_classes(frames)
    everything = set().union(*frames.classes.values())
    return Scan(
        dataset="sunrgbd",
        root=root,
        layout=LAYOUT,
        modality="depth",
        samples=frames.samples,
        default_task=sorted(common),
        default_ti=sorted(everything - common),
        task_rule=f"scene classes present for every sensor found ({', '.join(with_frames)}); "
        "the remaining classes' pairs from every sensor are task-irrelevant "
        "(SOCKET protocol)",
        split={"kind": "official", "file": str(split)} if split else {"kind": "seeded"},
        task_domains=tuple(sensors) if sensors else None,
        options={
            "sensors": list(sensors) if sensors else present,
            "depth": depth,
            "depth_folder": DEPTH_FOLDERS[depth],
            "max_depth_mm": max_depth_mm,
        },
        details={
            "sensors_found": with_frames,
            "classes_per_sensor": {s: sorted(frames.classes[s]) for s in with_frames},
        },
    )
