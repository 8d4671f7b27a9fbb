"""Adaptation suite: source-only, SHOT, SOCKET (as published) and candidate settings on several
variants of the built-in benchmark, each with several seeds, depth and IR.

Variants (all from one `socket-edge synth` folder; the small and imbalanced ones are subsets of
it, linked, not copied; `ti-unlike` renders its TI pairs with `--ti-shapes unlike`):

- today:        the built-in benchmark as it is.
- small:        300 RGB images per class, 150 target images per class, 50 TI pairs per TI class.
- weak-source:  the same data, the source trained for --weak-steps updates only (~50% RGB val).
- ti-unlike:    TI objects unlike the task objects (thin, flat, open shapes).
- imbalanced:   one target class (the first) 4x as frequent as each other one.

Every source model trains with train-source's defaults (a step budget), every oracle with the
same trainer on the labelled target images. Test splits are the built-in ones. Target labels
are used only to score. Writes the `adaptation_suite` section of benchmarks/RESULTS.md and the
raw figures to --json-out (kept after each run, so an interrupted run continues).

    python benchmarks/adaptation_suite.py --data data/synth
    python benchmarks/adaptation_suite.py --data data/synth --variants small --seeds 0 \\
        --candidate "cosine TI=ti_distance=cosine" --candidate "joint rms=joint_batch=1,bn_scale=rms"
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results import machine_line, update_section  # noqa: E402

VARIANTS = ("today", "small", "weak-source", "ti-unlike", "imbalanced")
BASELINES = ("source-only", "SHOT", "SOCKET")


def link_subset(src: Path, dst: Path, per_class: int | None, first_ratio: int = 1) -> Path:
    """``dst`` mirrors the class folders of ``src`` with the first ``per_class`` images of each
    (the first class keeps ``first_ratio`` x as many as the others); flat folders likewise."""
    if dst.exists():
        return dst
    tmp = dst.with_name(dst.name + ".tmp")
    folders = sorted(d for d in src.iterdir() if d.is_dir()) or [src]
    counts = [len(list(f.iterdir())) for f in folders]
    base = per_class or (min(counts) // first_ratio)
    for i, folder in enumerate(folders):
        keep = base * (first_ratio if i == 0 else 1)
        target = tmp / folder.relative_to(src) if folder != src else tmp
        target.mkdir(parents=True, exist_ok=True)
        for f in sorted(folder.iterdir())[:keep]:
            (target / f.name).symlink_to(f.resolve())
    tmp.rename(dst)
    return dst


def link_pairs(src: Path, dst: Path, modality: str, per_ti_class: int) -> Path:
    """The first ``per_ti_class`` TI pairs of each TI class (stems are CLASS_INDEX)."""
    if dst.exists():
        return dst
    tmp = dst.with_name(dst.name + ".tmp")
    for side in ("rgb", modality):
        (tmp / side).mkdir(parents=True, exist_ok=True)
        for f in sorted((src / side).iterdir()):
            if int(f.stem.rsplit("_", 1)[1]) < per_ti_class:
                (tmp / side / f.name).symlink_to(f.resolve())
    tmp.rename(dst)
    return dst


def variant_data(name: str, data: Path, work: Path, modality: str) -> dict[str, Path]:
    """Folders of one variant: source train/val, target train, TI pairs, target test."""
    d = {
        "source_train": data / "source_rgb" / "train",
        "source_val": data / "source_rgb" / "val",
        "target": data / modality / "target" / "train",
        "paired": data / modality / "paired",
        "test": data / modality / "target" / "test",
    }
    v = work / "data" / name
    if name == "small":
        d["source_train"] = link_subset(d["source_train"], v / "source_train", 300)
        d["target"] = link_subset(d["target"], v / f"{modality}_target", 150)
        d["paired"] = link_pairs(d["paired"], v / f"{modality}_paired", modality, 50)
    elif name == "imbalanced":
        d["target"] = link_subset(d["target"], v / f"{modality}_target", None, first_ratio=4)
    elif name == "ti-unlike":
        from socket_edge.data.synth import SynthConfig, synth

        manifest = json.loads((data / "synth.json").read_text())
        unlike = work / "data" / "ti-unlike-synth"
        if not (unlike / "synth.json").exists():
            settings = {**manifest["config"], "ti_shapes": "unlike"}
            settings["modalities"] = tuple(settings["modalities"])
            synth(unlike, SynthConfig(**settings), show_progress=False)
        d["paired"] = unlike / modality / "paired"
    elif name != "today" and name != "weak-source":
        raise SystemExit(f"unknown variant {name!r} (choose from {', '.join(VARIANTS)})")
    return d


def parse_candidate(text: str) -> tuple[str, dict]:
    """'label=key=value,key=value' -> (label, {key: value}) for AdaptConfig (method socket)."""
    label, _, spec = text.partition("=")
    overrides: dict = {}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        for cast in (int, float):
            try:
                overrides[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            overrides[key] = value
        if key == "joint_batch":
            overrides[key] = bool(int(value))
    return label, overrides


def train(data: Path, out: Path, seed: int, args, modality: str = "rgb", **kw) -> Path:
    from socket_edge.supervised import TrainConfig, train_supervised

    if not out.exists():
        train_supervised(
            data,
            out,
            TrainConfig(seed=seed, device=args.device, **kw),
            modality=modality,
            stage="source" if modality == "rgb" else "oracle",
            show_progress=False,
            resume=True,
        )
    return out


def run_variant(name: str, seed: int, args, candidates: dict[str, dict]) -> dict:
    from socket_edge.adapt import AdaptConfig, adapt
    from socket_edge.evaluate import evaluate_artifact

    work = args.work
    out: dict = {"variant": name, "seed": seed}
    methods = {"source-only": ("source-only", {}), "SHOT": ("shot", {}), "SOCKET": ("socket", {})}
    methods.update({label: ("socket", o) for label, o in candidates.items()})
    for m in args.modalities:
        d = variant_data(name, args.data, work, m)
        src_key = {"small": "small", "weak-source": "weak"}.get(name, "today")
        steps = {"steps": args.weak_steps} if name == "weak-source" else {}
        src = train(d["source_train"], work / f"source-{src_key}-s{seed}.pt", seed, args, **steps)
        out["source_val"] = evaluate_artifact(src, d["source_val"], show_progress=False).top1
        res: dict = {}
        for label, (method, overrides) in methods.items():
            path = work / f"{name}-{m}-{label.replace(' ', '_')}-s{seed}.pt"
            if not path.exists():
                cfg = AdaptConfig(
                    method=method, epochs=args.epochs, seed=seed, device=args.device, **overrides
                )
                adapt(
                    src, d["target"], path, m, paired=d["paired"], config=cfg,
                    show_progress=False, resume=True,
                )  # fmt: skip
            res[label] = evaluate_artifact(path, d["test"], show_progress=False).top1
            print(f"{name} seed {seed} {m} {label}: {res[label]:.3f}", flush=True)
        if m in args.oracle:  # a figure measured before (--oracle), not trained again
            res["oracle"] = args.oracle[m]
            out["oracle_recorded"] = True
        else:
            key = name if name in ("small", "imbalanced") else "today"
            oracle = train(d["target"], work / f"oracle-{key}-{m}-s{seed}.pt", seed, args, m)
            res["oracle"] = evaluate_artifact(oracle, d["test"], show_progress=False).top1
        print(f"{name} seed {seed} {m} oracle: {res['oracle']:.3f}", flush=True)
        out[m] = res
    return out


def table(raw: dict) -> str:
    """One row per variant and modality: each method's mean ± std, the best, the gap closed."""
    mods, labels = raw["modalities"], raw["methods"]
    lines = [
        "## Adaptation suite: variants of the built-in benchmark (`benchmarks/adaptation_suite.py`)",
        "",
        f"top-1 (%) on each variant's target test split, mean ± std over the seeds run; "
        f"{raw['epochs']} adaptation epochs; source and oracle with train-source's defaults. "
        "`best` is the best non-baseline column by mean (chosen with labels: reporting only); "
        "gap closed = (SOCKET - source-only) / (oracle - source-only).",
        f"Machine: {raw['machine']}; torch threads {raw['threads']}.",
        "",
        "| variant | modality | seeds | RGB val | "
        + " | ".join(labels)
        + " | oracle | SOCKET - SHOT | gap closed |",
        "| --- | --- | ---: | ---: | "
        + " | ".join("---:" for _ in labels)
        + " | ---: | ---: | ---: |",
    ]
    by_variant: dict[str, list[dict]] = {}
    for r in raw["runs"]:
        by_variant.setdefault(r["variant"], []).append(r)
    for variant, runs in by_variant.items():
        for m in mods:
            have = [r for r in runs if m in r]
            if not have:
                continue

            def cell(key: str, have=have, m=m) -> str:
                vals = [r[m][key] for r in have if key in r[m]]
                if not vals:
                    return "-"
                sd = f" ± {100 * statistics.stdev(vals):.1f}" if len(vals) > 1 else ""
                return f"{100 * statistics.mean(vals):.1f}{sd}"

            def mean(key: str, have=have, m=m) -> float:
                return statistics.mean(r[m][key] for r in have)

            gap = mean("oracle") - mean("source-only")
            closed = (mean("SOCKET") - mean("source-only")) / gap if gap > 0 else float("nan")
            rgb = statistics.mean(r["source_val"] for r in have)
            lines.append(
                f"| {variant} | {m} | {len(have)} | {100 * rgb:.1f} | "
                + " | ".join(cell(k) for k in labels)
                + f" | {cell('oracle')} | {100 * (mean('SOCKET') - mean('SHOT')):+.1f} | "
                f"{100 * closed:.0f}% |"
            )
    if any(r.get("oracle_recorded") for r in raw["runs"]):
        lines += [
            "",
            "oracle: recorded figures given with --oracle (see the command), not retrained.",
        ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, default=Path("data/synth"))
    p.add_argument("--work", type=Path, default=Path("runs/adaptation_suite"))
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--modalities", default="depth,ir")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--weak-steps", type=int, default=300, help="source updates of weak-source")
    p.add_argument(
        "--candidate",
        action="append",
        default=[],
        help="'LABEL=key=value,...': SOCKET with these AdaptConfig settings, as another column",
    )
    p.add_argument(
        "--oracle",
        default="",
        help="'depth=94.1,ir=89.4': recorded oracle top-1 (%%) to use instead of training one",
    )
    p.add_argument("--device", default=None)
    p.add_argument("--json-out", type=Path, default=HERE / "adaptation_suite.json")
    p.add_argument("--no-write", action="store_true", help="print, do not touch RESULTS.md")
    args = p.parse_args()
    os.environ.setdefault("SOCKET_EDGE_PROGRESS", "0")
    args.modalities = args.modalities.split(",")
    candidates = dict(parse_candidate(c) for c in args.candidate)
    args.oracle = {
        k: float(v) / 100 for k, _, v in (x.partition("=") for x in args.oracle.split(",") if x)
    }
    if not (args.data / "synth.json").exists():
        from socket_edge.data.synth import synth

        synth(args.data)
    raw = {
        "machine": machine_line(),
        "threads": int(os.environ.get("OMP_NUM_THREADS", "0")) or os.cpu_count(),
        "epochs": args.epochs,
        "modalities": args.modalities,
        "methods": [*BASELINES, *candidates],
        "runs": [],
    }
    if args.json_out.exists():  # an interrupted run: keep what it finished
        old = json.loads(args.json_out.read_text())
        if old.get("methods") == raw["methods"] and old.get("epochs") == args.epochs:
            raw["runs"] = old["runs"]
    done = {(r["variant"], r["seed"]) for r in raw["runs"]}
    for variant in args.variants.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            if (variant, seed) in done:
                continue
            raw["runs"].append(run_variant(variant, seed, args, candidates))
            args.json_out.write_text(json.dumps(raw, indent=2))
    text = (
        table(raw)
        + "\n\nCommand: `python benchmarks/adaptation_suite.py "
        + " ".join(sys.argv[1:])
        + "`"
    )
    print(text)
    if not args.no_write:
        update_section("adaptation_suite", text)


if __name__ == "__main__":
    main()
