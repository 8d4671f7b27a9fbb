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
    # Sizes of the default run (about 6 minutes on a 2-core CPU) and of --quick (about 1).
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
                "per_class": 48,
                "source_epochs": 4,
                "adapt_epochs": 2,
                "calib_size": 128,
                "bench_duration_s": 0.5,
            }
        )


def _step(name: str, steps: list[dict[str, Any]]):
    info(f"== {name}")
    record: dict[str, Any] = {"step": name, "start": time.perf_counter()}
    steps.append(record)
    return record


def run_demo(config: DemoConfig | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Run every step; returns the summary written to OUT/demo.json."""
    from .adapt import AdaptConfig, adapt
    from .bench import BenchConfig, bench
    from .data.synth import SynthConfig, synth
    from .errors import SocketEdgeError
    from .evaluate import evaluate_artifact
    from .files import write_json
    from .supervised import TrainConfig, train_supervised

    cfg = (config or DemoConfig()).resolved()
    if cfg.modality not in ("depth", "ir"):
        raise SocketEdgeError(f"modality must be depth or ir, got {cfg.modality!r}")
    out = Path(cfg.out)
    data, models, artifacts = out / "data", out / "models", out / "artifacts"
    m = cfg.modality
    steps: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    _step("1/6 synth: the built-in paired benchmark", steps)
    if not (data / "synth.json").exists():
        synth(
            data,
            SynthConfig(per_class=cfg.per_class, seed=cfg.seed, modalities=(m,)),
            show_progress=show_progress,
        )
    target_train, target_test = data / m / "target" / "train", data / m / "target" / "test"

    _step("2/6 train-source: the RGB model", steps)
    source = models / "source-rgb.pt"
    if not source.exists():
        train_supervised(
            data / "source_rgb" / "train",
            source,
            TrainConfig(arch=cfg.arch, epochs=cfg.source_epochs, seed=cfg.seed, device=cfg.device),
            val=data / "source_rgb" / "val",
            show_progress=show_progress,
        )
    rgb_val = evaluate_artifact(source, data / "source_rgb" / "val", show_progress=False).top1

    _step(f"3/6 adapt: RGB -> {m} (source-only and SOCKET)", steps)
    adapted = {}
    for method in ("source-only", "socket"):
        path = models / f"{m}-{method}.pt"
        if not path.exists():
            adapt(
                source,
                target_train,
                path,
                m,
                paired=data / m / "paired",
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

    _step("4/6 export: ONNX (parity-checked) and INT8 calibrated on target images", steps)
    onnx, engines, int8_refused = _export_step(
        adapted["socket"], artifacts / f"{m}.onnx", target_train, cfg, show_progress
    )
    int8 = [
        p for p in (artifacts / f"{m}.int8-cpu.onnx", artifacts / f"{m}.int8.onnx") if p.exists()
    ]

    _step("5/6 bench: latency and accuracy side by side", steps)
    bench_list = [adapted["socket"], onnx, *int8, *engines]
    report = bench(
        bench_list,
        target_test,
        BenchConfig(
            batches=[1],
            warmup_s=min(1.0, cfg.bench_duration_s),
            duration_s=cfg.bench_duration_s,
            device=cfg.device,
            show_progress=show_progress,
        ),
    )
    write_json(out / "bench.json", report)

    _step("6/6 summary", steps)
    rgb_on_target = evaluate_artifact(adapted["source-only"], target_test, show_progress=False).top1
    rows = [r for r in report["rows"] if not r.get("error")]
    summary = {
        "modality": m,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "accuracy": {
            "rgb_model_on_rgb_val": rgb_val,
            "rgb_model_on_target": rgb_on_target,
            "after_socket": _row_top1(rows, adapted["socket"]),
            "after_int8_cpu": _row_top1(rows, artifacts / f"{m}.int8-cpu.onnx"),
            "after_int8_qdq": _row_top1(rows, artifacts / f"{m}.int8.onnx"),
        },
        "int8_refused": int8_refused,
        "latency_ms_p50": {Path(r["artifact"]).name: r["latency_ms"]["p50"] for r in rows},
        "files": {
            "data": str(data),
            "source_model": str(source),
            "adapted": {k: str(v) for k, v in adapted.items()},
            "artifacts": [str(p) for p in [onnx, *int8, *engines]],
            "bench": str(out / "bench.json"),
        },
        "machine": report.get("machine", {}),
        "seconds": time.perf_counter() - t0,
    }
    write_json(out / "demo.json", summary)
    return summary


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
