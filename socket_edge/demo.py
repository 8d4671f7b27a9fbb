"""`socket-edge demo`: the whole pipeline on the built-in benchmark, on the CPU.

synth -> train-source (RGB) -> adapt (source-only and SOCKET) -> export FP32 + INT8 (+ engines
where TensorRT is present) -> bench, then one closing table: accuracy of the RGB model on the
target modality, after SOCKET and after INT8, the latency of each artifact, and where every file
went. Each step reuses its output when it already exists, so a stopped demo continues.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .console import info, warn
from .errors import SocketEdgeError

# The demo's source model is trained briefly on little data, so its BatchNorm statistics are far
# from the target's: the published BN term (a sum of L2 norms) is then ~1e4 and swamps the other
# terms (--quick: L_BN 58,874 vs L_IM -0.005 after one epoch, predictions collapsed to one class).
# The demo therefore adapts with the scale-free BN term in one joint batch (socket-edge's earlier
# settings, `--bn-scale rms --joint-batch`), which its README table was measured with.
DEMO_SOCKET = {"bn_scale": "rms", "joint_batch": True}


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("socket-edge-demo")
    modality: str = "depth"
    quick: bool = False
    arch: str = "resnet18"
    seed: int = 0
    device: str = "cpu"
    # Sizes of the default run. --quick is a smoke test of every step (a few minutes on 2 cores):
    # its RGB model trains for seconds and scores near chance, so its figures mean nothing.
    per_class: int = 400
    source_epochs: int = 12
    adapt_epochs: int = 6
    calib_size: int = 512
    bench_duration_s: float = 3.0

    def resolved(self) -> DemoConfig:
        """The quick variant shrinks every step; explicit settings are kept."""
        if not self.quick:
            return self
        return DemoConfig(
            **{
                **asdict(self),
                "per_class": 32,
                "source_epochs": 4,
                "adapt_epochs": 2,
                "calib_size": 64,
                "bench_duration_s": 0.5,
            }
        )


def _step(name: str, steps: list[dict[str, Any]]):
    info(f"== {name}")
    record: dict[str, Any] = {"step": name, "start": time.perf_counter()}
    steps.append(record)
    return record


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo writes each step's output under OUT."""

    out: Path
    modality: str

    @property
    def data(self) -> Path:
        return self.out / "data"

    @property
    def models(self) -> Path:
        return self.out / "models"

    @property
    def artifacts(self) -> Path:
        return self.out / "artifacts"

    @property
    def source(self) -> Path:
        return self.models / "source-rgb.pt"

    def target(self, split: str) -> Path:
        return self.data / self.modality / "target" / split

    @property
    def onnx(self) -> Path:
        return self.artifacts / f"{self.modality}.onnx"

    def int8_files(self) -> dict[str, Path]:
        """The export's INT8 ONNX files by variant ("int8-cpu", "int8-qdq"), written or not."""
        from .export.pipeline import int8_paths

        files = int8_paths(self.onnx)
        return {v: files[v] for v in ("int8-cpu", "int8-qdq")}


def _synth_step(paths: DemoPaths, cfg: DemoConfig, show_progress: bool) -> None:
    from .data.synth import SynthConfig, synth

    if not (paths.data / "synth.json").exists():
        synth(
            paths.data,
            SynthConfig(per_class=cfg.per_class, seed=cfg.seed, modalities=(cfg.modality,)),
            show_progress=show_progress,
        )


def _source_step(paths: DemoPaths, cfg: DemoConfig, show_progress: bool) -> float:
    """Train the RGB model (unless there); its top-1 on the RGB validation images."""
    from .evaluate import evaluate_artifact
    from .supervised import TrainConfig, train_supervised

    data = paths.data
    if not paths.source.exists():
        train_supervised(
            data / "source_rgb" / "train",
            paths.source,
            TrainConfig(arch=cfg.arch, epochs=cfg.source_epochs, seed=cfg.seed, device=cfg.device),
            val=data / "source_rgb" / "val",
            show_progress=show_progress,
        )
    return evaluate_artifact(paths.source, data / "source_rgb" / "val", show_progress=False).top1


def _adapt_step(paths: DemoPaths, cfg: DemoConfig, show_progress: bool) -> dict[str, Path]:
    """The source-only and SOCKET models (each unless there): {method: checkpoint}."""
    from .adapt import AdaptConfig, adapt

    m = cfg.modality
    adapted = {}
    for method in ("source-only", "socket"):
        path = paths.models / f"{m}-{method}.pt"
        if not path.exists():
            adapt(
                paths.source,
                paths.target("train"),
                path,
                m,
                paired=paths.data / m / "paired",
                config=AdaptConfig(
                    method=method,
                    epochs=cfg.adapt_epochs,
                    seed=cfg.seed,
                    device=cfg.device,
                    **DEMO_SOCKET,
                ),
                show_progress=show_progress,
            )
        adapted[method] = path
    return adapted


def _bench_step(
    paths: DemoPaths, artifacts: list[Path], cfg: DemoConfig, show_progress: bool
) -> dict[str, Any]:
    """Bench every artifact on the target test images; the report, also OUT/bench.json."""
    from .bench import BenchConfig, bench
    from .files import write_json

    report = bench(
        artifacts,
        paths.target("test"),
        BenchConfig(
            batches=[1],
            warmup_s=min(1.0, cfg.bench_duration_s),
            duration_s=cfg.bench_duration_s,
            device=cfg.device,
            show_progress=show_progress,
        ),
    )
    write_json(paths.out / "bench.json", report)
    return report


def _bench_accuracy(rows: list[dict[str, Any]], paths: DemoPaths, socket: Path) -> dict:
    """Top-1 on the target test images of the SOCKET model and its INT8 variants (benched)."""
    int8 = paths.int8_files()
    return {
        "after_socket": _row_top1(rows, socket),
        "after_int8_cpu": _row_top1(rows, int8["int8-cpu"]),
        "after_int8_qdq": _row_top1(rows, int8["int8-qdq"]),
    }


def _check_modality(modality: str) -> None:
    if modality not in ("depth", "ir"):
        raise SocketEdgeError(
            f"modality must be depth or ir, got {modality!r}", settings=("modality",)
        )


def run_demo(config: DemoConfig | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Run every step; returns the summary written to OUT/demo.json."""
    from .evaluate import evaluate_artifact
    from .files import write_json

    cfg = (config or DemoConfig()).resolved()
    _check_modality(cfg.modality)
    m = cfg.modality
    paths = DemoPaths(Path(cfg.out), m)
    steps: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    _step("1/6 synth: the built-in paired benchmark", steps)
    _synth_step(paths, cfg, show_progress)

    _step("2/6 train-source: the RGB model", steps)
    rgb_val = _source_step(paths, cfg, show_progress)

    _step(f"3/6 adapt: RGB -> {m} (source-only and SOCKET)", steps)
    adapted = _adapt_step(paths, cfg, show_progress)

    _step("4/6 export: ONNX (parity-checked) and INT8 calibrated on target images", steps)
    onnx, engines, int8_refused = _export_step(
        adapted["socket"], paths.onnx, paths.target("train"), cfg, show_progress
    )
    int8 = [p for p in paths.int8_files().values() if p.exists()]

    _step("5/6 bench: latency and accuracy side by side", steps)
    report = _bench_step(paths, [adapted["socket"], onnx, *int8, *engines], cfg, show_progress)

    _step("6/6 summary", steps)
    rgb_on_target = evaluate_artifact(
        adapted["source-only"], paths.target("test"), show_progress=False
    ).top1
    rows = [r for r in report["rows"] if not r.get("error")]
    summary = {
        "modality": m,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "accuracy": {
            "rgb_model_on_rgb_val": rgb_val,
            "rgb_model_on_target": rgb_on_target,
            **_bench_accuracy(rows, paths, adapted["socket"]),
        },
        "int8_refused": int8_refused,
        "latency_ms_p50": {Path(r["artifact"]).name: r["latency_ms"]["p50"] for r in rows},
        "files": _files(paths, adapted, [onnx, *int8, *engines]),
        "machine": report.get("machine", {}),
        "seconds": time.perf_counter() - t0,
    }
    write_json(paths.out / "demo.json", summary)
    return summary


def _files(paths: DemoPaths, adapted: dict[str, Path], artifacts: list[Path]) -> dict[str, Any]:
    """The summary's list of what the demo wrote."""
    return {
        "data": str(paths.data),
        "source_model": str(paths.source),
        "adapted": {k: str(v) for k, v in adapted.items()},
        "artifacts": [str(p) for p in artifacts],
        "bench": str(paths.out / "bench.json"),
    }


def _export_step(
    model: Path, onnx: Path, calib: Path, cfg: DemoConfig, show_progress: bool
) -> tuple[Path, list[Path], str | None]:
    """FP32 + INT8 (+ engines); when the INT8 gate refuses, FP32 alone and the gate's reason.

    A weak model (the quick demo's, on another CPU) can have so many near-tie decisions that no
    INT8 variant stays within the agreement budget. That is the gate doing its job, so the demo
    shows it and goes on with FP32 rather than failing; the reason is kept beside the artifacts.
    """
    from .doctor import tensorrt_version
    from .errors import Int8GateError
    from .export.pipeline import ExportOptions, export
    from .files import write_text

    refused = onnx.with_name(onnx.stem + ".int8-refused.txt")
    if onnx.exists():
        reason = refused.read_text().strip() if refused.exists() else None
        return onnx, sorted(onnx.parent.glob("*.engine")), reason
    use_trt = tensorrt_version() is not None and _cuda_available()
    options = ExportOptions(
        int8=True,
        calib=calib,
        calib_size=cfg.calib_size,
        seed=cfg.seed,
        trt=use_trt,
        fp16=use_trt,
        show_progress=show_progress,
    )
    reason = None
    try:
        result = export(model, onnx, options)
    except Int8GateError as e:
        reason = str(e)
        warn(f"INT8 refused by the agreement gate; the demo goes on with FP32: {reason}")
        write_text(refused, reason + "\n")
        result = export(model, onnx, replace(options, int8=False))
    return onnx, [Path(e["path"]) for e in result.engines if e.get("path")], reason


def _row_top1(rows: list[dict[str, Any]], path: Path) -> float | None:
    for r in rows:
        if Path(r["artifact"]).name == Path(path).name:
            return r.get("top1")
    return None


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False
