"""Adaptation benchmark: source-only, SHOT, SOCKET (+ ablations) and the oracle, depth and IR.

For each seed: train the RGB source model, then for each target modality adapt it with every
method and train the oracle (supervised on labelled target data), all scored on the target test
split. Writes the `adaptation` (and `source_gap`) sections of benchmarks/RESULTS.md and the raw
figures to benchmarks/adaptation.json.

    python benchmarks/adaptation.py --data data/synth            # synthesises it if missing
    python benchmarks/adaptation.py --data data/synth --seeds 0 --modalities depth --quick
    python benchmarks/adaptation.py --data data/synth --device cuda --no-oracle --quick  # GPU speed
    python benchmarks/adaptation.py --from-json a.json b.json --cuda-json cuda.json  # tables only
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

METHODS = {  # name -> (method, overrides)
    "source-only": ("source-only", {}),
    "SHOT": ("shot", {}),
    "SOCKET": ("socket", {}),
    "SOCKET w/o TI": ("socket", {"ti_weight": 0.0}),
    "SOCKET w/o BN": ("socket", {"bn_weight": 0.0}),
}


def logged_epochs(ckpt: Path) -> list[dict]:
    """The per-epoch records of a finished run, from the log beside its checkpoint."""
    from socket_edge.training import log_path

    log = log_path(ckpt)
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def run_seed(data: Path, work: Path, seed: int, modalities: list[str], args) -> dict:
    from socket_edge.adapt import AdaptConfig, adapt
    from socket_edge.evaluate import evaluate_artifact
    from socket_edge.supervised import TrainConfig, train_supervised

    work.mkdir(parents=True, exist_ok=True)
    out: dict = {"seed": seed}
    src = work / f"source-s{seed}.pt"
    if not src.exists():
        t0 = time.perf_counter()
        r = train_supervised(
            data / "source_rgb" / "train",
            src,
            TrainConfig(epochs=args.source_epochs, seed=seed, device=args.device),
            val=data / "source_rgb" / "val",
            show_progress=False,
        )
        out["source_seconds"] = time.perf_counter() - t0
        out["source_val"] = r["val_acc"]
    else:  # an earlier, interrupted run of this script trained it already
        out["source_seconds"] = sum(h["seconds"] for h in logged_epochs(src)) or None
        out["source_val"] = evaluate_artifact(
            src, data / "source_rgb" / "val", show_progress=False
        ).top1
    for m in modalities:
        test = data / m / "target" / "test"
        res: dict = {}
        for name, (method, overrides) in METHODS.items():
            if name.startswith("SOCKET w/o") and (args.quick or seed not in args.ablation_seeds):
                continue
            cfg = AdaptConfig(
                method=method, epochs=args.epochs, seed=seed, device=args.device, **overrides
            )
            path = work / f"{m}-{name.replace(' ', '_').replace('/', '')}-s{seed}.pt"
            if path.exists():  # finished by an earlier, interrupted run of this script
                hist = logged_epochs(path)
            else:  # resumes from the last epoch's state where one was killed mid-run
                hist = adapt(
                    src,
                    data / m / "target" / "train",
                    path,
                    m,
                    paired=data / m / "paired",
                    config=cfg,
                    show_progress=False,
                    resume=True,
                )["history"]
            acc = evaluate_artifact(path, test, show_progress=False).top1
            res[name] = {
                "top1": acc,
                "seconds_per_epoch": statistics.mean(h["seconds"] for h in hist) if hist else 0.0,
                "images_per_s": statistics.mean(h["images_per_s"] for h in hist) if hist else 0.0,
            }
            print(f"seed {seed} {m:5s} {name:14s} top-1 {acc:.3f}", flush=True)
        out[m] = res
        if args.no_oracle:
            continue
        oracle = work / f"{m}-oracle-s{seed}.pt"
        if not oracle.exists():
            train_supervised(
                data / m / "target" / "train",
                oracle,
                TrainConfig(epochs=args.oracle_epochs, seed=seed, device=args.device),
                modality=m,
                stage="oracle",
                show_progress=False,
            )
        res["oracle"] = {"top1": evaluate_artifact(oracle, test, show_progress=False).top1}
        print(f"seed {seed} {m:5s} {'oracle':14s} top-1 {res['oracle']['top1']:.3f}", flush=True)
        out[m] = res
    return out


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def tables(
    raw: dict, modalities: list[str], cuda: dict | None = None, cpu_speed: dict | None = None
) -> tuple[str, str]:
    """The adaptation and source-gap sections from the raw figures of a run.

    ``cuda`` and ``cpu_speed`` are the raw figures of speed runs (``--no-oracle``): the first adds
    CUDA columns to the speed table, the second replaces the CPU columns (a run on a quiet CPU).
    """
    runs = raw["runs"]
    n = len(runs)
    names = [k for k in [*METHODS, "oracle"] if any(k in r[modalities[0]] for r in runs)]
    lines = [
        "## Adaptation: source-only, SHOT, SOCKET and ablations (`benchmarks/adaptation.py`)",
        "",
        f"Built-in benchmark (`socket-edge synth`, per-class {raw['per_class']}), resnet18 at 64x64, "
        f"{raw['epochs']} adaptation epochs, top-1 (%) on the target test split, mean ± std over {n} "
        f"seed(s) ({', '.join(str(r['seed']) for r in runs)}).",
        f"Machine: {raw['machine']}; device {raw['device']}.",
        "",
        "| method | " + " | ".join(modalities) + " |",
        "| --- | " + " | ".join("---:" for _ in modalities) + " |",
    ]
    for name in names:
        cells = [mean_std([r[m][name]["top1"] for r in runs if name in r[m]]) for m in modalities]
        seeds = [r["seed"] for r in runs if name in r[modalities[0]]]
        label = name if len(seeds) == n else f"{name} (seed {', '.join(map(str, seeds))})"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| acceptance (mean over seeds) | " + " | ".join(modalities) + " |",
        "| --- | " + " | ".join("---:" for _ in modalities) + " |",
    ]
    checks = {
        "SOCKET - SHOT (points, >= 3)": [],
        "SOCKET - source-only (points, >= 10)": [],
        "gap closed (SOCKET - source-only) / (oracle - source-only) (>= 60%)": [],
    }
    for m in modalities:
        mean = {k: statistics.mean(r[m][k]["top1"] for r in runs if k in r[m]) for k in names}
        checks["SOCKET - SHOT (points, >= 3)"].append(
            f"{100 * (mean['SOCKET'] - mean['SHOT']):+.1f}"
        )
        checks["SOCKET - source-only (points, >= 10)"].append(
            f"{100 * (mean['SOCKET'] - mean['source-only']):+.1f}"
        )
        gap = mean["oracle"] - mean["source-only"]
        closed = (mean["SOCKET"] - mean["source-only"]) / gap if gap > 0 else float("nan")
        checks["gap closed (SOCKET - source-only) / (oracle - source-only) (>= 60%)"].append(
            f"{100 * closed:.0f}%"
        )
    for k, v in checks.items():
        lines.append(f"| {k} | " + " | ".join(v) + " |")
    lines += [
        "",
        "Adaptation speed (mean over seeds and epochs; images/s = target + TI images through forward "
        "and backward per second; s/epoch includes the pseudo-label refresh):",
        "",
    ]
    cpu = cpu_speed or raw
    sources = [(" CPU", cpu["runs"])] + ([(" CUDA+AMP", cuda["runs"])] if cuda else [])
    head = [f"{m}{tag} s/epoch | {m}{tag} images/s" for tag, _ in sources for m in modalities]
    lines += ["| method | " + " | ".join(head) + " |", "| --- |" + " ---: | ---: |" * len(head)]
    for name in names:
        if name in ("oracle", "source-only"):
            continue
        cells = []
        for _, source in sources:
            for m in modalities:
                have = [r[m][name] for r in source if name in r[m]]
                if not have:  # e.g. a speed run without the ablations
                    cells += ["-", "-"]
                    continue
                cells.append(f"{statistics.mean(h['seconds_per_epoch'] for h in have):.1f}")
                cells.append(f"{statistics.mean(h['images_per_s'] for h in have):.0f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"CPU speed: {len(cpu['runs'])} seed(s) of "
        + ("a separate speed run of this script (`--no-oracle`)" if cpu_speed else "the run above")
        + f" with {cpu.get('threads', '?')} torch thread(s), {cpu['machine']}"
        + (f"; {cpu['note']}" if cpu.get("note") else "")
        + ".",
    ]
    if cuda:
        acc = ", ".join(
            f"{m} SOCKET {100 * statistics.mean(r[m]['SOCKET']['top1'] for r in cuda['runs']):.1f}%"
            for m in modalities
        )
        seeds = ", ".join(str(r["seed"]) for r in cuda["runs"])
        lines += [
            "",
            f"CUDA+AMP: one run of this script with `--device cuda` (seed {seeds}) on "
            f"{cuda['machine']}; its top-1: {acc}.",
        ]
    adaptation = "\n".join(lines)
    gap_lines = [
        "## The modality gap: RGB model on depth/IR vs the oracle (`benchmarks/adaptation.py`)",
        "",
        "The room adaptation has to close: the RGB source model scored on depth and IR as is (source-only) "
        f"against the oracle trained on labelled depth/IR. Mean ± std over {n} seed(s); machine: {raw['machine']}.",
        "",
        "| | RGB val | " + " | ".join(f"{m} source-only | {m} oracle" for m in modalities) + " |",
        "| --- | ---: | " + " | ".join("---: | ---:" for _ in modalities) + " |",
        "| top-1 (%) | "
        + mean_std([r["source_val"] for r in runs])
        + " | "
        + " | ".join(
            f"{mean_std([r[m]['source-only']['top1'] for r in runs])} | {mean_std([r[m]['oracle']['top1'] for r in runs])}"
            for m in modalities
        )
        + " |",
    ]
    return adaptation, "\n".join(gap_lines)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, default=Path("data/synth"))
    p.add_argument("--work", type=Path, default=Path("runs/adaptation"))
    p.add_argument("--per-class", type=int, default=600, help="synth size if --data is missing")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--modalities", default="depth,ir")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--source-epochs", type=int, default=16)
    p.add_argument("--oracle-epochs", type=int, default=16)
    p.add_argument("--device", default=None)
    p.add_argument("--quick", action="store_true", help="skip the ablations")
    p.add_argument(
        "--ablation-seeds",
        default="0,1,2",
        help="seeds that also run the ablations (they double the run time)",
    )
    p.add_argument("--no-oracle", action="store_true", help="skip the oracle (speed runs)")
    p.add_argument("--no-write", action="store_true", help="print, do not touch RESULTS.md")
    p.add_argument("--json-out", type=Path, default=HERE / "adaptation.json", help="raw figures")
    p.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        default=None,
        help="rebuild the tables from earlier runs' raw figures (their seeds merged) instead of "
        "running",
    )
    p.add_argument(
        "--cpu-speed-json",
        type=Path,
        default=None,
        help="raw figures of a speed run on a quiet CPU, used for the CPU speed columns",
    )
    p.add_argument("--note", default=None, help="a remark stored with the raw figures")
    p.add_argument(
        "--cuda-json",
        type=Path,
        default=None,
        help="raw figures of a --device cuda run, added to the speed table",
    )
    args = p.parse_args()
    os.environ.setdefault("SOCKET_EDGE_PROGRESS", "0")
    modalities = args.modalities.split(",")
    args.ablation_seeds = {int(x) for x in args.ablation_seeds.split(",") if x}
    cuda = json.loads(args.cuda_json.read_text()) if args.cuda_json else None
    cpu_speed = json.loads(args.cpu_speed_json.read_text()) if args.cpu_speed_json else None
    if args.from_json:
        parts = [json.loads(f.read_text()) for f in args.from_json]
        raw = {**parts[0], "runs": [r for part in parts for r in part["runs"]]}
        publish(raw, modalities, args, cuda, cpu_speed)
        return
    if not (args.data / "synth.json").exists():
        from socket_edge.data.synth import SynthConfig, synth

        synth(args.data, SynthConfig(per_class=args.per_class))
    manifest = json.loads((args.data / "synth.json").read_text())
    args.per_class = manifest["config"]["per_class"]
    raw = {
        "machine": machine_line(),
        "device": args.device or "auto",
        "threads": int(os.environ.get("OMP_NUM_THREADS", "0")) or os.cpu_count(),
        "per_class": args.per_class,
        "note": args.note,
        "epochs": args.epochs,
        "runs": [],
    }
    for s in args.seeds.split(","):
        raw["runs"].append(run_seed(args.data, args.work, int(s), modalities, args))
        args.json_out.write_text(json.dumps(raw, indent=2))  # each seed kept as soon as it ends
    if not args.no_oracle:  # without the oracle there is no gap to report: raw figures only
        publish(raw, modalities, args, cuda, cpu_speed)


def publish(
    raw: dict, modalities: list[str], args, cuda: dict | None, cpu_speed: dict | None = None
) -> None:
    adaptation, gap = tables(raw, modalities, cuda, cpu_speed)
    adaptation += "\n\nCommand: `python benchmarks/adaptation.py " + " ".join(sys.argv[1:]) + "`"
    if args.from_json:
        adaptation += (
            "; the raw figures come from one `--seeds N --ablation-seeds 0 --json-out "
            "benchmarks/adaptation-sN.json --no-write` run per seed"
        )
    print(gap + "\n\n" + adaptation)
    if not args.no_write:
        update_section("source_gap", gap)
        update_section("adaptation", adaptation)


if __name__ == "__main__":
    main()
