"""RGB source training on the built-in benchmark: val top-1 and wall time of `train-source`.

Trains resnet18 at 64x64 with train-source's defaults for each seed (a seed already trained in
--work is reused, with the figures recorded when it ran) and writes the `train_source` section
of benchmarks/RESULTS.md.

    python benchmarks/train_source.py --data data/synth --seeds 0,1,2
    python benchmarks/train_source.py --data data/synth --seeds 1 --no-write   # one seed, to merge
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results import machine_line, update_section  # noqa: E402


def train_seed(data: Path, work: Path, seed: int) -> dict:
    """Train (or reuse) one seed's source model; its figures are kept beside the checkpoint."""
    import torch

    from socket_edge.supervised import TrainConfig, train_supervised

    ckpt = work / f"source-s{seed}.pt"
    record = ckpt.with_suffix(".bench.json")
    if ckpt.exists() and record.exists():
        return json.loads(record.read_text())
    cfg = TrainConfig(seed=seed)
    t0 = time.perf_counter()
    result = train_supervised(
        data / "source_rgb" / "train",
        ckpt,
        cfg,
        val=data / "source_rgb" / "val",
        show_progress=False,
    )
    seconds = time.perf_counter() - t0
    figures = {
        "seed": seed,
        "val_top1": result["val_acc"],
        "seconds": seconds,
        "epochs": len(result["history"]),
        "batch_size": cfg.batch_size,
        "threads": torch.get_num_threads(),
        "load_avg_1m_at_end": os.getloadavg()[0],
        "machine": machine_line(),
    }
    work.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(figures, indent=2))
    print(f"seed {seed}: val top-1 {result['val_acc']:.3f} in {seconds:.0f} s", flush=True)
    return figures


def table(runs: list[dict], data: Path) -> str:
    manifest = json.loads((data / "synth.json").read_text())
    lines = [
        "## RGB source training (`benchmarks/train_source.py`)",
        "",
        f"`socket-edge train-source` defaults (resnet18, 64x64, {runs[0]['epochs']} epochs, batch "
        f"{runs[0]['batch_size']}, SGD Nesterov, label smoothing 0.1) on the built-in benchmark "
        f"(`socket-edge synth`, per-class {manifest['config']['per_class']}: "
        f"{manifest['counts']['source_train'] * len(manifest['task_classes'])} RGB training "
        "images). Wall time includes the per-epoch val pass.",
        "",
        "| seed | RGB val top-1 (%) | wall time (s) | torch threads | load avg at end | machine |",
        "| ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in runs:
        lines.append(
            f"| {r['seed']} | {100 * r['val_top1']:.1f} | {r['seconds']:.0f} | {r['threads']} | "
            f"{r['load_avg_1m_at_end']:.2f} | {r['machine']} |"
        )
    vals = [r["val_top1"] for r in runs]
    spread = f" ± {100 * statistics.stdev(vals):.1f}" if len(vals) > 1 else ""
    lines += [
        "",
        f"Mean RGB val top-1: **{100 * statistics.mean(vals):.1f}{spread}%** over {len(runs)} "
        "seed(s). A run whose load average is well above its thread count shared the CPU with "
        "other jobs: read the wall time of the quiet run (load near its thread count).",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, default=Path("data/synth"))
    p.add_argument("--work", type=Path, default=Path("runs/train_source"))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--no-write", action="store_true", help="print, do not touch RESULTS.md")
    args = p.parse_args()
    os.environ.setdefault("SOCKET_EDGE_PROGRESS", "0")
    if not (args.data / "synth.json").exists():
        from socket_edge.data.synth import synth

        synth(args.data)
    runs = [train_seed(args.data, args.work, int(s)) for s in args.seeds.split(",")]
    text = table(runs, args.data)
    print(text)
    if not args.no_write:
        update_section("train_source", text)


if __name__ == "__main__":
    main()
