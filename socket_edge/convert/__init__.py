"""Converters from public RGB-D / RGB-NIR dataset layouts into socket-edge's layout (README "Data layout"; docs/architecture.md).

    from socket_edge.convert import ConvertOptions, convert
    summary = convert("sunrgbd", "SUNRGBD", "data/sun", ConvertOptions(seed=0), sensors=("kv2",))

Each module reads one source layout into samples (``scan``); :mod:`.common` chooses the task and
task-irrelevant classes, splits train/test and writes the files and ``convert.json``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ..errors import DataError
from .common import ConvertOptions, Sample, Scan, parse_class_list
from .write import write_converted

DATASETS = ("sunrgbd", "nyuv2", "diml", "rgbnir")

__all__ = ["DATASETS", "ConvertOptions", "Sample", "Scan", "convert", "parse_class_list", "scan"]


def scan(dataset: str, src: str | Path, **dataset_options: Any) -> Scan:
    """Read (and check) the source layout of ``dataset`` without writing anything."""
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r} (expected {', '.join(DATASETS)})")
    module = importlib.import_module(f"{__name__}.{dataset}")
    result: Scan = module.scan(src, **dataset_options)
    return result


def convert(
    dataset: str,
    src: str | Path,
    dst: str | Path,
    options: ConvertOptions | None = None,
    show_progress: bool = True,
    **dataset_options: Any,
) -> dict[str, Any]:
    """Convert ``src`` (in ``dataset``'s layout) into ``dst``; returns the convert.json summary."""
    source = scan(dataset, src, **dataset_options)
    return write_converted(source, dst, options or ConvertOptions(), show_progress=show_progress)
