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
import math
import os
import re
import statistics
import sys
from dataclasses import dataclass
from functools import partial
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


def source_key(variant: str) -> str:
    """Which source model a variant adapts from (several variants share today's)."""
    return {"small": "small", "weak-source": "weak"}.get(variant, "today")


def oracle_key(variant: str) -> str:
    """Which oracle a variant is scored against (the oracle depends on the target set only)."""
    return variant if variant in ("small", "imbalanced") else "today"


@dataclass(frozen=True)
class Training:
    """One supervised run: a source model (RGB) or an oracle (labelled target images), and the
    folder it is scored on (RGB val for a source, the target test split for an oracle)."""

    data: Path
    out: Path
    score_on: Path
    seed: int
    modality: str = "rgb"
    steps: int | None = None


@dataclass(frozen=True)
class Cell:
    """One variant x seed x modality: adapt with every method, score against the oracle."""

    variant: str
    seed: int
    modality: str
    folders: dict[str, Path]
    source: Path
    oracle: Path | None  # None: --oracle gave a recorded figure


def plan(args, variants: list[str], seeds: list[int]) -> tuple[list[Training], list[Cell]]:
    """Every training run (deduplicated: they write shared files) and every cell, in order."""
    trainings: dict[Path, Training] = {}
    cells = []
    for variant in variants:
        for seed in seeds:
            for m in args.modalities:
                d = variant_data(variant, args.data, args.work, m)
                steps = args.weak_steps if variant == "weak-source" else args.train_steps
                src = args.work / f"source-{source_key(variant)}-s{seed}.pt"
                trainings.setdefault(
                    src, Training(d["source_train"], src, d["source_val"], seed, steps=steps)
                )
                oracle = None
                if m not in args.oracle:
                    oracle = args.work / f"oracle-{oracle_key(variant)}-{m}-s{seed}.pt"
                    trainings.setdefault(
                        oracle, Training(d["target"], oracle, d["test"], seed, m, args.train_steps)
                    )
                cells.append(Cell(variant, seed, m, d, src, oracle))
    return list(trainings.values()), cells


def run_training(job: Training, device: str | None) -> float:
    """Train ``job.out`` unless it exists; its top-1 on ``job.score_on`` (once per model)."""
    from socket_edge.evaluate import evaluate_artifact
    from socket_edge.supervised import TrainConfig, train_supervised

    if not job.out.exists():
        steps = {"steps": job.steps} if job.steps is not None else {}
        train_supervised(
            job.data,
            job.out,
            TrainConfig(seed=job.seed, device=device, **steps),
            modality=job.modality,
            stage="source" if job.modality == "rgb" else "oracle",
            show_progress=False,
            resume=True,
        )
    return evaluate_artifact(job.out, job.score_on, show_progress=False).top1


def run_cell(cell: Cell, args, candidates: dict[str, dict]) -> dict:
    """Adapt with every method (resuming what a killed run left) and score each on the test set;
    the source and oracle are scored once, by their training jobs."""
    from socket_edge.adapt import AdaptConfig, adapt
    from socket_edge.evaluate import evaluate_artifact
    from socket_edge.guard import DivergenceError

    methods = {"source-only": ("source-only", {}), "SHOT": ("shot", {}), "SOCKET": ("socket", {})}
    methods.update({label: ("socket", o) for label, o in candidates.items()})
    d, m, seed = cell.folders, cell.modality, cell.seed
    res: dict = {}
    for label, (method, overrides) in methods.items():
        path = args.work / f"{cell.variant}-{m}-{re.sub(r'[^A-Za-z0-9.-]+', '_', label)}-s{seed}.pt"
        if not path.exists():
            cfg = AdaptConfig(
                method=method, epochs=args.epochs, seed=seed, device=args.device, **overrides
            )
            try:
                adapt(
                    cell.source, d["target"], path, m, paired=d["paired"], config=cfg,
                    show_progress=False, resume=True,
                )  # fmt: skip
            except DivergenceError as exc:  # a result of the method, not a failure of the suite
                res[label] = None
                res.setdefault("diverged", {})[label] = str(exc)
                print(f"{cell.variant} seed {seed} {m} {label}: diverged ({exc})", flush=True)
                continue
        res[label] = evaluate_artifact(path, d["test"], show_progress=False).top1
        print(f"{cell.variant} seed {seed} {m} {label}: {res[label]:.3f}", flush=True)
    return res


def _threads(jobs: int) -> None:
    """Each of ``jobs`` worker processes gets its share of the cores (set before torch loads)."""
    share = max(1, (os.cpu_count() or 1) // jobs)
    os.environ["OMP_NUM_THREADS"] = str(share)


def run_all(fn, items: list, jobs: int, on_done=None) -> list:
    """``fn`` over ``items``: in this process, or in ``jobs`` fresh processes (one per core share)."""
    if jobs <= 1:
        out = []
        for item in items:
            out.append(fn(item))
            if on_done:
                on_done(item, out[-1])
        return out
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("spawn")  # fresh interpreters: no forked torch/CUDA state
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_threads, initargs=(jobs,)) as pool:
        futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
        results: list = [None] * len(items)
        for future in as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            if on_done:
                on_done(items[i], results[i])
        return results


def best(runs: list[dict], modality: str) -> str:
    """The candidate (non-baseline) column with the highest mean top-1, or '-'."""
    means = {}
    for label in {k for r in runs for k in r[modality]} - {*BASELINES, "oracle", "diverged"}:
        vals = [r[modality].get(label) for r in runs]
        if None not in vals:
            means[label] = statistics.mean(vals)
    if not means:
        return "-"
    label = max(means, key=means.__getitem__)
    return f"{label} ({100 * means[label]:.1f})"


def table(raw: dict) -> str:
    """One row per variant and modality: each method's mean ± std, the best, the gap closed."""
    mods, labels = raw["modalities"], raw["methods"]
    lines = [
        "## Adaptation suite: variants of the built-in benchmark (`benchmarks/adaptation_suite.py`)",
        "",
        f"top-1 (%) on each variant's target test split, mean ± std over the seeds run; "
        f"{raw['epochs']} adaptation epochs; source and oracle with train-source's defaults. "
        "`best` is the best candidate column by mean (chosen with labels: reporting only); "
        "gap closed = (SOCKET - source-only) / (oracle - source-only).",
        f"Machine: {raw['machine']}; {raw.get('jobs', 1)} process(es) at once, "
        f"torch threads {raw['threads']} each.",
        "",
        "| variant | modality | seeds | RGB val | "
        + " | ".join(labels)
        + " | oracle | SOCKET - SHOT | gap closed | best |",
        "| --- | --- | ---: | ---: | "
        + " | ".join("---:" for _ in labels)
        + " | ---: | ---: | ---: | --- |",
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
                if None in vals:  # stopped by the divergence guard: no model to score
                    return f"diverged ({vals.count(None)} of {len(vals)})"
                sd = f" ± {100 * statistics.stdev(vals):.1f}" if len(vals) > 1 else ""
                return f"{100 * statistics.mean(vals):.1f}{sd}"

            def mean(key: str, have=have, m=m) -> float:
                vals = [r[m][key] for r in have]
                return float("nan") if None in vals else statistics.mean(vals)

            gap = mean("oracle") - mean("source-only")
            closed = (mean("SOCKET") - mean("source-only")) / gap if gap > 0 else float("nan")
            rgb = statistics.mean(r["source_val"] for r in have)
            edge = 100 * (mean("SOCKET") - mean("SHOT"))
            lines.append(
                f"| {variant} | {m} | {len(have)} | {100 * rgb:.1f} | "
                + " | ".join(cell(k) for k in labels)
                + f" | {cell('oracle')} | {'-' if math.isnan(edge) else f'{edge:+.1f}'} | "
                f"{'-' if math.isnan(closed) else f'{100 * closed:.0f}%'} | {best(have, m)} |"
            )
    diverged = [
        f"{r['variant']} seed {r['seed']} {m} {label}: {why}"
        for r in raw["runs"]
        for m in mods
        for label, why in r.get(m, {}).get("diverged", {}).items()
    ]
    if diverged:
        lines += ["", "Stopped by the divergence guard (no model written):", ""]
        lines += [f"- {d}" for d in diverged]
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
    p.add_argument(
        "--train-steps",
        type=int,
        default=None,
        help="updates of every source and oracle (default: train-source's; change for smoke runs)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs in this many processes at once, each with its share of the cores (a GPU is "
        "shared by all); trainings first, then one job per variant x seed x modality",
    )
    p.add_argument("--device", default=None)
    p.add_argument("--json-out", type=Path, default=HERE / "adaptation_suite.json")
    p.add_argument("--results", type=Path, default=None, help="default: benchmarks/RESULTS.md")
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
        "threads": (
            max(1, (os.cpu_count() or 1) // args.jobs)
            if args.jobs > 1
            else int(os.environ.get("OMP_NUM_THREADS", "0")) or os.cpu_count()
        ),
        "jobs": args.jobs,
        "epochs": args.epochs,
        "train_steps": args.train_steps,
        "modalities": args.modalities,
        "methods": [*BASELINES, *candidates],
        "runs": [],
    }
    if args.json_out.exists():  # an interrupted run: keep what it finished
        old = json.loads(args.json_out.read_text())
        same = ("methods", "epochs", "train_steps", "modalities")
        if all(old.get(k) == raw[k] for k in same):
            raw["runs"] = old["runs"]
    runs = {(r["variant"], r["seed"]): r for r in raw["runs"]}
    trainings, cells = plan(args, args.variants.split(","), [int(x) for x in args.seeds.split(",")])
    cells = [c for c in cells if c.modality not in runs.get((c.variant, c.seed), {})]
    needed = {c.source for c in cells} | {c.oracle for c in cells}
    todo = [t for t in trainings if t.out in needed]
    top1 = run_all(partial(run_training, device=args.device), todo, args.jobs)
    scores = dict(zip([t.out for t in todo], top1, strict=True))

    def keep(cell: Cell, result: dict) -> None:  # after each cell: an interrupted run continues
        m = cell.modality
        result["oracle"] = args.oracle[m] if cell.oracle is None else scores[cell.oracle]
        print(f"{cell.variant} seed {cell.seed} {m} oracle: {result['oracle']:.3f}", flush=True)
        run = runs.setdefault(
            (cell.variant, cell.seed), {"variant": cell.variant, "seed": cell.seed}
        )
        recorded = run.get("oracle_recorded", False) or cell.oracle is None
        run.update({m: result, "source_val": scores[cell.source]}, oracle_recorded=recorded)
        order = {v: i for i, v in enumerate(VARIANTS)}
        raw["runs"] = sorted(runs.values(), key=lambda r: (order.get(r["variant"], 99), r["seed"]))
        tmp = args.json_out.with_name(args.json_out.name + ".tmp")
        tmp.write_text(json.dumps(raw, indent=2))
        os.replace(tmp, args.json_out)

    run_all(partial(run_cell, args=args, candidates=candidates), cells, args.jobs, keep)
    text = (
        table(raw)
        + "\n\nCommand: `python benchmarks/adaptation_suite.py "
        + " ".join(sys.argv[1:])
        + "`"
    )
    print(text)
    if not args.no_write:
        update_section("adaptation_suite", text, *([args.results] if args.results else []))


if __name__ == "__main__":
    main()
