"""One artifact on the bench: its runner loaded with the options it takes, a row per batch size
(latency, memory, power, trtexec) and one accuracy run over the data at the largest batch."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import console, runtime
from ..errors import SocketEdgeError
from ..evaluate import runner_logits, score
from .config import CLOCK, BenchConfig, error_text
from .latency import latency_stats, timed_runs, warm_up
from .memory import gpu_memory_mb, peak_rss_mb, reset_gpu_peak, reset_peak_rss
from .trtexec import run_trtexec


def _load_runner(path: Path, cfg: BenchConfig) -> tuple[Any, dict[str, Any], list[str]]:
    """The runner with the options it declares (Runner.options); the asked options it does not
    take are returned by name."""
    wanted: dict[str, Any] = {}
    if cfg.device:
        wanted["device"] = cfg.device
    if cfg.threads:
        wanted["threads"] = cfg.threads
    if cfg.cuda_graph:
        wanted["cuda_graph"] = True
    if not cfg.include_copies:
        wanted["include_copies"] = False
    declared = getattr(runtime.runner_class(path), "options", frozenset())
    options = {k: v for k, v in wanted.items() if k in declared}
    unsupported = [k for k in wanted if k not in declared]
    return runtime.load_runner(path, verify=cfg.verify, **options), options, unsupported


def _on_gpu(runner) -> bool:
    desc = runner.describe()
    if runner.backend == "tensorrt":
        return True
    providers = desc.get("providers") or []
    if providers and providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        return True
    return str(desc.get("device", "cpu")).startswith("cuda")


def _timing_note(runner, options: dict[str, Any], unsupported: list[str], cfg: BenchConfig) -> dict:
    gpu = _on_gpu(runner)
    note: dict[str, Any] = {
        "clock": CLOCK,
        "gpu": gpu,
        "gpu_sync": "runner synchronises before returning" if gpu else None,
    }
    if not gpu:
        note["copies"] = "n/a (CPU)"
        note["cuda_graph"] = False
        return note
    if "include_copies" in options:
        keep = getattr(runner, "include_copies", options["include_copies"])
        note["copies"] = "included" if keep else "excluded"
    else:
        note["copies"] = "included"
        if not cfg.include_copies:
            note["copies"] += " (this runner cannot exclude them)"
    if "cuda_graph" in options:
        note["cuda_graph"] = bool(getattr(runner, "cuda_graph", options["cuda_graph"]))
    else:
        asked = "cuda_graph" in unsupported or cfg.cuda_graph
        note["cuda_graph"] = "unsupported" if asked else False
    return note


def _images(dataset, indices) -> np.ndarray:
    return np.stack([np.asarray(dataset[i][0], dtype=np.float32) for i in indices])


def _input_batch(dataset, batch: int) -> np.ndarray:
    """The first ``batch`` images of the data (cycled when there are fewer)."""
    return _images(dataset, [i % len(dataset) for i in range(batch)])


def _power_fields(sampler, t0: float, t1: float, gpu: bool, stats: dict) -> dict[str, Any]:
    if sampler is None or not (sampler.whole_board or gpu):
        return {"power": None, "energy_mj_per_image": None, "images_per_joule": None}
    power = sampler.summary(t0, t1)
    if not power:
        return {"power": None, "energy_mj_per_image": None, "images_per_joule": None}
    # mW x ms = uJ; / 1000 -> mJ per image.
    energy = power["mean_mw"] * stats["latency_per_image_ms"] / 1000.0
    return {
        "power": power,
        "energy_mj_per_image": energy,
        "images_per_joule": 1000.0 / energy if energy > 0 else None,
    }


def _say(cfg: BenchConfig, message: str) -> None:
    if cfg.show_progress and console.enabled():
        console.info(message)


def _base_row(path: Path) -> dict[str, Any]:
    return {
        "artifact": str(path),
        "name": path.name,
        "backend": None,
        "precision": None,
        "device": None,
        "batch": None,
    }


def _activate(path: Path, cfg: BenchConfig, base: dict[str, Any]):
    """Load and activate the artifact's runner (filling in ``base``); (runner, options, unsupported)."""
    if not path.exists():
        raise SocketEdgeError("no such file", path)
    runner, options, unsupported = _load_runner(path, cfg)
    info = runner.info
    base.update(
        backend=runner.backend,
        precision=info.precision,
        kind=info.kind,
        modality=info.modality,
        image_size=info.image_size,
        classes=len(info.classes),
    )
    runner.activate()
    return runner, options, unsupported


@dataclass
class _Session:
    """One activated artifact: what its batch runs and its accuracy run share."""

    path: Path
    runner: Any
    cfg: BenchConfig
    sampler: Any
    warnings: list[str]  # the report's, appended to
    base: dict[str, Any]  # the fields of every row of this artifact

    def describe(self, options: dict[str, Any], unsupported: list[str]) -> None:
        desc = self.runner.describe()
        self.base.update(
            device=str(desc.get("device", "cpu")),
            providers=desc.get("providers"),
            threads=self.cfg.threads,
            options_unsupported=unsupported or None,
            timing=_timing_note(self.runner, options, unsupported, self.cfg),
        )

    def batch_row(self, dataset, batch: int) -> dict[str, Any]:
        """Latency, memory and power at one batch size; the row carries its error if it failed."""
        cfg, runner, name = self.cfg, self.runner, self.path.name
        _say(cfg, f"bench {name} batch {batch}: {cfg.plan.describe()}")
        row = {**self.base, "batch": batch}
        gpu = self.base["timing"]["gpu"]
        try:
            x = _input_batch(dataset, batch)
            warm_up(runner, x, cfg.warmup_s)
            reset_peak_rss()
            reset_gpu_peak()
            t0 = time.perf_counter()  # power and memory cover the timed runs only
            times = timed_runs(runner, x, cfg.plan)
            t1 = time.perf_counter()
            stats = latency_stats(times, batch)
            row.update(stats)
            row["peak_rss_mb"] = peak_rss_mb()
            row["gpu_memory"] = gpu_memory_mb(runner.backend) if gpu else None
            row.update(_power_fields(self.sampler, t0, t1, gpu, stats))
            if cfg.trtexec and runner.backend == "tensorrt":
                row["trtexec"] = _trtexec(self.path, runner.info, batch, cfg)
            row["warnings"] = _row_warnings(row, cfg)
            self.warnings.extend(f"{name} batch {batch}: {w}" for w in row["warnings"])
            row["error"] = None
        except Exception as exc:
            row["error"] = error_text(exc, self.path)
        return row

    def accuracy(self, dataset, labelled: bool, ids, rows: list[dict[str, Any]]):
        """Score the whole data set at the largest batch that ran (into ``rows``); the
        predictions {names, ids} for agreement, or None."""
        done = [r["batch"] for r in rows if r["error"] is None]
        if not (self.cfg.accuracy and done):
            return None
        eval_batch, name, classes = max(done), self.path.name, self.runner.info.classes
        _say(self.cfg, f"accuracy {name} on {len(dataset)} images (batch {eval_batch})")
        try:
            logits, _ = runner_logits(self.runner, dataset, eval_batch, pad=True)
        except Exception as exc:
            msg = error_text(exc, self.path)
            for r in rows:
                r.setdefault("warnings", []).append(f"accuracy run failed: {msg}")
            self.warnings.append(f"{name}: accuracy run failed: {msg}")
            return None
        names = [classes[i] for i in logits.argmax(1)]
        acc = _accuracy(logits, dataset, labelled, classes)
        for r in rows:
            if r["error"] is None:
                r.update(acc, eval_batch=eval_batch)
        return {"names": names, "ids": ids}


def bench_artifact(
    path: Path, data, cfg: BenchConfig, sampler, warnings: list[str]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Rows for one artifact (one per batch) and its predictions {names, ids} for agreement.
    ``data.get(info)``: the (dataset, labelled, ids) the artifact's runner reads."""
    base = _base_row(path)
    try:
        runner, options, unsupported = _activate(path, cfg, base)
    except Exception as exc:
        return [{**base, "error": error_text(exc, path)}], None
    session = _Session(path, runner, cfg, sampler, warnings, base)
    try:
        session.describe(options, unsupported)
        try:
            dataset, labelled, ids = data.get(runner.info)
        except Exception as exc:
            return [{**base, "error": error_text(exc, path)}], None
        rows = [session.batch_row(dataset, batch) for batch in cfg.batches]
        return rows, session.accuracy(dataset, labelled, ids, rows)
    finally:
        runner.deactivate()


def _accuracy(logits: np.ndarray, dataset, labelled: bool, classes: list[str]) -> dict[str, Any]:

    if not labelled:
        return {"top1": None, "per_class": None, "n_images": len(dataset), "labelled": False}
    labels = np.asarray([label for _, label in dataset.samples])
    result = score(logits.argmax(1), labels, classes)
    return {
        "top1": result.top1,
        "per_class": result.per_class,
        "n_images": result.n,
        "labelled": True,
    }


def _trtexec(path: Path, info, batch: int, cfg: BenchConfig) -> dict[str, Any]:
    """trtexec's GPU compute and host latency p50/p99 for this engine and batch, or its error."""
    spec = (info.extra.get("sidecar") or {}).get("input") or {}
    shape = [batch, *[int(d) for d in spec.get("shape", [0, info.in_channels])[1:2]]]
    shape += list(info.frame_size or (info.image_size, info.image_size))
    try:
        doc = run_trtexec(path, spec.get("name", "input"), shape, cfg.duration_s)
    except SocketEdgeError as exc:
        return {"error": str(exc)}
    gpu, host = doc["gpu_compute_ms"], doc.get("latency_ms") or {}
    return {
        "gpu_compute_p50_ms": gpu.get("p50"),
        "gpu_compute_p99_ms": gpu.get("p99"),
        "latency_p50_ms": host.get("p50"),
        "latency_p99_ms": host.get("p99"),
        "throughput_qps": doc.get("throughput_qps"),
        "version": doc.get("version"),
        "command": doc["command"],
        "error": None,
    }


def _row_warnings(row: dict[str, Any], cfg: BenchConfig) -> list[str]:
    out = []
    trtexec = row.get("trtexec")
    if trtexec and trtexec.get("error"):
        out.append(f"trtexec: {trtexec['error']}")
    cv = row.get("cv")
    if cv is not None and cv > cfg.cv_warn:
        out.append(
            f"coefficient of variation {cv:.1%} > {cfg.cv_warn:.0%}: latency is unstable "
            "(unlocked clocks or a busy machine; on a Jetson run `sudo nvpmodel -m <mode>` "
            "and `sudo jetson_clocks`)"
        )
    power = row.get("power")
    if power is not None and power["samples"] < 3:
        out.append(f"only {power['samples']} power samples in the timed window; raise --duration-s")
    return out
