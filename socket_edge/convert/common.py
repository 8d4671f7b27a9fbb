"""What every converter shares: the records (Sample, Scan, ConvertOptions) and class names.

A converter scans its source layout into a :class:`Scan` (a list of :class:`Sample` plus the
dataset's default task / task-irrelevant classes); :func:`socket_edge.convert.write.write_converted`
then writes socket-edge's layout, every file atomically, and ``DST/convert.json`` last, so that
its presence marks a complete conversion::

    DST/source_rgb/{train,test}/<class>/<stem>.png   8-bit RGB of the task classes
    DST/target/{train,test}/<class>/<stem>.png       the same frames in the target modality
    DST/paired/rgb/<stem>.png + DST/paired/<modality>/<stem>.png   task-irrelevant pairs
    DST/convert.json                                 what was converted, from where, and how

The rest, one job per module: ``images`` (reading source images, resizing, PNG writing),
``select`` (task / TI classes, caps, the split), ``write`` (the whole conversion), ``splitfiles``
(official train/test lists, .mat and HDF5).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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
