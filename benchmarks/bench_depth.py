"""The bench table of the built-in depth model: checkpoint, FP32 ONNX and INT8 ONNX on this CPU.

Exports the adapted checkpoint with `socket-edge export` (FP32 ONNX, then INT8 calibrated on the
unlabelled target training images), benches every artifact on the labelled target test split,
and writes its section of RESULTS.md with the plot benchmarks/bench_depth.png beside the table.

    socket-edge synth data/synth
    socket-edge adapt ... --modality depth --out runs/depth.pt
    python benchmarks/bench_depth.py --model runs/depth.pt --data data/synth
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("SOCKET_EDGE_PROGRESS", "0")


def export(model: Path, out: Path, calib: Path) -> None:
    """FP32 + INT8 ONNX through the CLI (the stable contract: README "Commands")."""
    cmd = [
        sys.executable,
        "-m",
        "socket_edge.cli.main",
        "export",
        str(model),
        "--out",
        str(out),
        "--int8",
        "--calib",
        str(calib),
    ]
    print("$ socket-edge " + " ".join(cmd[3:]), flush=True)
    res = subprocess.run(cmd, capture_output=True, text=True)
    sys.stderr.write(res.stderr)
    if res.returncode != 0:
        sys.exit(f"export failed (exit {res.returncode}); see above")


def artifacts_of(model: Path, onnx: Path) -> list[Path]:
    """The checkpoint, then whichever ONNX artifacts the export wrote."""
    stem = onnx.with_suffix("")
    found = [model]
    for path in (onnx, Path(f"{stem}.int8-cpu.onnx"), Path(f"{stem}.int8.onnx")):
        if path.exists():
            found.append(path)
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="the adapted depth checkpoint")
    ap.add_argument("--data", type=Path, required=True, help="the built-in benchmark (synth DIR)")
    ap.add_argument("--out-dir", type=Path, default=Path("runs/bench_depth"))
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--warmup-s", type=float, default=2.0)
    ap.add_argument("--duration-s", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip-export", action="store_true", help="reuse OUT_DIR's ONNX artifacts")
    ap.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    args = ap.parse_args()

    from results import update_section

    from socket_edge.bench import BenchConfig, bench
    from socket_edge.bench.report import plot, to_markdown
    from socket_edge.files import write_json
    from socket_edge.models.checkpoint import read_checkpoint

    modality = read_checkpoint(args.model)["meta"]["modality"]
    target = args.data / modality / "target"
    onnx = args.out_dir / f"{args.model.stem}.onnx"
    if not args.skip_export:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        export(args.model, onnx, target / "train")
    artifacts = artifacts_of(args.model, onnx)
    batches = [int(b) for b in args.batch.split(",")]
    cfg = BenchConfig(
        batches=batches, warmup_s=args.warmup_s, duration_s=args.duration_s, threads=args.threads
    )
    doc = bench(artifacts, target / "test", cfg)
    write_json(args.out_dir / "bench_depth.json", doc)
    png = args.out_dir / "bench_depth.png" if args.no_write else HERE / "bench_depth.png"
    plot(doc, png)
    command = (
        f"python benchmarks/bench_depth.py --model {args.model} --data {args.data} "
        f"--batch {args.batch} --warmup-s {args.warmup_s:g} "
        f"--duration-s {args.duration_s:g}" + (f" --threads {args.threads}" if args.threads else "")
    )
    n_images = next((r.get("n_images") for r in doc["rows"] if r.get("n_images")), "?")
    text = "\n".join(
        [
            f"## Bench: the built-in {modality} model on this CPU",
            "",
            f"Checkpoint `{args.model.name}`, its FP32 ONNX and INT8 ONNX export(s), on the "
            f"labelled {modality} target test split ({n_images} images). Every row is "
            "`socket-edge bench`'s own measurement: " + cfg.plan.describe() + " per artifact and "
            "batch; top-1 and agreement with the checkpoint over the whole split.",
            "",
            to_markdown(doc).rstrip(),
            "",
            "![accuracy vs latency](bench_depth.png)",
            "",
            f"Command: `{command}` (JSON: `{args.out_dir / 'bench_depth.json'}`)",
        ]
    )
    print(text)
    if not args.no_write:
        update_section("bench_depth", text)
    if doc["errors"]:
        sys.exit(f"{doc['errors']} row(s) failed; see the table")


if __name__ == "__main__":
    main()
