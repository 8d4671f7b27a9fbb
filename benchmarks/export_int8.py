"""INT8 export in ONNX Runtime on this CPU: latency of the three ONNX artifacts, and accuracy.

(1) Latency: an UNTRAINED resnet18 depth model at 224x224 (latency does not depend on the
    weights) is exported with `socket-edge export --int8`; FP32 model.onnx, model.int8-cpu.onnx
    (uint8 activations) and model.int8.onnx (Q/DQ, symmetric int8, for TensorRT) run at batch 1
    with 2 intra-op threads in the same process, in alternating rounds; medians, ratios to FP32
    and file sizes are reported.
(2) Accuracy (with --depth-model/--ir-model and --data): each adapted checkpoint is exported
    with INT8 calibration on DATA/<m>/target/train and scored on DATA/<m>/target/test as FP32
    checkpoint, FP32 ONNX and both INT8 models; the table shows the top-1 drop vs FP32 and the
    agreement of each INT8 model's top-1 decisions with the FP32 ONNX model's on the test set
    (what a robot cannot measure afterwards: INT8 must be faithful, not only as accurate).

    python benchmarks/export_int8.py                                  # latency only
    python benchmarks/export_int8.py --data data/synth --depth-model depth.pt --ir-model ir.pt
    python benchmarks/export_int8.py --quick --results /tmp/R.md      # smoke test (tests use it)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("SOCKET_EDGE_PROGRESS", "0")

SECTION = "export_int8"
VARIANTS = (
    ("FP32 model.onnx", "onnx"),
    ("INT8 model.int8-cpu.onnx", "int8-cpu"),
    ("INT8 model.int8.onnx (Q/DQ)", "int8-qdq"),
)


def write_depth_images(folder: Path, count: int, size: int, seed: int = 0) -> Path:
    """Random 16-bit depth PNGs (mm, with holes) to calibrate the untrained latency model on."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        depth = rng.uniform(300, 5000, (size, size)).astype(np.uint16)
        depth[rng.random((size, size)) < 0.05] = 0
        Image.fromarray(depth).save(folder / f"d{i:04d}.png")
    return folder


def untrained_checkpoint(path: Path, arch: str, size: int) -> Path:
    import torch

    from socket_edge.data.encoding import default_encoding
    from socket_edge.models.checkpoint import build_model, make_meta, save_checkpoint

    torch.manual_seed(0)
    meta = make_meta(
        arch, [f"c{i}" for i in range(10)], size, default_encoding("depth"), "benchmark-untrained"
    )
    save_checkpoint(path, build_model(meta).eval(), meta)
    return path


def session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_models(
    paths: dict[str, Path], x: np.ndarray, threads: int, rounds: int, per_round: int, warmup: int
) -> dict[str, list[float]]:
    """Per-call seconds of each model, rounds alternating the order (ABC, CBA, ...)."""
    sessions = {k: session(p, threads) for k, p in paths.items()}
    for s in sessions.values():
        for _ in range(warmup):
            s.run(None, {"input": x})
    times: dict[str, list[float]] = {k: [] for k in paths}
    keys = list(paths)
    for r in range(rounds):
        for k in keys if r % 2 == 0 else keys[::-1]:
            s = sessions[k]
            for _ in range(per_round):
                t0 = time.perf_counter()
                s.run(None, {"input": x})
                times[k].append(time.perf_counter() - t0)
    return times


def latency(work: Path, args) -> str:
    from socket_edge.export.onnx_export import example_input
    from socket_edge.export.pipeline import ExportOptions, export, int8_paths

    ckpt = untrained_checkpoint(work / "latency.pt", "resnet18", args.image_size)
    calib = write_depth_images(work / "latency-calib", args.latency_calib, 64)
    out = work / "latency" / "model.onnx"
    opts = ExportOptions(
        int8=True,
        calib=calib,
        calib_size=args.latency_calib,
        holdout=0,
        max_drop=100.0,
        show_progress=False,
    )
    export(ckpt, out, opts)
    paths = {"onnx": out, **{k: v for k, v in int8_paths(out).items() if k != "cache"}}
    x = example_input("depth", args.image_size, batch=1, seed=7).numpy()
    per_round = max(1, args.repeats // args.rounds)
    times = time_models(paths, x, args.threads, args.rounds, per_round, args.warmup)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    mean = {k: statistics.fmean(v) * 1e3 for k, v in times.items()}
    rows = [
        "| model | median ms | mean ms | speed-up vs FP32 (median) | file size |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, key in VARIANTS:
        size_mb = paths[key].stat().st_size / 2**20
        rows.append(
            f"| {label} | {med[key]:.2f} | {mean[key]:.2f} | "
            f"{med['onnx'] / med[key]:.2f}x | {size_mb:.1f} MiB |"
        )
    n = len(times["onnx"])
    return (
        f"### Latency, resnet18 depth {args.image_size}x{args.image_size}, batch 1, "
        f"{args.threads} threads (ONNX Runtime CPU)\n\n"
        f"Untrained weights (latency does not depend on them); calibrated on "
        f"{args.latency_calib} random depth maps. {n} timed calls per model after "
        f"{args.warmup} warm-up calls, in {args.rounds} rounds alternating the order, same "
        f"process.\n\n" + "\n".join(rows) + "\n"
    )


def test_set_parity(ckpt: Path, onnx_path: Path, test: Path) -> dict:
    """FP32 ONNX vs the checkpoint in torch on every image of the test folder, batches 1 and 32."""
    from socket_edge.calibration import calibset
    from socket_edge.export.parity import parity_check
    from socket_edge.models.checkpoint import load_checkpoint

    net, meta = load_checkpoint(ckpt)
    n = len([p for p in test.rglob("*") if p.is_file()])
    pool = calibset.draw(test, meta["modality"], int(meta["image_size"]), n, 0, 0, warn_short=False)
    return {"arch": meta["arch"], **parity_check(net, onnx_path, pool.load(pool.files), [1, 32])}


def test_set_agreement(onnx_path: Path, int8: dict[str, Path], test: Path) -> dict[str, float]:
    """Share of the test folder's images on which each INT8 model's top-1 equals FP32's."""
    from socket_edge.artifact import read_sidecar
    from socket_edge.calibration import calibset
    from socket_edge.export.parity import ort_logits, ort_session

    doc = read_sidecar(onnx_path)
    size = int(doc["preprocess"]["image_size"])
    n = len([p for p in test.rglob("*") if p.is_file()])
    pool = calibset.draw(test, doc["modality"], size, n, 0, 0, warn_short=False)
    x = pool.load(pool.files)
    ref = ort_logits(ort_session(onnx_path), x).argmax(1)
    return {
        k: float((ort_logits(ort_session(p), x).argmax(1) == ref).mean()) for k, p in int8.items()
    }


def accuracy(work: Path, args) -> str:
    from socket_edge.errors import SocketEdgeError
    from socket_edge.evaluate import evaluate_artifact
    from socket_edge.export.pipeline import ExportOptions, export, int8_paths

    rows = [
        "| modality | model | arch | top-1 FP32 .pt | FP32 .onnx | INT8 int8-cpu | INT8 Q/DQ | "
        "drop int8-cpu | drop Q/DQ | agreement with FP32 int8-cpu | agreement Q/DQ | "
        "parity max diff | parity agreement | float layers |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| --- |",
    ]
    notes = []
    models = [("depth", c) for c in args.depth_model or []] + [
        ("ir", c) for c in args.ir_model or []
    ]
    for i, (modality, ckpt) in enumerate(models):
        root = args.data / modality / "target"
        out = work / f"{modality}-{i}" / "model.onnx"
        opts = ExportOptions(
            int8=True,
            calib=root / "train",
            calib_size=args.calib_size,
            calib_method=args.calib_method,
            verify_data=None,
            max_drop=args.max_drop,
            max_disagreement=args.max_disagreement,
            show_progress=False,
        )
        try:
            result = export(ckpt, out, opts)
        except SocketEdgeError as exc:  # the gate refused: that is a result too
            rows.append(f"| {modality} | {Path(ckpt).name} | export refused: {exc} |")
            continue
        assert result.int8 is not None and result.parity is not None
        top1 = {"pt": evaluate_artifact(ckpt, root / "test", show_progress=False).top1}
        for key, path in (
            ("onnx", out),
            *((k, v) for k, v in int8_paths(out).items() if k != "cache"),
        ):
            top1[key] = evaluate_artifact(path, root / "test", show_progress=False).top1
        parity = test_set_parity(ckpt, out, root / "test")
        int8 = {k: v for k, v in int8_paths(out).items() if k != "cache"}
        agree = test_set_agreement(out, int8, root / "test")
        g = result.int8["gate"]
        layers = g["float_layers"]
        kept = ", ".join(layers) if len(layers) <= 3 else f"{len(layers)} (e.g. {layers[0]})"
        kept = kept or "none"
        rows.append(
            f"| {modality} | {Path(ckpt).name} | {parity['arch']} | {100 * top1['pt']:.2f} | "
            f"{100 * top1['onnx']:.2f} | "
            f"{100 * top1['int8-cpu']:.2f} | {100 * top1['int8-qdq']:.2f} | "
            f"{100 * (top1['onnx'] - top1['int8-cpu']):.2f} | "
            f"{100 * (top1['onnx'] - top1['int8-qdq']):.2f} | "
            f"{100 * agree['int8-cpu']:.1f}% | {100 * agree['int8-qdq']:.1f}% | "
            f"{parity['max_abs_logit_diff']:.1e} | {100 * parity['top1_agreement']:.1f}% | "
            f"{kept} |"
        )
        n_test = len([p for p in (root / "test").rglob("*") if p.is_file()])
        notes.append(
            f"{modality}: calibrated on {result.int8['set']['size']} drawn "
            f"images of {root / 'train'} ({args.calib_method}), gate on "
            f"{g['images']['n']} held-back train images (there: top-1 drop "
            f"{g['drop_points']:.2f} points, disagreement {g['disagreement_percent']:.2f}%; "
            f"budgets {g['max_drop']:g} points, {g['max_disagreement']:g}%), scored on "
            f"{n_test} test images; parity: "
            f"FP32 ONNX vs torch on all {parity['n']} test images at batch 1 and 32 "
            f"({'passed' if parity['passed'] else 'FAILED'})"
        )
    return (
        "### INT8 accuracy vs FP32 (ONNX Runtime CPU), built-in benchmark test sets\n\n"
        + "\n".join(rows)
        + "\n\n"
        + "\n".join(f"- {n}" for n in notes)
        + "\n"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, help="built-in benchmark root (socket-edge synth DIR)")
    ap.add_argument("--depth-model", type=Path, nargs="+", help="adapted depth checkpoint(s)")
    ap.add_argument("--ir-model", type=Path, nargs="+", help="adapted IR checkpoint(s)")
    ap.add_argument("--image-size", type=int, default=224, help="latency model input side")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=300, help="timed calls per model")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--latency-calib", type=int, default=32, help="random maps to calibrate on")
    ap.add_argument("--calib-size", type=int, default=512)
    ap.add_argument("--calib-method", default="entropy")
    ap.add_argument("--max-drop", type=float, default=1.0)
    ap.add_argument("--max-disagreement", type=float, default=2.0, help="percent of decisions")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument(
        "--quick", action="store_true", help="smoke test: 64 px, few repeats, small calibration"
    )
    ap.add_argument("--results", type=Path, help="RESULTS.md to update (default: benchmarks/)")
    ap.add_argument("--workdir", type=Path, help="keep the artifacts here (default: a temp dir)")
    args = ap.parse_args(argv)
    if args.quick:
        args.image_size, args.repeats, args.rounds, args.warmup = 64, 6, 2, 2
        args.latency_calib, args.calib_size = 8, min(args.calib_size, 24)
    if (args.depth_model or args.ir_model) and args.data is None:
        ap.error("--depth-model/--ir-model need --data (the built-in benchmark root)")

    from results import machine_line, update_section

    with tempfile.TemporaryDirectory(prefix="export-int8.") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        parts = [
            f"Machine: {machine_line()}; onnxruntime {_ort_version()}."
            + (" QUICK smoke-test settings: not for reading." if args.quick else ""),
            "",
        ]
        if not args.no_latency:
            parts.append(latency(work, args))
        if args.depth_model or args.ir_model:
            parts.append(accuracy(work, args))
    command = "python benchmarks/export_int8.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    markdown = (
        "## INT8 export (ONNX Runtime, CPU)\n\n"
        + "\n".join(parts)
        + f"\nCommand: `{command.strip()}`\n"
    )
    print(markdown)
    if args.results is not None:
        update_section(SECTION, markdown, args.results)
    else:
        update_section(SECTION, markdown)


def _ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


if __name__ == "__main__":
    main()
