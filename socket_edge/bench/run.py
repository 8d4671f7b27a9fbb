"""`bench()`: latency, accuracy, agreement, memory and energy of artifacts, side by side.

Every artifact (checkpoint, ONNX, INT8 ONNX, engine) goes through its runner (``artifact_run``:
one artifact's rows). One that cannot be found, loaded or fed gets an error row; the others still
run. This module checks the request, opens the data and the power sampler once, runs every
artifact, measures agreement with the first, and writes the report.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .. import console
from ..data.datasets import LabelledFolder, UnlabelledFolder, find_images, require_dir
from ..errors import SocketEdgeError
from .artifact_run import bench_artifact
from .config import CLOCK, BenchConfig
from .machine import machine_info
from .power import open_sampler

FORMAT = "socket-edge-bench"
FORMAT_VERSION = 1
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
# Every row carries every key (None where not measured), failed rows included.
ROW_DEFAULTS: dict[str, Any] = dict.fromkeys(
    (
        "latency_ms",
        "latency_per_image_ms",
        "throughput_ips",
        "cv",
        "iterations",
        "timed_s",
        "top1",
        "per_class",
        "n_images",
        "labelled",
        "eval_batch",
        "agreement",
        "peak_rss_mb",
        "gpu_memory",
        "power",
        "energy_mj_per_image",
        "images_per_joule",
        "warnings",
        "error",
        "trtexec",
    )
)


class _DataCache:
    """The data set once per (modality, image size, classes): labelled class folders, or a flat
    folder of unlabelled images (then only agreement, no top-1)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._sets: dict[tuple, tuple[Any, bool, list[str]]] = {}

    def get(self, info) -> tuple[Any, bool, list[str]]:
        key = (info.modality, int(info.image_size), tuple(info.classes), info.frame_size)
        if key not in self._sets:
            self._sets[key] = self._open(info)
        return self._sets[key]

    def _open(self, info) -> tuple[Any, bool, list[str]]:
        root = require_dir(self.root, "data folder")
        labelled = any(
            d.is_dir() and not d.name.startswith(".") and find_images(d) for d in root.iterdir()
        )
        ds: LabelledFolder | UnlabelledFolder
        if labelled:
            ds = LabelledFolder(
                root,
                info.modality,
                info.image_size,
                classes=info.classes,
                frame_size=info.frame_size,
            )
            ids = [str(p) for p, _ in ds.samples]
        else:
            ds = UnlabelledFolder(root, info.modality, info.image_size, frame_size=info.frame_size)
            ids = [str(p) for p in ds.files]
        ds[0]  # read one image now: a wrong modality fails here, once, not in every batch
        return ds, labelled, ids


def _check_request(artifacts: Sequence[str | Path], data: str | Path, cfg: BenchConfig) -> None:
    if not artifacts:
        raise SocketEdgeError("bench needs at least one artifact (.pt, .onnx or .engine)")
    if not cfg.batches or any(int(b) <= 0 for b in cfg.batches):
        raise SocketEdgeError(f"batch sizes must be positive integers, got {cfg.batches}")
    require_dir(data, "data folder")  # no row could run without it: one error for all


def _open_sampler(cfg: BenchConfig, paths: list[Path]):
    """The automatic power sampler (tegrastats on a Jetson, NVML on a GPU), or None."""
    want_gpu = bool(cfg.device and not cfg.device.startswith("cpu")) or any(
        p.suffix.lower() in ENGINE_SUFFIXES for p in paths
    )
    return open_sampler(cfg.power_interval_ms, want_gpu)


def _bench_all(
    paths: list[Path], cache: _DataCache, cfg: BenchConfig, sampler, warnings: list[str]
) -> tuple[list[dict[str, Any]], str | None]:
    """Every artifact's rows, with agreement against the first one that gave predictions
    (whose name comes second)."""
    rows: list[dict[str, Any]] = []
    reference: dict[str, Any] | None = None
    reference_name = None
    for path in paths:
        art_rows, preds = bench_artifact(path, cache, cfg, sampler, warnings)
        if preds is not None and reference is None:
            reference, reference_name = preds, path.name
            if path != paths[0]:
                warnings.append(
                    f"the first artifact {paths[0].name} gave no predictions; "
                    f"agreement is measured against {path.name}"
                )
        for r in art_rows:
            r["agreement"] = _agreement(preds, reference) if r.get("error") is None else None
            if r.get("error"):
                console.info(f"error: {r['error']}")
        rows.extend(
            {**r, **{k: v for k, v in ROW_DEFAULTS.items() if k not in r}} for r in art_rows
        )
    return rows, reference_name


def _report_settings(cfg: BenchConfig, data, reference_name: str | None, sampler) -> dict:
    settings = {k: v for k, v in asdict(cfg).items() if k != "show_progress"}
    settings.update(
        data=str(data),
        timing=cfg.plan.describe(),
        clock=CLOCK,
        percentiles="numpy linear interpolation over all timed iterations",
        reference=reference_name,
        power_source=getattr(sampler, "source", None),
        power_note=_power_note(sampler),
    )
    return settings


def bench(
    artifacts: Sequence[str | Path],
    data: str | Path,
    config: BenchConfig | None = None,
    sampler=None,
) -> dict[str, Any]:
    """Benchmark ``artifacts`` on ``data``; the report as a JSON-ready dict (schema: README).

    ``sampler`` replaces the automatic power sampler (tegrastats on a Jetson, NVML on a GPU).
    """
    cfg = config or BenchConfig()
    _check_request(artifacts, data, cfg)
    paths = [Path(a) for a in artifacts]
    machine = machine_info()
    own_sampler = sampler is None and cfg.power
    if own_sampler:
        sampler = _open_sampler(cfg, paths)
    warnings: list[str] = _machine_warnings(machine)
    try:
        rows, reference_name = _bench_all(paths, _DataCache(Path(data)), cfg, sampler, warnings)
    finally:
        if own_sampler and sampler is not None:
            sampler.stop()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "settings": _report_settings(cfg, data, reference_name, sampler),
        "rows": rows,
        "warnings": warnings,
        "errors": sum(1 for r in rows if r.get("error")),
    }


def _machine_warnings(machine: dict[str, Any]) -> list[str]:
    out = []
    load, cores = machine.get("load_avg_1m"), machine.get("cores_usable") or machine.get("cores")
    if load is not None and cores and load > 0.5 * cores:
        out.append(
            f"the machine is busy (load average {load:g} on {cores} cores): "
            "latency will vary; close other work for stable figures"
        )
    return out


def _agreement(preds: dict | None, reference: dict | None) -> float | None:
    if preds is None or reference is None or preds["ids"] != reference["ids"]:
        return None
    a, b = preds["names"], reference["names"]
    return float(np.mean([x == y for x, y in zip(a, b, strict=True)])) if a else None


def _power_note(sampler) -> str | None:
    if sampler is None:
        return None
    if sampler.source == "tegrastats":
        return "board input power (tegrastats, idle included) x mean latency per image; every row"
    return "GPU board power from NVML (CPU and host excluded) x mean latency per image; GPU rows"
