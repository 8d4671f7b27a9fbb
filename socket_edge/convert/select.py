"""Which frames a conversion writes: the task and TI classes, per-class caps, and the
train/test split (official lists, else seeded by group)."""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..console import warn
from ..errors import DataError
from .common import SPLITS, ConvertOptions, Sample, Scan

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
