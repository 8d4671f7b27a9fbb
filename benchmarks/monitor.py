"""Drift monitoring and re-adaptation on the built-in benchmark's deployment shifts.

(1) Detection: each adapted model is exported with reference statistics on
    DATA/<m>/target/train (512 reference frames, 256 held back for the thresholds). Windows of
    32, 128 and 512 frames are drawn WITH REPLACEMENT (bootstrap; --windows per set and size)
    from the clean test set DATA/<m>/target/test and from each shifted test set SHIFTED/<shift>
    (rendered by `socket-edge synth --shift`, the same scenes as unshifted). The table gives
    the share of windows called drifted (1 % stated false-alarm rate) with all signals and
    with the output signals alone (what a loop that only keeps logits sees), the share of clean
    windows called drifted (false alarms), and the model's top-1 on the clean and shifted sets.
(2) Re-adaptation (--readapt): after the sensor shift (depth-sensor for depth, thermal for IR),
    `adapt --init DEPLOYED --source SRC` on --target-frames shifted training frames (a seeded
    subset of SHIFTED/<shift>/<m>/target/train; labels unused) for --epochs epochs, TI pairs a
    seeded subset of --pairs of DATA/<m>/paired; top-1 on the shifted test set, per seed, and
    the share of the shift's accuracy loss recovered. Defaults: all 1,000 shifted training
    frames and adapt's own length (10 epochs); 300 frames and 2 epochs recovered 11% on IR.

    python benchmarks/monitor.py --data /work/assets/synth --shifted SHIFTED \
        --depth-model depth-socket.pt --ir-model ir-socket.pt --src src.pt --readapt
    python benchmarks/monitor.py --data DATA --shifted SHIFTED --untrained   # input signals only

--untrained uses an untrained resnet18 (random weights, chance accuracy) for both modalities:
only the input signals' figures mean anything then (a stand-in where no trained model exists).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("SOCKET_EDGE_PROGRESS", "0")

SECTION = "monitor"
WINDOWS = (32, 128, 512)
SHIFTS = {"depth": ("depth-sensor", "mount", "prior"), "ir": ("thermal", "mount", "prior")}
SENSOR_SHIFT = {"depth": "depth-sensor", "ir": "thermal"}


def load_set(folder: Path, modality: str, classes: list[str], session) -> dict:
    """Frames' signals, predictions and labels of a labelled folder (numpy readers, ORT)."""
    from socket_edge.data.readers import read_image
    from socket_edge.export.parity import ort_logits
    from socket_edge.monitor.signals import input_signals, output_signals

    files = [(p, i) for i, c in enumerate(classes) for p in sorted((folder / c).glob("*.png"))]
    x = np.stack([read_image(p, modality) for p, _ in files]).astype(np.float32)
    labels = np.array([i for _, i in files])
    logits = ort_logits(session, x)
    out, predicted = output_signals(logits)
    return {
        "signals": {**input_signals(x, modality), **out},
        "predicted": predicted,
        "top1": float((predicted == labels).mean()),
        "n": len(files),
    }


def detection(mon, data: dict, size: int, windows: int, with_input: bool, seed: int) -> float:
    """Share of bootstrap windows of ``size`` frames from ``data`` judged drifted."""
    from socket_edge.monitor.reference import signal_names

    names = signal_names(mon.reference, with_input)
    rng = np.random.default_rng([seed, size])
    hits = 0
    for _ in range(windows):
        idx = rng.integers(0, data["n"], size)
        r = mon.judge({k: data["signals"][k][idx] for k in names}, data["predicted"][idx])
        hits += r.verdict == "drifted"
    return hits / windows


def detect_modality(m: str, model: Path, data: Path, shifted: Path, args, work: Path) -> dict:
    from socket_edge.artifact import read_sidecar
    from socket_edge.export.parity import ort_session
    from socket_edge.export.pipeline import ExportOptions, export
    from socket_edge.monitor import Monitor

    onnx = work / f"{m}.onnx"
    t0 = time.perf_counter()
    export(
        model,
        onnx,
        ExportOptions(show_progress=False, reference=data / m / "target/train", batch=(1, 32)),
    )
    export_s = time.perf_counter() - t0
    doc = read_sidecar(onnx)
    classes = doc["classes"]
    session = ort_session(onnx, threads=1)  # one thread: steadier on a shared CPU
    sets = {"clean": load_set(data / m / "target/test", m, classes, session)}
    for shift in SHIFTS[m]:
        folder = shifted / shift / m / "target/test"
        if folder.exists():
            sets[shift] = load_set(folder, m, classes, session)
        else:
            print(f"skipping {shift} for {m}: no {folder}", file=sys.stderr)
    mon = Monitor(doc["reference"], window=max(WINDOWS), false_alarm=0.01)
    cost = monitor_cost(mon, session, data / m / "target/test", m)
    rows = {}
    for name, d in sets.items():
        rows[name] = {"top1": d["top1"], "n": d["n"], "all": {}, "outputs": {}}
        for size in WINDOWS:
            for key, with_input in (("all", True), ("outputs", False)):
                rows[name][key][size] = detection(mon, d, size, args.windows, with_input, args.seed)
        print(m, name, rows[name], file=sys.stderr, flush=True)
    return {
        "model": str(model),
        "reference": doc["reference"]["frames"],
        "export_seconds": export_s,
        "cost": cost,
        "sets": rows,
    }


def monitor_cost(mon, session, folder: Path, m: str, frames: int = 256) -> dict:
    """Per-frame cost of the monitor (signals + its share of a 128-frame window's judgement)
    next to ONNX Runtime inference at batch 1, on the same frames (medians of 3 rounds)."""
    from socket_edge.data.readers import read_image
    from socket_edge.monitor.signals import input_signals, output_signals

    files = sorted(folder.rglob("*.png"))[:frames]
    x = np.stack([read_image(p, m) for p in files]).astype(np.float32)
    name = session.get_inputs()[0].name
    infer, watch = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        logits = np.concatenate([session.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])
        infer.append((time.perf_counter() - t0) / len(x))
        t0 = time.perf_counter()
        for i in range(len(x)):  # frame by frame, as a robot loop feeds it
            input_signals(x[i : i + 1], m)
            output_signals(logits[i : i + 1])
        sig = {**input_signals(x[:128], m), **output_signals(logits[:128])[0]}
        pred = output_signals(logits[:128])[1]
        t1 = time.perf_counter()
        mon.judge(sig, pred)
        judge = time.perf_counter() - t1
        watch.append((t1 - t0) / len(x) + judge / 128)
    return {
        "frames": len(x),
        "inference_ms": 1e3 * float(np.median(infer)),
        "monitor_ms": 1e3 * float(np.median(watch)),
    }


def untrained(path: Path, modality: str) -> Path:
    """A resnet18 with random weights for the benchmark's classes (see --untrained)."""
    import torch

    from socket_edge.data.encoding import default_encoding
    from socket_edge.data.shapes import TASK_SHAPES
    from socket_edge.models.checkpoint import build_model, make_meta, save_checkpoint

    torch.manual_seed(0)
    meta = make_meta(
        "resnet18", list(TASK_SHAPES), 64, default_encoding(modality), "benchmark-untrained"
    )
    save_checkpoint(path, build_model(meta).eval(), meta)
    return path


def subset_folder(src: Path, dst: Path, n: int, seed: int, flat: bool = True) -> Path:
    """A seeded subset of the images under ``src`` as symlinks in ``dst`` (flat)."""
    files = sorted(src.rglob("*.png"))
    pick = np.random.default_rng(seed).permutation(len(files))[:n]
    dst.mkdir(parents=True, exist_ok=True)
    for i in sorted(pick):
        (dst / files[i].name).symlink_to(files[i])
    return dst


def paired_subset(src: Path, dst: Path, m: str, n: int, seed: int) -> Path:
    stems = sorted(p.stem for p in (src / "rgb").glob("*.png"))
    pick = sorted(np.random.default_rng(seed).permutation(len(stems))[:n])
    for side in ("rgb", m):
        (dst / side).mkdir(parents=True, exist_ok=True)
        for i in pick:
            (dst / side / f"{stems[i]}.png").symlink_to(src / side / f"{stems[i]}.png")
    return dst


def readapt_modality(m: str, model: Path, data: Path, shifted: Path, args, work: Path) -> dict:
    from socket_edge.adapt import AdaptConfig, adapt
    from socket_edge.evaluate import evaluate_artifact

    shift = SENSOR_SHIFT[m]
    test = shifted / shift / m / "target/test"
    target = subset_folder(
        shifted / shift / m / "target/train", work / f"{m}-new", args.target_frames, 0
    )
    pairs = paired_subset(data / m / "paired", work / f"{m}-pairs", m, args.pairs, 0)
    clean = evaluate_artifact(model, data / m / "target/test", show_progress=False).top1
    before = evaluate_artifact(model, test, show_progress=False).top1
    runs = []
    for seed in args.seeds:
        out = work / f"{m}-readapt-s{seed}.pt"
        cfg = AdaptConfig(epochs=args.epochs, seed=seed, device="cpu")
        t0 = time.perf_counter()
        adapt(args.src, target, out, m, paired=pairs, config=cfg, init=model, show_progress=False)
        seconds = time.perf_counter() - t0
        after = evaluate_artifact(out, test, show_progress=False).top1
        runs.append({"seed": seed, "top1": after, "seconds": seconds})
        print(m, "readapt", runs[-1], file=sys.stderr, flush=True)
    mean_after = float(np.mean([r["top1"] for r in runs]))
    lost = clean - before
    return {
        "shift": shift,
        "clean_top1": clean,
        "shifted_top1": before,
        "readapted": runs,
        "readapted_mean": mean_after,
        "recovered": (mean_after - before) / lost if lost > 0 else None,
        "target_frames": args.target_frames,
        "pairs": args.pairs,
        "epochs": args.epochs,
        "test_frames": sum(1 for _ in test.rglob("*.png")),
    }


def _machine() -> str:
    from results import machine_line

    return machine_line()


def _at(rates: dict, size: int) -> float:
    return rates[size] if size in rates else rates[str(size)]  # keys are strings from JSON


def markdown(results: dict, args) -> str:
    from results import machine_line

    load = results.get("load", os.getloadavg())
    machine = results.get("machine") or machine_line()
    lines = [
        "## Drift monitoring and re-adaptation (benchmarks/monitor.py)",
        "",
        f"Machine: {machine}; load average {load[0]:.1f} (shared with other jobs). "
        f"`python benchmarks/monitor.py {results.get('command', ' '.join(sys.argv[1:]))}`",
        "",
        *([args.note, ""] if args.note else []),
        "Reference statistics: recorded at export on the clean target train set (512 reference "
        "frames, 256 held back for thresholds). Windows drawn **with replacement** "
        f"({results.get('windows', args.windows)} per set and size, seed "
        f"{results.get('seed', args.seed)}) from each test set; "
        "'drifted' at the stated 1 % false-alarm rate per window. *all*: every signal "
        "(input percentiles, valid-pixel share, top probability, entropy, class shares); "
        "*outputs*: top probability, entropy and class shares only. The clean row is the "
        "false-alarm rate (on the clean test set, which neither the reference nor the "
        "thresholds saw).",
        "",
    ]
    if results.get("untrained"):
        lines += [
            "**Untrained models** (random resnet18 weights; no trained model could be made on "
            "this machine in time): top-1 is chance, and only the input signals' detection "
            "means anything (the *all* column; the output signals of a random network are not "
            "those of a deployed model).",
            "",
        ]
    for m, r in results.get("detection", {}).items():
        lines += [
            f"**{m}** ({Path(r['model']).name}; reference {r['reference']['reference']} + "
            f"{r['reference']['held_back']} held-back frames)",
            "",
            "| test set | frames | top-1 | drifted, all: 32 / 128 / 512 | outputs only: 32 / "
            "128 / 512 |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        clean = r["sets"]["clean"]["top1"]
        for name, s in r["sets"].items():
            delta = "" if name == "clean" else f" ({100 * (s['top1'] - clean):+.1f})"
            label = "clean (false alarms)" if name == "clean" else f"shift: {name}"
            fmt = " / ".join(f"{100 * _at(s['all'], w):.0f} %" for w in WINDOWS)
            fmt_o = " / ".join(f"{100 * _at(s['outputs'], w):.0f} %" for w in WINDOWS)
            lines.append(f"| {label} | {s['n']} | {100 * s['top1']:.1f}{delta} | {fmt} | {fmt_o} |")
        c = r.get("cost")
        lines += (
            []
            if c is None
            else [
                "",
                f"Cost: the monitor adds {c['monitor_ms']:.2f} ms per frame (signals frame by frame, "
                f"plus 1/128 of judging a 128-frame window) to ONNX Runtime's {c['inference_ms']:.2f} "
                f"ms per frame at batch 1 (FP32, {c['frames']} frames, median of 3 rounds); the "
                "model's graph and output are unchanged (the reference lives in the sidecar). "
                f"Export with reference statistics took {r['export_seconds']:.0f} s.",
                "",
            ]
        )
    if results.get("readapt"):
        lines += [
            "Re-adaptation after the sensor shift: `adapt --init DEPLOYED --source src.pt` "
            "(SOCKET, published weights), top-1 on the shifted test set; recovered = "
            "(re-adapted - shifted) / (clean - shifted), mean over seeds.",
            "",
            "| model | shift | new frames / TI pairs / epochs | clean | shifted | re-adapted "
            "(per seed) | mean | recovered | seconds per run |",
            "| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: |",
        ]
        for m, r in results["readapt"].items():
            per = ", ".join(f"{100 * x['top1']:.1f}" for x in r["readapted"])
            rec = "n/a (no loss)" if r["recovered"] is None else f"{100 * r['recovered']:.0f} %"
            secs = np.mean([x["seconds"] for x in r["readapted"]])
            lines.append(
                f"| {m} | {r['shift']} | {r['target_frames']} / {r['pairs']} / {r['epochs']} | "
                f"{100 * r['clean_top1']:.1f} | {100 * r['shifted_top1']:.1f} | {per} | "
                f"{100 * r['readapted_mean']:.1f} | {rec} | {secs:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="the clean benchmark (synth DIR)")
    ap.add_argument("--shifted", type=Path, help="folder of synth --shift DIRs")
    ap.add_argument("--from-json", type=Path, help="only rewrite the section from a --json file")
    ap.add_argument("--depth-model", type=Path)
    ap.add_argument("--ir-model", type=Path)
    ap.add_argument("--src", type=Path, help="the RGB source model (for --readapt)")
    ap.add_argument("--windows", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--readapt", action="store_true")
    ap.add_argument("--no-detect", action="store_true")
    ap.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=10, help="adapt's default")
    ap.add_argument("--target-frames", type=int, default=1000)
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--untrained", action="store_true", help="random-weight models (see doc)")
    ap.add_argument("--note", default="", help="how the models were made (into the section)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--results", type=Path, default=None)
    args = ap.parse_args(argv)
    from results import RESULTS, update_section

    if args.from_json:
        results = json.loads(args.from_json.read_text())
        update_section(SECTION, markdown(results, args), args.results or RESULTS)
        return 0
    if args.data is None or args.shifted is None:
        ap.error("--data and --shifted are required (or --from-json)")
    models = {"depth": args.depth_model, "ir": args.ir_model}
    results: dict = {"detection": {}, "readapt": {}}
    if args.json and args.json.exists():
        results.update(json.loads(args.json.read_text()))  # keep the other stage's figures
    results["command"] = " ".join(sys.argv[1:] if argv is None else argv)
    results["windows"], results["seed"] = args.windows, args.seed
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        work = Path(tmp)
        if args.untrained:
            models = {m: untrained(work / f"{m}-untrained.pt", m) for m in models}
            results["untrained"] = True
        for m, model in models.items():
            if model is None:
                continue
            if not args.no_detect:
                results["detection"][m] = detect_modality(
                    m, model, args.data, args.shifted, args, work
                )
            if args.readapt:
                results["readapt"][m] = readapt_modality(
                    m, model, args.data, args.shifted, args, work
                )
            results["load"] = os.getloadavg()
            results["machine"] = _machine()
            if args.json:
                args.json.write_text(json.dumps(results, indent=2) + "\n")
    update_section(SECTION, markdown(results, args), args.results or RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
