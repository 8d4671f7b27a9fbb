"""Why INT8 changes FP32's decisions: calibration method x calibration-set size x float logits.

For each adapted checkpoint: export FP32 ONNX, compute activation ranges on DATA/<m>/target/train
with each calibration method and set size, quantize both INT8 models (int8-cpu: u8 activations;
int8-qdq: symmetric s8, what TensorRT runs) with the graph output (logits) quantized (as before), kept
float, or kept float with the classifier layer in float too, and score the top-1 agreement with FP32 (and top-1 with labels) on the test split.
No gate here (no layers kept in float): these are the raw effects of each choice.

    python benchmarks/int8_agreement.py --data /work/assets/synth \\
        --depth-model depth-socket.pt --ir-model ir-socket.pt --sizes 512,1024
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("SOCKET_EDGE_PROGRESS", "0")

SECTION = "int8_agreement"
METHODS = ("entropy", "percentile", "minmax")


def study(ckpt: Path, modality: str, data: Path, sizes: list[int], work: Path) -> tuple[str, list]:
    from socket_edge.calibration import calibset, graph, qdq, ranges
    from socket_edge.export.parity import ort_logits, ort_session
    from socket_edge.export.pipeline import ExportOptions, export
    from socket_edge.models.checkpoint import read_checkpoint

    meta = read_checkpoint(ckpt)["meta"]
    size = int(meta["image_size"])
    fp32 = work / f"{modality}-{ckpt.stem}" / "model.onnx"
    export(ckpt, fp32, ExportOptions(show_progress=False, verify=False))
    regions = graph.regions(graph.load_model(fp32, check=False))
    test = data / modality / "target" / "test"
    n_test = len([p for p in test.rglob("*") if p.is_file()])
    ev = calibset.draw(test, modality, size, n_test, 0, 0, warn_short=False)
    x = ev.load(ev.files)
    labels = ev.labels(ev.files, list(meta["classes"]))
    ref = ort_logits(ort_session(fp32), x)
    p = np.exp(ref - ref.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    top2 = np.sort(ref, 1)[:, -2:]
    head = (
        f"{modality} {ckpt.name}: {len(x)} test images, FP32 top-1 "
        f"{100 * float((ref.argmax(1) == labels).mean()):.1f}%, mean max softmax "
        f"{float(p.max(1).mean()):.3f}, median top-1/top-2 logit margin "
        f"{float(np.median(top2[:, 1] - top2[:, 0])):.3f} (logits {ref.min():.2f}..{ref.max():.2f})"
    )
    rows = []
    for n in sizes:
        cs = calibset.draw(data / modality / "target" / "train", modality, size, n, 0, 0)
        for method in METHODS:
            t0 = time.perf_counter()
            r = ranges.collect(
                fp32, None, regions.activations, method, batch_factory=lambda cs=cs: cs.batches(32)
            )
            seconds = time.perf_counter() - t0
            last = regions.weighted_nodes[-1:]  # the classifier
            modes = [("int8", False, []), ("float", True, []), ("float + last layer", True, last)]
            for mode, float_logits, extra in modes if method == "entropy" else modes[1:]:
                cells = {}
                for variant in qdq.VARIANTS:
                    q = fp32.with_name(f"{variant}.onnx")
                    floats = regions.float_nodes + extra
                    qdq.quantize(fp32, q, r, variant, floats, float_logits)
                    out = ort_logits(ort_session(q), x)
                    srt = np.sort(out, 1)
                    cells[variant] = (
                        float((out.argmax(1) == ref.argmax(1)).mean()),
                        float((out.argmax(1) == labels).mean()),
                        int((srt[:, -1] == srt[:, -2]).sum()),
                    )
                rows.append((len(cs), method, mode, cells, seconds))
                print(modality, len(cs), method, mode, cells, flush=True)
    return head, rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="built-in benchmark root")
    ap.add_argument("--depth-model", type=Path, nargs="*", default=[])
    ap.add_argument("--ir-model", type=Path, nargs="*", default=[])
    ap.add_argument("--sizes", default="512", help="calibration set sizes, comma-separated")
    ap.add_argument("--results", type=Path, help="RESULTS.md to update (default: benchmarks/)")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    from results import machine_line, update_section

    parts = [f"Machine: {machine_line()}; one run per cell (deterministic on CPUs).", ""]
    with tempfile.TemporaryDirectory(prefix="int8-agreement.") as tmp:
        for modality, ckpt in [("depth", c) for c in args.depth_model] + [
            ("ir", c) for c in args.ir_model
        ]:
            head, rows = study(ckpt, modality, args.data, sizes, Path(tmp))
            parts += [
                f"**{head}**",
                "",
                "| calib images | method | logits | agreement int8-cpu | agreement Q/DQ | "
                "top-1 int8-cpu | top-1 Q/DQ | tied top-2 (cpu / Q/DQ) | ranges s |",
                "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            ]
            for n, method, mode, cells, seconds in rows:
                c, q = cells["int8-cpu"], cells["int8-qdq"]
                parts.append(
                    f"| {n} | {method} | {mode} | "
                    f"{100 * c[0]:.1f}% | {100 * q[0]:.1f}% | {100 * c[1]:.1f}% | "
                    f"{100 * q[1]:.1f}% | {c[2]} / {q[2]} | {seconds:.0f} |"
                )
            parts.append("")
    command = "python benchmarks/int8_agreement.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    markdown = (
        "## INT8 agreement with FP32: calibration choices\n\n"
        + "\n".join(parts)
        + f"\nCommand: `{command.strip()}`\n"
    )
    print(markdown)
    update_section(SECTION, markdown, *([args.results] if args.results else []))


if __name__ == "__main__":
    main()
