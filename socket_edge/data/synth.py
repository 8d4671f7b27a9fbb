"""``socket-edge synth``: write the built-in paired RGB / depth / IR benchmark to disk.

Layout (README "Data layout"; docs/architecture.md)::

    DIR/source_rgb/{train,val}/<class>/<stem>.png
    DIR/<M>/target/{train,test}/<class>/<stem>.png     for M in depth, ir
    DIR/<M>/paired/{rgb,<M>}/<stem>.png                task-irrelevant (TI) classes only
    DIR/synth.json                                     what was generated, and how

Every image is a function of (seed, split, class, index) alone, so the output is the same
whatever the number of worker processes.

With ``shift`` (names from shifts.py) it renders what a robot meets after deployment: only the
target splits ``DIR/<M>/target/{train,test}``, the same scenes (same seeds) as without the
shift, seen through the shifted sensor, mount or room (``prior``: more images of one class).

With ``stream_seconds`` it renders an ordered stream instead (data/stream.py), as a robot
produces it: runs of one class, each ``dwell`` seconds long (uniform between the two), at
``rate`` Hz. Only the target test scenes are rendered (same seeds as ``target/test``, so the
clean stream's scenes are the test split's; with ``shift`` the same scenes through the shifted
sensor; ``prior`` makes one class half of the time instead of half of the scenes)::

    DIR/<M>/stream/scenes/<class>/<stem>.png    the scenes, once each
    DIR/<M>/stream/ordered/<frame:06d>.png      the stream in time order (links to the scenes)
    DIR/<M>/stream/shuffled/<frame:06d>.png     the same frames in random order
    DIR/<M>/stream/stream.json                  rate, dwell, runs, and every frame's class and scene
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..console import bar
from ..errors import SocketEdgeError
from ..files import atomic_path
from .render import render
from .shapes import TASK_SHAPES, TI_SHAPE_SETS
from .shifts import Shift, class_counts, make_shift

SPLITS = {"source_train": 0, "source_val": 1, "target_train": 2, "target_test": 3, "paired": 4}
SPLITS["stream"] = SPLITS["target_test"]  # a stream's scenes are the test split's


@dataclass(frozen=True)
class SynthConfig:
    size: int = 64
    per_class: int = 600  # RGB source training images per task class
    seed: int = 0
    modalities: tuple[str, ...] = ("depth", "ir")
    shift: tuple[str, ...] = ()  # deployment shifts (shifts.SHIFTS); only target splits then
    prior_class: str | None = None  # the frequent class of the 'prior' shift (default: first)
    ti_shapes: str = "default"  # or "unlike": thin, flat TI objects (shapes.TI_UNLIKE_SHAPES)
    stream_seconds: float = 0.0  # > 0: render an ordered stream this long instead (see above)
    dwell: tuple[float, float] = (1.0, 20.0)  # seconds per run of one class, uniform
    rate: float = 30.0  # frames per second of the stream

    def ti_set(self) -> dict:
        if self.ti_shapes not in TI_SHAPE_SETS:
            raise SocketEdgeError(
                f"unknown TI shape set {self.ti_shapes!r} (choose from {', '.join(TI_SHAPE_SETS)})"
            )
        return TI_SHAPE_SETS[self.ti_shapes]

    def make_shift(self) -> Shift:
        return make_shift(tuple(self.shift), self.prior_class)

    def counts(self) -> dict[str, int]:
        """Images per class of each split: targets get half the source's, tests a quarter."""
        n = self.per_class
        return {
            "source_train": n,
            "source_val": max(n // 4, 2),
            "target_train": max(n // 2, 2),
            "target_test": max(n // 4, 2),
            "paired": max(n // 4, 2),  # per TI class
        }


def _save_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def _jobs(cfg: SynthConfig) -> list[tuple[str, int, str, int]]:
    """(split, class index, class name, image index) for every scene to render."""
    counts = cfg.counts()
    jobs = []
    if cfg.stream_seconds > 0:  # the test scenes, as the stream's pool (prior: by time share)
        for ci, name in enumerate(TASK_SHAPES):
            jobs += [("stream", ci, name, i) for i in range(counts["target_test"])]
        return jobs
    if cfg.shift:  # after deployment: only what the robot sees
        shift = cfg.make_shift()
        for split in ("target_train", "target_test"):
            per = class_counts(shift, list(TASK_SHAPES), counts[split])
            for ci, name in enumerate(TASK_SHAPES):
                jobs += [(split, ci, name, i) for i in range(per[name])]
        return jobs
    for split in ("source_train", "source_val", "target_train", "target_test"):
        for ci, name in enumerate(TASK_SHAPES):
            jobs += [(split, ci, name, i) for i in range(counts[split])]
    for ci, name in enumerate(cfg.ti_set()):
        jobs += [("paired", ci, name, i) for i in range(counts["paired"])]
    return jobs


def _render_chunk(args: tuple[Path, SynthConfig, list[tuple[str, int, str, int]]]) -> int:
    root, cfg, jobs = args
    shift = cfg.make_shift() if cfg.shift else None
    for split, ci, name, i in jobs:
        stem = f"{name}_{i:05d}"
        seed = (cfg.seed, SPLITS[split], ci, i)
        if split.startswith("source"):
            img = render(TASK_SHAPES[name], seed, cfg.size, ("rgb",))
            part = split.split("_")[1]
            _save_png(root / "source_rgb" / part / name / f"{stem}.png", img["rgb"])
        elif split == "stream":
            img = render(TASK_SHAPES[name], seed, cfg.size, cfg.modalities, shift)
            for m in cfg.modalities:
                _save_png(root / m / "stream" / "scenes" / name / f"{stem}.png", img[m])
        elif split.startswith("target"):
            img = render(TASK_SHAPES[name], seed, cfg.size, cfg.modalities, shift)
            part = split.split("_")[1]
            for m in cfg.modalities:
                _save_png(root / m / "target" / part / name / f"{stem}.png", img[m])
        else:
            img = render(cfg.ti_set()[name], seed, cfg.size, ("rgb", *cfg.modalities))
            for m in cfg.modalities:
                _save_png(root / m / "paired" / "rgb" / f"{stem}.png", img["rgb"])
                _save_png(root / m / "paired" / m / f"{stem}.png", img[m])
    return len(jobs)


def synth(
    out_dir: str | Path,
    config: SynthConfig | None = None,
    workers: int | None = None,
    show_progress: bool = True,
) -> dict:
    """Render the benchmark into ``out_dir``; returns the manifest written to synth.json."""
    cfg = config or SynthConfig()
    _check_config(cfg)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    _render_all(root, cfg, workers, show_progress)
    streams = _write_streams(root, cfg) if cfg.stream_seconds > 0 else None
    manifest = _manifest(cfg, streams)
    with atomic_path(root / "synth.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _check_config(cfg: SynthConfig) -> None:
    """Modalities, TI set, stream and shift names: a bad one fails before any rendering."""
    bad = [m for m in cfg.modalities if m not in ("depth", "ir")]
    if bad or not cfg.modalities:
        raise SocketEdgeError(f"synth modalities are depth and/or ir, got {list(cfg.modalities)}")
    cfg.ti_set()
    if cfg.stream_seconds > 0:
        _stream_runs(cfg)
    if cfg.shift:
        cfg.make_shift()


def _render_all(root: Path, cfg: SynthConfig, workers: int | None, show_progress: bool) -> None:
    """Every image of the benchmark, in chunks of 32 over ``workers`` processes."""
    jobs = _jobs(cfg)
    workers = max(1, workers or min(os.cpu_count() or 1, 8))
    chunk = 32
    chunks = [(root, cfg, jobs[i : i + chunk]) for i in range(0, len(jobs), chunk)]
    with bar("synth", len(jobs), show_progress) as progress:
        if workers == 1:
            for c in chunks:
                progress.advance(_render_chunk(c))
        else:
            with ProcessPoolExecutor(workers) as pool:
                for done in pool.map(_render_chunk, chunks):
                    progress.advance(done)


def _config_doc(cfg: SynthConfig) -> dict[str, Any]:
    """The manifest's config: the settings in use (an unshifted, stream-less run's as before)."""
    config_doc = {**asdict(cfg), "modalities": list(cfg.modalities)}
    if not cfg.shift:  # the unshifted manifest stays as it was
        del config_doc["shift"], config_doc["prior_class"]
    if cfg.stream_seconds <= 0:
        del config_doc["stream_seconds"], config_doc["dwell"], config_doc["rate"]
    else:
        config_doc["dwell"] = list(cfg.dwell)
    if cfg.ti_shapes == "default":
        del config_doc["ti_shapes"]
    return config_doc


def _manifest(cfg: SynthConfig, streams) -> dict[str, Any]:
    """synth.json: the generator, settings, counts, classes, units, stream and shift."""
    manifest = {
        "generator": f"socket-edge {__version__} synth",
        "config": _config_doc(cfg),
        "counts": cfg.counts(),
        "task_classes": list(TASK_SHAPES),
        "ti_classes": list(cfg.ti_set()),
        "depth": {"units": "mm", "missing": 0, "bit_depth": 16},
        "ir": {"units": "raw counts (14-bit in 16-bit PNG), ~100 counts/K", "bit_depth": 16},
    }
    if streams is not None:
        manifest["stream"] = streams
    if cfg.shift:
        shift = cfg.make_shift()
        manifest["shift"] = {
            "names": list(cfg.shift),
            "settings": asdict(shift),
            "target_counts": {
                split: class_counts(shift, list(TASK_SHAPES), cfg.counts()[split])
                for split in ("target_train", "target_test")
            },
            "note": "only the target splits are rendered; same scenes (seeds) as unshifted",
        }
        if streams is not None:
            del manifest["shift"]["target_counts"]
            manifest["shift"]["note"] = "only the stream's scenes (the target test seeds)"
    return manifest


def _stream_runs(cfg: SynthConfig) -> list[tuple[int, int]]:
    """The stream's runs (class index, frames); ``prior`` weighs one class to half the time."""
    from .stream import dwell_runs

    classes = list(TASK_SHAPES)
    weights = None
    shift = cfg.make_shift() if cfg.shift else None
    if shift is not None and shift.prior_share > 0:
        per = class_counts(shift, classes, 1000)
        weights = [per[c] for c in classes]
    return dwell_runs(len(classes), cfg.stream_seconds, cfg.rate, cfg.dwell, cfg.seed, weights)


def _write_streams(root: Path, cfg: SynthConfig) -> dict:
    """The ordered and shuffled frame folders and stream.json of every modality (links to the
    rendered scenes; copies where the file system has no hard links)."""
    from .stream import run_labels, stream_frames

    classes = list(TASK_SHAPES)
    n = cfg.counts()["target_test"]
    runs = _stream_runs(cfg)
    scenes = stream_frames(
        [[ci * n + i for i in range(n)] for ci in range(len(classes))], runs, cfg.seed
    )
    labels = run_labels(runs)
    shuffle = np.random.default_rng([cfg.seed, 13]).permutation(len(scenes))
    stems = [f"{classes[s // n]}/{classes[s // n]}_{s % n:05d}" for s in scenes]
    for m in cfg.modalities:
        base = root / m / "stream"
        for folder, order in (("ordered", np.arange(len(scenes))), ("shuffled", shuffle)):
            for frame, j in enumerate(order):
                _link(base / "scenes" / f"{stems[j]}.png", base / folder / f"{frame:06d}.png")
        doc = {
            "rate": cfg.rate,
            "dwell": list(cfg.dwell),
            "seconds": len(scenes) / cfg.rate,
            "classes": classes,
            "runs": [{"class": classes[c], "frames": f} for c, f in runs],
            "ordered": [
                {"class": classes[labels[i]], "scene": stems[i]} for i in range(len(scenes))
            ],
            "shuffled": [int(j) for j in shuffle],
            "note": "shuffled/<k>.png is ordered/<shuffled[k]>.png",
        }
        with atomic_path(base / "stream.json") as tmp:
            tmp.write_text(json.dumps(doc) + "\n")
    return {"frames": len(scenes), "runs": len(runs), "rate": cfg.rate, "dwell": list(cfg.dwell)}


def _link(src: Path, dst: Path) -> None:
    import shutil

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
