"""The INT8 artifacts export wrote, scored on the test split: agreement with FP32 beside accuracy.

For each exported FP32 model (``--model DIR/name.onnx``, its ``name.int8-cpu.onnx`` and
``name.int8.onnx`` beside it, every file verified against its sidecar), on every image of
DATA/<modality>/target/test: top-1 of each artifact, its top-1 agreement with FP32, the gate's
figures recorded at export (its images, budget, layers kept in float). Writes the
``int8_exported`` section of benchmarks/RESULTS.md.

    python benchmarks/int8_exported.py --data data/synth --model depth.onnx ir.onnx
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("SOCKET_EDGE_PROGRESS", "0")

SECTION = "int8_exported"
INT8 = (("int8-cpu", "ONNX Runtime CPU"), ("int8", "Q/DQ (TensorRT)"))


def score(model: Path, data: Path) -> list[str]:
    from socket_edge.artifact import read_sidecar, verify_artifact
    from socket_edge.calibration import calibset
    from socket_edge.export.parity import ort_logits, ort_session

    doc = verify_artifact(model)
    m, size, classes = doc["modality"], int(doc["input"]["shape"][-1]), list(doc["classes"])
    test = data / m / "target" / "test"
    n = sum(1 for p in test.rglob("*") if p.is_file())
    ev = calibset.draw(test, m, size, n, 0, 0, warn_short=False)
    x, labels = ev.load(ev.files), ev.labels(ev.files, classes)
    ref = ort_logits(ort_session(model), x).argmax(1)
    rows = [f"| {m} | {model.name} | FP32 | {100 * (ref == labels).mean():.1f}% | - | {n} | - |"]
    for suffix, label in INT8:
        path = model.with_name(f"{model.stem}.{suffix}.onnx")
        if not path.exists():
            rows.append(f"| {m} | {path.name} | {label} | not written (export's gate) | | | |")
            continue
        verify_artifact(path)
        gate = (read_sidecar(path).get("calibration") or {}).get("gate") or {}
        pred = ort_logits(ort_session(path), x).argmax(1)
        rows.append(
            f"| {m} | {path.name} | {label} | {100 * (pred == labels).mean():.1f}% | "
            f"{100 * (pred == ref).mean():.2f}% | {n} | budget {gate.get('max_disagreement')}% "
            f"of decisions; {gate.get('disagreement_percent', 0):.2f}% on its "
            f"{(gate.get('images') or {}).get('n')} images; in float: "
            f"{', '.join(gate.get('float_layers') or []) or 'none'} |"
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="built-in benchmark root")
    ap.add_argument("--model", type=Path, nargs="+", required=True, help="exported FP32 .onnx")
    ap.add_argument("--note", default="", help="how the models were made")
    ap.add_argument("--results", type=Path, help="RESULTS.md to update (default: benchmarks/)")
    args = ap.parse_args(argv)

    from results import machine_line, update_section

    lines = [
        "## INT8 artifacts as exported: agreement with FP32 (`benchmarks/int8_exported.py`)",
        "",
        f"Every image of the test split; files verified against their sidecars. {args.note}",
        f"Machine: {machine_line()}; deterministic on CPUs (one run).",
        "",
        "| modality | artifact | runs on | top-1 | agreement with FP32 | images | export's gate |",
        "| --- | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for model in args.model:
        lines += score(model, args.data)
    command = "python benchmarks/int8_exported.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    markdown = "\n".join(lines) + f"\n\nCommand: `{command}`\n"
    print(markdown)
    update_section(SECTION, markdown, *([args.results] if args.results else []))


if __name__ == "__main__":
    main()
