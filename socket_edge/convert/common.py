"""What every converter shares: samples, the task / TI class choice, the split, and writing.

A converter scans its source layout into a :class:`Scan` (a list of :class:`Sample` plus the
dataset's default task / task-irrelevant classes); :func:`write_converted` then writes socket-edge's
layout, every file atomically, and ``DST/convert.json`` last, so that its presence marks a
complete conversion::

    DST/source_rgb/{train,test}/<class>/<stem>.png   8-bit RGB of the task classes
    DST/target/{train,test}/<class>/<stem>.png       the same frames in the target modality
    DST/paired/rgb/<stem>.png + DST/paired/<modality>/<stem>.png   task-irrelevant pairs
    DST/convert.json                                 what was converted, from where, and how
"""

from __future__ import annotations

import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..console import bar, warn
from ..errors import DataError
from ..files import atomic_path, write_json

# What DST may already hold when --force rewrites it: only what a conversion writes.
OUTPUT_ENTRIES = ("source_rgb", "target", "paired", "convert.json")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Sample:
    """One RGB frame and the same frame in the target modality."""

    stem: str  # output file stem, unique within the dataset
    label: str  # class (scene category)
    load_rgb: Callable[[], np.ndarray]  # -> H x W x 3 uint8
    load_target: Callable[[], np.ndarray]  # -> H x W uint16 (depth, mm) or uint8/uint16 (IR)
    origin: str  # where it came from, for messages and convert.json
    group: str = ""  # frames of one group (scene, video) never straddle train and test
    split: str | None = None  # 'train' / 'test' from an official split, else None
    domain: str = ""  # e.g. the SUN RGB-D sensor


@dataclass
class Scan:
    """A source dataset read into samples, with the dataset's default class split."""

    dataset: str
    root: Path  # the source folder (or file) that was scanned
    layout: str  # the expected source layout, in words
    modality: str  # target modality: 'depth' or 'ir'
    samples: list[Sample]
    default_task: list[str]
    default_ti: list[str]
    task_rule: str  # how the default task classes were chosen
    split: dict[str, Any]  # {"kind": "official", ...} or {"kind": "seeded"}
    # Domains (e.g. sensors) whose task-class frames are written; TI pairs come from every domain.
    task_domains: tuple[str, ...] | None = None
    options: dict[str, Any] = field(default_factory=dict)  # the dataset-specific choices
    details: dict[str, Any] = field(default_factory=dict)  # more facts for convert.json

    @property
    def classes(self) -> list[str]:
        return sorted({s.label for s in self.samples})


@dataclass(frozen=True)
class ConvertOptions:
    """Choices shared by every converter (the dataset-specific ones are keyword arguments)."""

    task_classes: tuple[str, ...] | None = None  # None: the dataset's default
    ti_classes: tuple[str, ...] | None = None  # None: every class that is not a task class
    exclude_classes: tuple[str, ...] = ()
    test_fraction: float = 0.2  # used where the dataset has no official split
    seed: int = 0
    short_side: int | None = None  # downscale so the shorter side is this (never upscale)
    max_per_class: int | None = None  # cap per class (a quick look at a big dataset)
    force: bool = False  # rewrite a DST that holds an earlier conversion
    workers: int = 1  # writer threads (PNG encoding releases the GIL)


# --- names -------------------------------------------------------------------------------------

_PREFIX = re.compile(r"^\s*\d+\s*[._\-)]?\s*")


def class_name(text: str) -> str:
    """A folder-safe class name: '12. Livingroom' -> 'livingroom', 'A B' -> 'a_b'."""
    name = _PREFIX.sub("", text.strip()) or text.strip()
    name = re.sub(r"\s+", "_", name.lower())
    return re.sub(r"[^a-z0-9_\-]", "", name)


def safe_stem(text: str) -> str:
    """A file-name-safe stem: path separators and odd characters become '-'."""
    return re.sub(r"[^A-Za-z0-9._\-]+", "-", text).strip("-.") or "x"


def parse_class_list(text: str | None) -> tuple[str, ...] | None:
    """'a, b,c' -> ('a', 'b', 'c'); None stays None; '' is the empty list."""
    if text is None:
        return None
    return tuple(class_name(c) for c in text.split(",") if c.strip())


# --- reading source images ---------------------------------------------------------------------


def open_image(path: Path, layout: str):
    """Open an image with PIL, or raise a DataError that names the file."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise DataError(f"missing file (expected by the {layout} layout)", path)
    try:
        im = Image.open(path)
        im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"not a readable image, corrupt or truncated ({exc})", path) from None
    return im


def read_rgb8(path: Path, layout: str) -> np.ndarray:
    im = open_image(path, layout)
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        raise DataError(
            f"{im.mode} image where the {layout} layout has an 8-bit colour image", path
        )
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def read_uint16(path: Path, layout: str, what: str) -> np.ndarray:
    """A 16-bit single-channel PNG as uint16 (PIL opens these as 'I;16' or 'I')."""
    im = open_image(path, layout)
    if im.mode not in ("I;16", "I;16B", "I;16L", "I"):
        raise DataError(f"{im.mode} image where the {layout} layout has a 16-bit {what} PNG", path)
    arr = np.asarray(im)
    if arr.ndim != 2:
        raise DataError(f"{what} image has shape {arr.shape}, expected one channel", path)
    if arr.dtype != np.uint16:
        if arr.min() < 0 or arr.max() > 65535:
            raise DataError(f"{what} values outside 0..65535", path)
        arr = arr.astype(np.uint16)
    return arr


# --- resizing ----------------------------------------------------------------------------------


def _target_size(shape: tuple[int, ...], short_side: int | None) -> tuple[int, int]:
    h, w = shape[0], shape[1]
    if not short_side or min(h, w) <= short_side:
        return h, w
    scale = short_side / min(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_rgb(arr: np.ndarray, short_side: int | None) -> np.ndarray:
    h, w = _target_size(arr.shape, short_side)
    if (h, w) == arr.shape[:2]:
        return arr
    from PIL import Image

    return np.asarray(Image.fromarray(arr).resize((w, h), Image.Resampling.BOX))


def resize_nearest(arr: np.ndarray, short_side: int | None) -> np.ndarray:
    """Nearest-neighbour: depth must not blend valid readings with 0 (= missing)."""
    h, w = _target_size(arr.shape, short_side)
    if (h, w) == arr.shape[:2]:
        return arr
    rows = np.minimum(((np.arange(h) + 0.5) * arr.shape[0] / h).astype(np.int64), arr.shape[0] - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * arr.shape[1] / w).astype(np.int64), arr.shape[1] - 1)
    return arr[rows[:, None], cols[None, :]]


def resize_gray(arr: np.ndarray, short_side: int | None) -> np.ndarray:
    """Area-averaged resize of an 8- or 16-bit single-channel image, keeping its dtype."""
    h, w = _target_size(arr.shape, short_side)
    if (h, w) == arr.shape[:2]:
        return arr
    from PIL import Image

    out = Image.fromarray(arr.astype(np.float32)).resize((w, h), Image.Resampling.BOX)
    info = np.iinfo(arr.dtype)
    return np.clip(np.rint(np.asarray(out)), info.min, info.max).astype(arr.dtype)


# --- writing -----------------------------------------------------------------------------------


def save_png(path: Path, arr: np.ndarray) -> None:
    """Write an 8-bit RGB, 8-bit grey or 16-bit grey PNG atomically."""
    from PIL import Image

    if arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"cannot write dtype {arr.dtype} as PNG")
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(arr)).save(tmp, format="PNG")


def _prepare_target(arr: np.ndarray, modality: str, short_side: int | None) -> np.ndarray:
    if modality == "depth":
        return resize_nearest(arr, short_side)
    return resize_gray(arr, short_side)


# --- choosing classes and splits ---------------------------------------------------------------


def choose_classes(scan: Scan, options: ConvertOptions) -> tuple[list[str], list[str], list[str]]:
    """(task classes, TI classes, excluded classes) from the scan's defaults and the options."""
    found = scan.classes
    for what, names in (
        ("task_classes", options.task_classes),
        ("ti_classes", options.ti_classes),
        ("exclude_classes", options.exclude_classes),
    ):
        unknown = [c for c in names or () if c not in found]
        if unknown:
            raise DataError(
                f"{what}: no images of class {', '.join(map(repr, unknown))} in the "
                f"{scan.layout} found here (classes: {', '.join(found)})",
                settings=(what,),
            )
    excluded = sorted(set(options.exclude_classes))
    usable = [c for c in found if c not in excluded]
    task_opt, ti_opt = options.task_classes, options.ti_classes
    if task_opt is not None and ti_opt is not None:
        task, ti = list(task_opt), list(ti_opt)
    elif task_opt is not None:
        task = list(task_opt)
        ti = [c for c in usable if c not in task]
    elif ti_opt is not None:
        ti = list(ti_opt)
        task = [c for c in usable if c not in ti]
    else:
        task = [c for c in scan.default_task if c in usable]
        ti = [c for c in scan.default_ti if c in usable and c not in task]
    task = sorted(c for c in dict.fromkeys(task) if c not in excluded)
    ti = sorted(c for c in dict.fromkeys(ti) if c not in excluded)
    both = sorted(set(task) & set(ti))
    if both:
        raise DataError(f"classes {', '.join(both)} are both task and task-irrelevant classes")
    if not task:
        raise DataError(f"no task classes left to convert (classes found: {', '.join(found)})")
    return task, ti, excluded


def cap_per_class(samples: list[Sample], limit: int | None, seed: int) -> list[Sample]:
    """At most ``limit`` samples per class, drawn with a seed (the same seed, the same draw)."""
    if not limit:
        return samples
    by_class: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_class[s.label].append(s)
    kept: list[Sample] = []
    for label, items in sorted(by_class.items()):
        if len(items) > limit:
            rng = np.random.default_rng([seed, zlib.crc32(label.encode())])
            idx = sorted(rng.choice(len(items), size=limit, replace=False).tolist())
            items = [items[i] for i in idx]
        kept.extend(items)
    return kept


def seeded_split(samples: list[Sample], test_fraction: float, seed: int) -> dict[str, str]:
    """Stratified by class, grouped (a group is all train or all test): stem -> 'train'/'test'.

    Each class gets its own generator (seeded by the seed and the class name), so adding or
    dropping a class does not reshuffle the others.
    """
    if not 0.0 < test_fraction < 1.0:
        raise DataError(
            f"test_fraction must lie strictly between 0 and 1, got {test_fraction}",
            settings=("test_fraction",),
        )
    by_class: dict[str, dict[str, list[Sample]]] = defaultdict(lambda: defaultdict(list))
    for s in samples:
        by_class[s.label][s.group or s.stem].append(s)
    out: dict[str, str] = {}
    for label, groups in sorted(by_class.items()):
        names = sorted(groups)
        rng = np.random.default_rng([seed, zlib.crc32(label.encode())])
        order = [names[i] for i in rng.permutation(len(names))]
        total = sum(len(g) for g in groups.values())
        want = round(total * test_fraction) if total > 1 else 0
        test_groups: set[str] = set()
        taken = 0
        for name in order[:-1]:  # the last group always stays in train
            if taken >= want:
                break
            test_groups.add(name)
            taken += len(groups[name])
        for name, items in groups.items():
            for s in items:
                out[s.stem] = "test" if name in test_groups else "train"
    return out


# --- the whole conversion ----------------------------------------------------------------------


def prepare_dst(dst: Path, force: bool) -> None:
    """DST must be new or empty; with --force it may hold an earlier conversion (removed first)."""
    import shutil

    if dst.exists() and not dst.is_dir():
        raise DataError("exists and is not a folder", dst)
    if not dst.exists() or not any(dst.iterdir()):
        return
    foreign = sorted(p.name for p in dst.iterdir() if p.name not in OUTPUT_ENTRIES)
    if not force:
        raise DataError(
            "output folder is not empty (force replaces an earlier conversion)",
            dst,
            settings=("force",),
        )
    if foreign:
        raise DataError(
            f"output folder holds files a conversion does not write ({', '.join(foreign[:5])}); "
            "force only replaces an earlier conversion",
            dst,
            settings=("force",),
        )
    for name in OUTPUT_ENTRIES:
        p = dst / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def _check_unique(samples: Iterable[Sample]) -> None:
    seen: dict[str, Sample] = {}
    for s in samples:
        if s.stem in seen:
            raise DataError(
                f"two source frames map to the output stem {s.stem!r}: {seen[s.stem].origin} and "
                f"{s.origin}"
            )
        seen[s.stem] = s


@dataclass
class Selection:
    """The classes to convert and their samples (capped per class)."""

    task: list[str]
    ti: list[str]
    excluded: list[str]
    task_samples: list[Sample]  # of the task classes (and domains), in the train/test split
    ti_samples: list[Sample]  # of the TI classes, written as pairs


def select_samples(scan: Scan, options: ConvertOptions) -> Selection:
    """The task and TI classes (see ``choose_classes``) and their samples."""
    task, ti, excluded = choose_classes(scan, options)
    _check_unique(scan.samples)
    task_set, ti_set = set(task), set(ti)
    task_samples = cap_per_class(
        [
            s
            for s in scan.samples
            if s.label in task_set and (scan.task_domains is None or s.domain in scan.task_domains)
        ],
        options.max_per_class,
        options.seed,
    )
    ti_samples = cap_per_class(
        [s for s in scan.samples if s.label in ti_set], options.max_per_class, options.seed
    )
    return Selection(task, ti, excluded, task_samples, ti_samples)


@dataclass
class Split:
    """Each task sample's split, and the split's facts for convert.json."""

    assign: dict[str, str]  # stem -> 'train' | 'test'
    info: dict[str, Any]
    samples: list[Sample]  # the task samples in either split (an official split may leave some)


def split_samples(scan: Scan, samples: list[Sample], options: ConvertOptions) -> Split:
    """The dataset's official split where it has one, else a seeded, stratified one."""
    info = dict(scan.split)
    if info.get("kind") == "official":
        assign = {s.stem: s.split for s in samples if s.split in SPLITS}
        unlisted = sum(1 for s in samples if s.split not in SPLITS)
        if unlisted:
            warn(f"task-class frames in neither the train nor the test list: {unlisted} (left out)")
        info["unlisted"] = unlisted
        return Split(assign, info, [s for s in samples if s.stem in assign])
    assign = seeded_split(samples, options.test_fraction, options.seed)
    info.update(kind="seeded", test_fraction=options.test_fraction, seed=options.seed)
    return Split(assign, info, samples)


def count_split(task: list[str], split: Split) -> dict[str, dict[str, int]]:
    """{split: {class: frames}}; warns of task classes missing from train or test."""
    counts: dict[str, dict[str, int]] = {sp: {c: 0 for c in task} for sp in SPLITS}
    for s in split.samples:
        counts[split.assign[s.stem]][s.label] += 1
    for c in task:
        if counts["train"][c] == 0 or counts["test"][c] == 0:
            warn(
                f"task class {c!r} has {counts['train'][c]} train and {counts['test'][c]} test "
                "frames"
            )
    return counts


@dataclass(frozen=True)
class Job:
    """One frame to write: its RGB and its target-modality image."""

    sample: Sample
    rgb_path: Path
    target_path: Path


def plan_jobs(dst: Path, modality: str, split: Split, ti_samples: list[Sample]) -> list[Job]:
    """Task frames into source_rgb/ and target/ by split and class; TI frames into paired/."""
    jobs = []
    for s in split.samples:
        sp = split.assign[s.stem]
        name = f"{s.stem}.png"
        jobs.append(
            Job(s, dst / "source_rgb" / sp / s.label / name, dst / "target" / sp / s.label / name)
        )
    for s in ti_samples:
        name = f"{s.stem}.png"
        jobs.append(Job(s, dst / "paired" / "rgb" / name, dst / "paired" / modality / name))
    return jobs


def write_job(job: Job, modality: str, short_side: int | None) -> tuple[int, int]:
    """Read, resize and write one frame; (zero pixels, pixels) of its target image."""
    rgb = resize_rgb(job.sample.load_rgb(), short_side)
    tgt = _prepare_target(job.sample.load_target(), modality, short_side)
    save_png(job.rgb_path, rgb)
    save_png(job.target_path, tgt)
    return int(np.count_nonzero(tgt == 0)), int(tgt.size)


def write_jobs(
    jobs: list[Job], modality: str, options: ConvertOptions, label: str, show_progress: bool
) -> float:
    """Write every job (in ``options.workers`` threads); the share of zero target pixels."""
    run = partial(write_job, modality=modality, short_side=options.short_side)
    zeros = pixels = 0
    with bar(label, total=len(jobs), show=show_progress) as progress:
        if options.workers > 1:
            with ThreadPoolExecutor(options.workers) as pool:
                results = pool.map(run, jobs)
                for z, n in results:
                    zeros, pixels = zeros + z, pixels + n
                    progress.advance()
        else:
            for job in jobs:
                z, n = run(job)
                zeros, pixels = zeros + z, pixels + n
                progress.advance()
    return round(zeros / pixels, 4) if pixels else 0.0


def _summary(
    scan: Scan,
    options: ConvertOptions,
    chosen: Selection,
    split: Split,
    counts: dict[str, dict[str, int]],
    zero_fraction: float,
) -> dict[str, Any]:
    """convert.json: what was converted, from where, and how."""
    modality, named = scan.modality, set(chosen.task) | set(chosen.ti) | set(chosen.excluded)
    return {
        "format": "socket-edge-convert",
        "version": 1,
        "tool": f"socket-edge {__version__}",
        "dataset": scan.dataset,
        "source": str(scan.root),
        "layout": scan.layout,
        "modality": modality,
        "target_units": "millimetres, 16-bit PNG, 0 = no reading"
        if modality == "depth"
        else "single-channel PNG, the source's bit depth",
        "task_classes": chosen.task,
        "ti_classes": chosen.ti,
        "excluded_classes": chosen.excluded,
        "other_classes": [c for c in scan.classes if c not in named],
        "task_rule": scan.task_rule
        if options.task_classes is None and options.ti_classes is None
        else "chosen with --task-classes / --ti-classes",
        "split": split.info,
        "counts": {
            "source_rgb": counts,
            "target": counts,
            "paired": dict(sorted(Counter(s.label for s in chosen.ti_samples).items())),
            "task_frames": len(split.samples),
            "paired_frames": len(chosen.ti_samples),
        },
        "target_zero_fraction": zero_fraction,
        "options": {
            "short_side": options.short_side,
            "max_per_class": options.max_per_class,
            **scan.options,
        },
        **scan.details,
    }


def write_converted(
    scan: Scan,
    dst: str | Path,
    options: ConvertOptions,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Write the scan into DST (socket-edge's layout, README "Data layout"); returns the summary, also DST/convert.json."""
    dst = Path(dst)
    if options.short_side is not None and options.short_side < 8:
        raise DataError(
            f"short_side must be at least 8 pixels, got {options.short_side}",
            settings=("short_side",),
        )
    chosen = select_samples(scan, options)
    split = split_samples(scan, chosen.task_samples, options)
    counts = count_split(chosen.task, split)
    if not chosen.ti:
        warn(
            "no task-irrelevant classes: DST/paired/ is not written, so SOCKET's TI alignment "
            "has no pairs (choose some with --ti-classes, or adapt with --method shot)"
        )
    prepare_dst(dst, options.force)
    jobs = plan_jobs(dst, scan.modality, split, chosen.ti_samples)
    label = f"convert {scan.dataset}"
    zero_fraction = write_jobs(jobs, scan.modality, options, label, show_progress)
    summary = _summary(scan, options, chosen, split, counts, zero_fraction)
    write_json(dst / "convert.json", summary)
    return summary


# --- split files (official train/test lists) ---------------------------------------------------


def read_split_file(path: str | Path, mat_keys: tuple[str, str], what: str) -> dict[str, str]:
    """Official split -> {id: 'train'|'test'}.

    ``path`` is a MATLAB file with the two variables ``mat_keys`` (train, test), read with h5py
    (v7.3) or scipy (older versions), or a text file of lines ``train ID`` / ``test ID``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such split file (expected {what})", path)
    if path.suffix.lower() == ".mat":
        lists = read_mat_lists(path, mat_keys, what)
        out = {str(i): "train" for i in lists[0]}
        out.update({str(i): "test" for i in lists[1]})
        return out
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        kind, _, ident = line.partition(" ")
        if kind not in SPLITS or not ident.strip():
            raise DataError(f"line {n}: expected 'train ID' or 'test ID', got {line!r}", path)
        out[ident.strip()] = kind
    if not out:
        raise DataError("split file lists no frames", path)
    return out


def require_h5py():
    """h5py (an optional dependency: the 'convert' extra), or a DataError saying how to get it."""
    try:
        import h5py
    except ImportError:
        raise DataError(
            "reading MATLAB v7.3 (.mat) files needs h5py: pip install 'socket-edge[convert]' "
            "(or pip install h5py)"
        ) from None
    return h5py


def read_mat_lists(path: Path, keys: tuple[str, ...], what: str) -> list[list]:
    """The named variables of a MATLAB file as flat lists of str / int."""
    h5py = require_h5py()
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            missing = [k for k in keys if k not in f]
            if missing:
                raise DataError(
                    f"not {what}: no variable {', '.join(missing)} "
                    f"(has {', '.join(sorted(f.keys()))})",
                    path,
                )
            return [_h5_values(f, f[k]) for k in keys]
    try:
        import scipy.io
    except ImportError:
        raise DataError(
            "this MATLAB file predates v7.3 and needs scipy to read (pip install scipy); "
            "or give the split as text lines 'train ID' / 'test ID'",
            path,
        ) from None
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several types for bad files
        raise DataError(f"not a readable MATLAB file ({exc})", path) from None
    missing = [k for k in keys if k not in mat]
    if missing:
        raise DataError(f"not {what}: no variable {', '.join(missing)}", path)
    return [_flatten(mat[k]) for k in keys]


def _flatten(obj: Any) -> list:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "US":
            return [str(x) for x in obj.ravel()]
        if obj.dtype.kind in "iuf":
            return [int(x) for x in obj.ravel()]
        return [v for x in obj.ravel() for v in _flatten(x)]
    return [obj]


def _h5_values(f, ds) -> list:
    """A MATLAB v7.3 numeric array or cell array of strings as a flat list."""
    h5py = require_h5py()
    data = ds[()]
    if ds.dtype == h5py.ref_dtype or data.dtype == object:
        return [h5_string(f[ref]) for ref in np.asarray(data).ravel()]
    if ds.attrs.get("MATLAB_class", b"") in (b"char", "char"):
        return [h5_string(ds)]
    return [int(x) for x in np.asarray(data).ravel()]


def h5_string(ds) -> str:
    """A MATLAB char array stored in HDF5 (uint16 codes) as a str."""
    codes = np.asarray(ds[()]).ravel()
    return "".join(chr(int(c)) for c in codes if int(c) != 0)
