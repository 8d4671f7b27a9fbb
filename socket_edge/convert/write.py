"""The whole conversion: the destination checked, the jobs planned and written (threads), and
``DST/convert.json`` last."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..console import bar, warn
from ..errors import DataError
from ..files import write_json
from .common import OUTPUT_ENTRIES, ConvertOptions, Sample, Scan
from .images import prepare_target, resize_rgb, save_png
from .select import Selection, Split, count_split, select_samples, split_samples

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
    tgt = prepare_target(job.sample.load_target(), modality, short_side)
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
