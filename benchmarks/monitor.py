"""Drift monitoring on ordered streams, and re-adaptation, on the built-in benchmark's shifts.

(1) Detection, as a robot feeds the monitor: each adapted model is exported with reference
    statistics on DATA/<m>/target/train (768 frames). Every scene of a pool is run through the
    model once (ONNX Runtime, FP32); streams are then arranged from the scenes'
    signals, as `socket-edge synth --stream` arranges the frames (socket_edge.data.stream):
    runs of one class, each --dwell seconds (1, 5, 20 s) at --rate Hz (30), walking a shuffled
    list of the class's scenes, and judged window by window (128 frames) by a fresh Monitor at
    its defaults (0.1 false alarms per hour at the rate, drifted at 2 of the last 3 windows
    flagged). Pools: the clean test split DATA/<m>/target/test (the same scenes as
    `synth --stream`), and for each shift SHIFTED/<shift>/<m>/stream/scenes (`synth --stream
    --shift`) or SHIFTED/<shift>/<m>/target/test (`synth --shift`).
    - clean: --hours of ordered stream per dwell and seed (false alarms: windows judged
      drifted, per hour and as a share), the same frames shuffled, and the clean test and train
      splits read in folder (class) order.
    - shifts: 10 windows of the clean stream, then --shift-minutes of the shifted one (the
      same dwell); the share of windows after the change judged drifted, and the frames from
      the change to the first drifted verdict.
    - prior: an ordered stream in which one class takes half the time (class mix only): judged
      drifted by default, and with class_mix_alarm.
(2) Re-adaptation (--readapt): after the sensor shift (depth-sensor for depth, thermal for IR),
    `adapt --init DEPLOYED --source SRC` on --target-frames shifted training frames (a seeded
    subset of SHIFTED/<shift>/<m>/target/train; labels unused) for --epochs epochs, TI pairs a
    seeded subset of --pairs of DATA/<m>/paired; top-1 on the shifted test set, per seed, and
    the share of the shift's accuracy loss recovered.

    python benchmarks/monitor.py --data DATA --shifted SHIFTED \
        --depth-model depth.pt --ir-model ir.pt [--src src.pt --readapt]

--untrained uses an untrained resnet18 (random weights, chance accuracy) for both modalities:
only the input signals' figures mean anything then (a stand-in where no trained model exists).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("SOCKET_EDGE_PROGRESS", "0")

SECTION = "monitor"
WINDOW = 128
DWELLS = (1.0, 5.0, 20.0)
SHIFTS = {"depth": ("depth-sensor", "mount"), "ir": ("thermal", "mount")}
SENSOR_SHIFT = {"depth": "depth-sensor", "ir": "thermal"}
LEAD_WINDOWS = 10  # clean windows before a shift starts


def load_pool(folder: Path, modality: str, classes: list[str], session) -> dict:
    """Every scene of a labelled folder (<class>/<stem>.png) through the model: signals,
    softmax outputs, predictions and labels, in folder order (class by class)."""
    from socket_edge.data.readers import read_image
    from socket_edge.export.parity import ort_logits
    from socket_edge.monitor.reference import softmax
    from socket_edge.monitor.signals import input_signals, output_signals

    files = [(p, i) for i, c in enumerate(classes) for p in sorted((folder / c).glob("*.png"))]
    if not files:
        raise SystemExit(f"{folder}: no <class>/*.png images")
    x = np.stack([read_image(p, modality) for p, _ in files]).astype(np.float32)
    labels = np.array([i for _, i in files])
    logits = ort_logits(session, x)
    out, predicted = output_signals(logits)
    return {
        "signals": {**input_signals(x, modality), **out},
        "probs": softmax(logits),
        "predicted": predicted,
        "labels": labels,
        "top1": float((predicted == labels).mean()),
        "n": len(files),
    }


def subpool(pool: dict, per_class: int) -> dict:
    """The pool's first ``per_class`` scenes of each class (the scenes a smaller render has)."""
    keep = np.concatenate(
        [np.flatnonzero(pool["labels"] == c)[:per_class] for c in np.unique(pool["labels"])]
    )
    out = {k: pool[k][keep] for k in ("probs", "predicted", "labels")}
    out["signals"] = {k: v[keep] for k, v in pool["signals"].items()}
    out["n"] = len(keep)
    out["top1"] = float((out["predicted"] == out["labels"]).mean())
    return out


def judge_stream(mon, pool: dict, frames: np.ndarray) -> list:
    """Window verdicts of a stream of the pool's scenes ``frames`` (indices, time order), from
    a fresh rule state; a last partial window is left out."""
    mon.reset()
    reports = []
    for start in range(0, len(frames) - WINDOW + 1, WINDOW):
        idx = frames[start : start + WINDOW]
        reports.append(
            mon.judge(
                {k: v[idx] for k, v in pool["signals"].items()},
                pool["predicted"][idx],
                first_frame=start,
                probs=pool["probs"][idx],
            )
        )
    return reports


def ordered(pool: dict, seconds: float, dwell: float, rate: float, seed: int, weights=None):
    from socket_edge.data.stream import dwell_runs, stream_frames

    k = int(pool["labels"].max()) + 1
    runs = dwell_runs(k, seconds, rate, (dwell, dwell), seed, weights)
    scenes = [np.flatnonzero(pool["labels"] == c) for c in range(k)]
    return stream_frames(scenes, runs, seed)


def _rates(reports: list, rate: float) -> dict:
    n = len(reports)
    drifted = sum(r.verdict == "drifted" for r in reports)
    return {
        "windows": n,
        "drifted": drifted / n if n else 0.0,
        "flagged": sum(r.flagged for r in reports) / n if n else 0.0,
        "per_hour": drifted / (n * WINDOW / rate / 3600) if n else 0.0,
        "class_mix_differs": sum(r.class_mix["differs"] for r in reports) / n if n else 0.0,
        "fired": {
            name: sum(name in r.fired for r in reports) / n
            for name in sorted({f for r in reports for f in r.fired})
        },
    }


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
    clean = load_pool(data / m / "target/test", m, classes, session)
    train = load_pool(data / m / "target/train", m, classes, session)
    pools = {}
    for shift in SHIFTS[m]:
        for folder in (shifted / shift / m / "stream/scenes", shifted / shift / m / "target/test"):
            if folder.exists():
                pools[shift] = load_pool(folder, m, classes, session)
                break
        else:
            print(f"skipping {shift} for {m}: no pool under {shifted / shift / m}", file=sys.stderr)
    mon = Monitor(doc["reference"], window=WINDOW, frame_rate=args.rate, class_names=classes)
    plain = Monitor(
        doc["reference"],
        window=WINDOW,
        frame_rate=args.rate,
        class_names=classes,
        distinct_classes=1,
    )  # fmt: skip: the plain 2-of-3 rule, for comparison
    mon_mix = Monitor(
        doc["reference"], window=WINDOW, frame_rate=args.rate, class_names=classes,
        class_mix_alarm=True,
    )  # fmt: skip
    rate, seconds = args.rate, args.hours * 3600
    out: dict = {
        "model": str(model),
        "reference": doc["reference"]["frames"],
        "export_seconds": export_s,
        "top1": {"clean": clean["top1"], **{k: v["top1"] for k, v in pools.items()}},
        "scenes": {"clean": clean["n"], **{k: v["n"] for k, v in pools.items()}},
        "rule": mon.rule.describe(),
        "folder_order": {
            "test": _rates(judge_stream(mon, clean, np.arange(clean["n"])), rate),
            "train": _rates(judge_stream(mon, train, np.arange(train["n"])), rate),
        },
        "clean": {},
        "shifts": {},
        "prior": {},
    }
    per_class = min([clean["n"]] + [v["n"] for v in pools.values()]) // len(classes)
    small = subpool(clean, per_class) if per_class < clean["n"] // len(classes) else None
    out["small_pool"] = per_class if small is not None else None
    for dwell in args.dwell:
        runs = {"ordered": [], "shuffled": [], "small": [], "plain": []}
        for seed in range(args.repeats):
            frames = ordered(clean, seconds, dwell, rate, seed)
            runs["ordered"].append(_rates(judge_stream(mon, clean, frames), rate))
            runs["plain"].append(_rates(judge_stream(plain, clean, frames), rate))
            shuffled = np.random.default_rng([seed, 99]).permutation(frames)
            runs["shuffled"].append(_rates(judge_stream(mon, clean, shuffled), rate))
            if small is not None:  # what the shifted pools' fewer scenes alone do
                frames = ordered(small, args.shift_minutes * 60, dwell, rate, seed)
                runs["small"].append(_rates(judge_stream(mon, small, frames), rate))
        out["clean"][dwell] = runs
        print(m, "clean", dwell, runs, file=sys.stderr, flush=True)
        for shift, pool in pools.items():
            res = []
            for seed in range(args.repeats):
                res.append(shift_run(mon, clean, pool, dwell, args, seed))
            out["shifts"].setdefault(shift, {})[dwell] = res
            print(m, shift, dwell, res, file=sys.stderr, flush=True)
        weights = [1.0] * len(classes)
        weights[0] = len(classes) - 1.0  # class 0 half the time
        prior = {"default": [], "class_mix_alarm": []}
        for seed in range(args.repeats):
            frames = ordered(clean, args.shift_minutes * 60, dwell, rate, seed, weights)
            prior["default"].append(_rates(judge_stream(mon, clean, frames), rate))
            prior["class_mix_alarm"].append(_rates(judge_stream(mon_mix, clean, frames), rate))
        out["prior"][dwell] = prior
    out["cost"] = monitor_cost(mon, session, data / m / "target/test", m)
    return out


def shift_run(mon, clean: dict, pool: dict, dwell: float, args, seed: int) -> dict:
    """Clean stream for LEAD_WINDOWS windows, then the shifted pool's stream (the same dwell):
    windows after the change judged drifted, and frames from the change to the first."""
    lead = ordered(clean, LEAD_WINDOWS * WINDOW / args.rate, dwell, args.rate, seed)[
        : LEAD_WINDOWS * WINDOW
    ]
    after = ordered(pool, args.shift_minutes * 60, dwell, args.rate, seed + 1000)
    both = {
        "signals": {
            k: np.concatenate([clean["signals"][k], pool["signals"][k]]) for k in pool["signals"]
        },
        "probs": np.concatenate([clean["probs"], pool["probs"]]),
        "predicted": np.concatenate([clean["predicted"], pool["predicted"]]),
    }
    frames = np.concatenate([lead, after + clean["n"]])
    reports = judge_stream(mon, both, frames)
    before, later = reports[:LEAD_WINDOWS], reports[LEAD_WINDOWS:]
    first = next((i for i, r in enumerate(later) if r.verdict == "drifted"), None)
    res = _rates(later, args.rate)
    res["before_drifted"] = sum(r.verdict == "drifted" for r in before)
    res["frames_to_detect"] = None if first is None else (first + 1) * WINDOW
    return res


def monitor_cost(mon, session, folder: Path, m: str, frames: int = 256) -> dict:
    """Per-frame cost of the monitor (signals + its share of a 128-frame window's judgement)
    next to ONNX Runtime inference at batch 1, on the same frames (medians of 3 rounds)."""
    from socket_edge.data.readers import read_image
    from socket_edge.monitor.reference import softmax
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
        mon.judge(sig, pred, probs=softmax(logits[:128]))
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


def _key(d: dict, dwell: float):
    return d[dwell] if dwell in d else d[str(dwell)]  # keys are strings from JSON


def _pooled(runs: list[dict]) -> dict:
    """Rates of several seeds' runs pooled over their windows."""
    n = sum(r["windows"] for r in runs)
    drifted = sum(r["drifted"] * r["windows"] for r in runs)
    flagged = sum(r["flagged"] * r["windows"] for r in runs)
    return {
        "windows": n,
        "drifted": drifted / n if n else 0.0,
        "flagged": flagged / n if n else 0.0,
    }


def _row(label: str, runs: list[dict], rule: dict) -> str:
    p = _pooled(runs)
    hours = p["windows"] * rule["window"] / rule["frame_rate"] / 3600
    per_hour = p["drifted"] * p["windows"] / hours if hours else 0.0
    return (
        f"| {label} | {p['windows']} ({hours:.2f} h) | {100 * p['drifted']:.2f} % | "
        f"{per_hour:.2f} | {100 * p['flagged']:.1f} % |"
    )


def _fired(runs: list[dict], top: int = 3) -> str:
    """The signals that fired most often over several seeds' windows, with their shares."""
    n = sum(r["windows"] for r in runs)
    names = {name for r in runs for name in r.get("fired", {})}
    share = {x: sum(r.get("fired", {}).get(x, 0.0) * r["windows"] for r in runs) / n for x in names}
    best = sorted(share.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return ", ".join(f"{name} {100 * v:.0f} %" for name, v in best) or "none"


def _previous_readapt(path: Path) -> list[str]:
    """The re-adaptation block and machine line of the section now in RESULTS.md, if any."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    section = re.search(r"<!-- monitor:begin -->(.*?)<!-- monitor:end -->", text, re.S)
    if not section:
        return []
    body = section.group(1)
    start = body.find("Re-adaptation after the sensor shift")
    if start < 0:
        return []
    block = body[start:].strip().splitlines()
    if block and block[0].startswith("Re-adaptation figures kept"):
        return block
    machine = re.search(r"^Machine: ([^;]*)", body, re.M)
    note = (
        "Re-adaptation figures kept from the run before this one (not rerun; its machine: "
        f"{machine.group(1) if machine else 'unknown'}; detection figures of that run are "
        "superseded by the ones above)."
    )
    return [note, "", *block]


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
        "Streams as a robot feeds the monitor: runs of one class, each *dwell* seconds long, at "
        f"{results.get('rate', 30):g} Hz, every frame a test scene of its class (a class's scenes in "
        "shuffled turn, so a 128-frame window holds 128 distinct scenes when the class has that "
        "many), judged in 128-frame windows by the monitor at its defaults: signals (inputs "
        "`valid_share` (depth), `p05`/`p50`/`p95`, `foreground` (IR); outputs `max_prob`, "
        "`entropy`) compared with the reference re-weighted to the window's class mix, a "
        "window *flagged* below the per-window level, *drifted* once 2 of the last 3 windows are flagged and show two "
        "different classes (then while windows stay flagged), the level set for 0.1 false "
        "alarms (windows judged drifted) per hour at the rate. Reference: the clean "
        "target train split (768 frames). "
        f"{results.get('repeats', 1)} stream seed(s) per row; clean streams "
        f"{results.get('hours', 1):g} h each; shifted and prior streams "
        f"{results.get('shift_minutes', 10):g} min each, the shifts after "
        f"{LEAD_WINDOWS} clean windows.",
        "",
    ]
    if results.get("untrained"):
        lines += [
            "**Untrained models** (random resnet18 weights): top-1 is chance, and only the input "
            "signals' figures mean anything.",
            "",
        ]
    for m, r in results.get("detection", {}).items():
        rule = r["rule"]
        top = r["top1"]
        lines += [
            f"**{m}** ({Path(r['model']).name}, top-1 {100 * top['clean']:.1f} % on the clean "
            f"test split; reference {r['reference']['reference']} frames; per-window level "
            f"{rule['window_level']:.4f})",
            "",
            "| clean stream (false alarms) | windows | judged drifted | drifted per hour | "
            "flagged |",
            "| --- | ---: | ---: | ---: | ---: |",
            _row("test split, folder (class) order", [r["folder_order"]["test"]], rule),
            _row("train split (the reference's own frames), class order",
                 [r["folder_order"]["train"]], rule),
        ]  # fmt: skip
        for dwell in results.get("dwells", DWELLS):
            c = _key(r["clean"], dwell)
            lines.append(_row(f"ordered, dwell {dwell:g} s", c["ordered"], rule))
        for dwell in results.get("dwells", DWELLS):
            c = _key(r["clean"], dwell)
            lines.append(_row(f"the same frames shuffled (dwell {dwell:g} s)", c["shuffled"], rule))
        for dwell in results.get("dwells", DWELLS):
            c = _key(r["clean"], dwell)
            if c.get("plain"):
                label = f"ordered, plain 2-of-3 rule (`--distinct-classes 1`), dwell {dwell:g} s"
                lines.append(_row(label, c["plain"], rule))
        if r.get("small_pool"):
            for dwell in results.get("dwells", DWELLS):
                c = _key(r["clean"], dwell)
                label = f"ordered, {r['small_pool']} scenes per class (as the shifted pools)"
                lines.append(_row(f"{label}, dwell {dwell:g} s", c["small"], rule))
        for dwell in results.get("dwells", DWELLS):
            pr = _key(r["prior"], dwell)
            lines.append(
                _row(f"prior: one class half the time, dwell {dwell:g} s", pr["default"], rule)
            )
        for dwell in results.get("dwells", DWELLS):
            pr = _key(r["prior"], dwell)
            lines.append(
                _row(
                    f"prior, with `--class-mix-alarm`, dwell {dwell:g} s",
                    pr["class_mix_alarm"],
                    rule,
                )
            )
        lines += [
            "",
            "| shifted sensor (ordered) | top-1 | dwell | windows after the change | judged "
            "drifted | flagged | frames from the change to drifted (per seed) | signals that "
            "fired (share of windows) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
        ]
        for shift, by_dwell in r["shifts"].items():
            delta = 100 * (top[shift] - top["clean"])
            for dwell in results.get("dwells", DWELLS):
                runs = _key(by_dwell, dwell)
                p = _pooled(runs)
                delays = ", ".join(
                    "never" if x["frames_to_detect"] is None else str(x["frames_to_detect"])
                    for x in runs
                )
                lines.append(
                    f"| {shift} | {100 * top[shift]:.1f} ({delta:+.1f}) | {dwell:g} s | "
                    f"{p['windows']} | {100 * p['drifted']:.1f} % | {100 * p['flagged']:.1f} % | "
                    f"{delays} | {_fired(runs)} |"
                )
        c = r.get("cost")
        if c is not None:
            lines += [
                "",
                f"Cost: the monitor adds {c['monitor_ms']:.2f} ms per frame (signals frame by "
                f"frame, plus 1/128 of judging a 128-frame window) to ONNX Runtime's "
                f"{c['inference_ms']:.2f} ms per frame at batch 1 (FP32, {c['frames']} frames, "
                "median of 3 rounds). Export with reference statistics took "
                f"{r['export_seconds']:.0f} s.",
            ]
        lines.append("")
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
    else:
        lines += [*results.get("previous_readapt", []), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="the clean benchmark (synth DIR)")
    ap.add_argument(
        "--shifted",
        type=Path,
        help="folder of <shift>/ DIRs of synth --stream --shift (or --shift)",
    )
    ap.add_argument("--from-json", type=Path, help="only rewrite the section from a --json file")
    ap.add_argument("--depth-model", type=Path)
    ap.add_argument("--ir-model", type=Path)
    ap.add_argument("--src", type=Path, help="the RGB source model (for --readapt)")
    ap.add_argument(
        "--dwell", type=lambda v: [float(x) for x in v.split(",")], default=list(DWELLS)
    )
    ap.add_argument("--rate", type=float, default=30.0, help="frames per second")
    ap.add_argument("--hours", type=float, default=1.0, help="of each clean stream")
    ap.add_argument("--shift-minutes", type=float, default=10.0, help="of each shifted stream")
    ap.add_argument("--repeats", type=int, default=2, help="stream seeds per row")
    ap.add_argument("--readapt", action="store_true")
    ap.add_argument("--no-detect", action="store_true")
    ap.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    ap.add_argument(
        "--epochs",
        type=int,
        default=10,
        help="10: adapt's default before its update budget (the recorded figures)",
    )
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
    results["command"] = shlex.join(sys.argv[1:] if argv is None else argv)
    results.update(
        dwells=args.dwell, rate=args.rate, hours=args.hours,
        shift_minutes=args.shift_minutes, repeats=args.repeats,
    )  # fmt: skip
    if not args.readapt:
        results["readapt"] = {}
        results["previous_readapt"] = _previous_readapt(args.results or RESULTS)
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
