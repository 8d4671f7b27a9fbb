"""Adaptation suite: source-only, SHOT, SOCKET (as published) and candidate settings on several
variants of the built-in benchmark, each with several seeds, depth and IR.

The variants are robot-sized (what a team collects in an afternoon), subsets of one
`socket-edge synth` folder, linked, not copied:

- base:         300 RGB images per class (source), 200 unlabelled target images per class,
                400 TI pairs (50 per TI class), and 200 more TI pairs held out of adaptation for
                the label-free rule.
- weak-source:  the same data, the source stopped after the first epoch whose RGB val reaches
                --weak-val (50%): a step budget cannot size it, since when a source leaves its
                plateau at chance varies by seed (1,300 updates gave 62, 32 and 25%).
- ti-unlike:    base, with 400 TI pairs of objects unlike the task (thin, flat, open shapes:
                `--ti-shapes unlike`, 100 per TI class).
- imbalanced:   base, with the first target class 4x as frequent as each other one (test balanced).
- today:        the built-in benchmark at full size, first seed only (a confirmation).

Sources and oracles are shared wherever their data are: one source per source set and seed (base
serves base, ti-unlike and imbalanced), one oracle per target set, trained with seed 0 only.
Every source trains with train-source's defaults (a step budget), every oracle with the same
trainer on the labelled target images. Test splits are the built-in ones. Target labels are used
only to score: each adapted model also gets label-free scores (`validators`) on the unlabelled
target images and on the held-out TI pairs, and the label-free rule (the highest mean agreement
with the source model on the held-out pairs) picks among the candidates.

Cost on a 2-core AVX-512 CPU, one thread per process, --jobs 2 (seed 0 measured; the rest
estimated from it): a source or oracle ~30 min (3,000 steps of 32; a weak source, stopped at 50%
RGB val, 10-15 epochs, ~10 min); at adapt's default length (600 updates: 20 epochs of a base
cell's 2,000 images, 40 of the imbalanced cell's 975) a SHOT run ~13 min and a SOCKET run ~19 min
on a base cell, about half that on an imbalanced one (a SOCKET run that diverges stops early); a
balanced candidate whose unbalanced twin ran takes ~1 min (it is derived from the twin's model);
the 13 trainings plus 3 seeds x 4 robot variants x 2 modalities with SHOT, SOCKET and the default
is ~24 hours of this machine, ~12 with two processes (--epochs 10: about half); the raw JSON is
written after each cell, so a killed run continues.

    python benchmarks/adaptation_suite.py --data data/synth --jobs 2
    python benchmarks/adaptation_suite.py --data data/synth --variants base --seeds 0 \\
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
from dataclasses import dataclass, fields, replace
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results import machine_line, update_section  # noqa: E402

VARIANTS = ("base", "weak-source", "ti-unlike", "imbalanced", "today")
# Robot size: images per class of the source and the target set, TI pairs in all.
ROBOT = {"source": 300, "target": 200, "ti_pairs": 400, "held_out_pairs": 200}
BASELINES = ("source-only", "SHOT", "SOCKET")
DEFAULT = "rms-lr1-ti1-bal"  # the candidate that `adapt`'s default method (socket-rms) runs


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


def link_pairs(src: Path, dst: Path, modality: str, per_ti_class: int, start: int = 0) -> Path:
    """TI pairs ``start`` to ``start + per_ti_class`` of each TI class (stems are CLASS_INDEX)."""
    if dst.exists():
        return dst
    tmp = dst.with_name(dst.name + ".tmp")
    for side in ("rgb", modality):
        (tmp / side).mkdir(parents=True, exist_ok=True)
        for f in sorted((src / side).iterdir()):
            if start <= int(f.stem.rsplit("_", 1)[1]) < start + per_ti_class:
                (tmp / side / f.name).symlink_to(f.resolve())
    tmp.rename(dst)
    return dst


def _per_ti_class(synth_root: Path, pairs: int) -> int:
    """TI pairs per TI class that make ``pairs`` in all."""
    classes = json.loads((synth_root / "synth.json").read_text())["ti_classes"]
    return max(1, pairs // len(classes))


def _unlike_synth(data: Path, work: Path) -> Path:
    """The same benchmark rendered with TI objects unlike the task (once, shared by all cells)."""
    from socket_edge.data.synth import SynthConfig, synth

    unlike = work / "data" / "ti-unlike-synth"
    if not (unlike / "synth.json").exists():
        settings = {**json.loads((data / "synth.json").read_text())["config"]}
        settings |= {"ti_shapes": "unlike", "modalities": tuple(settings["modalities"])}
        synth(unlike, SynthConfig(**settings), show_progress=False)
    return unlike


def variant_data(
    name: str, data: Path, work: Path, modality: str, sizes: dict[str, int] = ROBOT
) -> dict[str, Path]:
    """Folders of one variant: source train/val, target train, TI pairs, target test, and (robot
    variants, where the data have them) TI pairs held out of adaptation."""
    if name not in VARIANTS:
        raise SystemExit(f"unknown variant {name!r} (choose from {', '.join(VARIANTS)})")
    d = {
        "source_train": data / "source_rgb" / "train",
        "source_val": data / "source_rgb" / "val",
        "target": data / modality / "target" / "train",
        "paired": data / modality / "paired",
        "test": data / modality / "target" / "test",
    }
    if name == "today":
        return d
    robot = work / "data" / "robot"
    d["source_train"] = link_subset(d["source_train"], robot / "source_train", sizes["source"])
    if name == "imbalanced":
        # the first class: every image the data has (up to 4x robot size); the others a quarter
        first = sorted(p for p in d["target"].iterdir() if p.is_dir())[0]
        per = min(4 * sizes["target"], len(list(first.iterdir()))) // 4
        d["target"] = link_subset(d["target"], robot / f"{modality}_target_imbalanced", per, 4)
    else:
        d["target"] = link_subset(d["target"], robot / f"{modality}_target", sizes["target"])
    unlike = name == "ti-unlike"
    pairs_from = _unlike_synth(data, work) if unlike else data
    folder = f"{modality}_paired{'_unlike' if unlike else ''}"
    per = _per_ti_class(pairs_from, sizes["ti_pairs"])
    d["paired"] = link_pairs(pairs_from / modality / "paired", robot / folder, modality, per)
    held_out = link_pairs(
        pairs_from / modality / "paired",
        robot / f"{folder}_held_out",
        modality,
        _per_ti_class(pairs_from, sizes["held_out_pairs"]),
        start=per,
    )
    if any((held_out / "rgb").iterdir()):  # none where the data have no pairs beyond these
        d["held_out"] = held_out
    return d


def parse_candidate(text: str) -> tuple[str, dict]:
    """'label=key=value,key=value' -> (label, {key: value}) for AdaptConfig (method socket)."""
    from socket_edge.adapt import AdaptConfig

    types = {f.name: f.type for f in fields(AdaptConfig)}
    label, _, spec = text.partition("=")
    overrides: dict = {}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        if key not in types:
            raise SystemExit(f"--candidate {label}: AdaptConfig has no setting {key!r}")
        if types[key] in ("bool", bool):
            overrides[key] = value.lower() in ("1", "true", "yes")
            continue
        for cast in (int, float):
            try:
                overrides[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            overrides[key] = value
    return label, overrides


def source_key(variant: str) -> str:
    """Which source model a variant adapts from (robot-sized variants share base's)."""
    return {"today": "today", "weak-source": "weak"}.get(variant, "base")


def source_path(work: Path, variant: str, seed: int) -> Path:
    return work / f"source-{source_key(variant)}-s{seed}.pt"


def oracle_key(variant: str) -> str:
    """Which oracle a variant is scored against (the oracle depends on the target set only)."""
    return variant if variant in ("today", "imbalanced") else "base"


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
    stop_at_val: float | None = None  # stop at the first epoch whose top-1 on score_on reaches it


@dataclass(frozen=True)
class Cell:
    """One variant x seed x modality: adapt with every method, score against the oracle."""

    variant: str
    seed: int
    modality: str
    folders: dict[str, Path]
    source: Path
    oracle: Path | None  # None: --oracle gave a recorded figure
    previous: dict | None = None  # what an earlier run of this cell already scored


def plan(args, variants: list[str], seeds: list[int]) -> tuple[list[Training], list[Cell]]:
    """Every training run (deduplicated: they write shared files) and every cell, seed by seed
    (the first seed's work comes first). `today` runs with the first seed only; every oracle is
    trained once, with seed 0."""
    trainings: dict[Path, Training] = {}
    cells = []
    for seed in seeds:
        for variant in variants:
            if variant == "today" and seed != seeds[0]:
                continue
            for m in args.modalities:
                d = variant_data(variant, args.data, args.work, m, args.sizes)
                weak = args.weak_val if variant == "weak-source" else None
                src = source_path(args.work, variant, seed)
                source = Training(
                    d["source_train"],
                    src,
                    d["source_val"],
                    seed,
                    steps=args.train_steps,
                    stop_at_val=weak,
                )
                trainings.setdefault(src, source)
                oracle = None
                if m not in args.oracle:
                    oracle = args.work / f"oracle-{oracle_key(variant)}-{m}.pt"
                    trainings.setdefault(
                        oracle, Training(d["target"], oracle, d["test"], 0, m, args.train_steps)
                    )
                cells.append(Cell(variant, seed, m, d, src, oracle))
    return list(trainings.values()), cells


def run_training(job: Training, device: str | None) -> dict:
    """Train ``job.out`` unless it exists; its top-1 and per-class top-1 on ``job.score_on``."""
    from socket_edge.evaluate import evaluate_artifact
    from socket_edge.supervised import TrainConfig, train_supervised

    if not job.out.exists():
        steps = {"steps": job.steps} if job.steps is not None else {}
        train_supervised(
            job.data,
            job.out,
            TrainConfig(seed=job.seed, device=device, stop_at_val=job.stop_at_val, **steps),
            modality=job.modality,
            val=job.score_on if job.stop_at_val is not None else None,
            stage="source" if job.modality == "rgb" else "oracle",
            show_progress=False,
            resume=True,
        )
    result = evaluate_artifact(job.out, job.score_on, show_progress=False)
    return {"top1": result.top1, "per_class": result.per_class}


def run_cell(cell: Cell, args, candidates: dict[str, dict]) -> dict:
    """Adapt with every method (resuming what a killed run left), score each on the test set
    and with the label-free validators on the (unlabelled) target images; what ``cell.previous``
    holds is kept. The source and oracle are scored once, by their training jobs."""
    from socket_edge.adapt import AdaptConfig, adapt
    from socket_edge.adapt.balance import balance_checkpoint
    from socket_edge.evaluate import evaluate_artifact
    from socket_edge.guard import DivergenceError

    methods = {"source-only": ("source-only", {}), "SHOT": ("shot", {}), "SOCKET": ("socket", {})}
    methods.update({label: ("socket", o) for label, o in candidates.items()})
    d, m, seed = cell.folders, cell.modality, cell.seed
    res: dict = json.loads(json.dumps(cell.previous or {}))
    res.setdefault("validators", {})
    for label, (method, overrides) in methods.items():
        if label in res and (res[label] is None or label in res["validators"]):
            continue
        path = adapted_path(args.work, cell.variant, m, label, seed)
        twin = unbalanced_twin(label, methods)
        twin_path = twin and adapted_path(args.work, cell.variant, m, twin, seed)
        if not path.exists() and twin_path and twin_path.exists():
            # Balancing is a step after the last epoch that changes the classifier's bias alone
            # (tests/test_adapt.py checks it): the twin's training need not be run again.
            balance_checkpoint(twin_path, d["target"], path, args.device or "cpu")
        if not path.exists():
            length = {"epochs": args.epochs} if args.epochs is not None else {}
            cfg = AdaptConfig(
                method=method, seed=seed, device=args.device, **{**length, **overrides}
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
        result = evaluate_artifact(path, d["test"], show_progress=False)
        res[label] = result.top1
        res.setdefault("per_class", {})[label] = result.per_class
        res["validators"][label] = label_free_scores(path, cell.source, d, args.device)
        print(f"{cell.variant} seed {seed} {m} {label}: {res[label]:.3f}", flush=True)
    return res


def unbalanced_twin(label: str, methods: dict[str, tuple[str, dict]]) -> str | None:
    """The method that ``label`` is with ``balance_classes`` off (None if it is not balanced or
    has no such twin among ``methods``)."""
    method, overrides = methods[label]
    if not overrides.get("balance_classes"):
        return None
    plain = {k: v for k, v in overrides.items() if k != "balance_classes"}
    for other, (m, o) in methods.items():
        same = m == method and {k: v for k, v in o.items() if k != "balance_classes"} == plain
        if same and not o.get("balance_classes"):
            return other
    return None


def adapt_steps() -> int:
    """adapt's default update budget (what a run without --epochs trains for)."""
    from socket_edge.adapt.config import AdaptConfig

    return AdaptConfig().steps


def default_settings() -> str:
    """What socket-rms sets, as a --candidate spec: 'bn_scale=rms,backbone_lr_mult=1,...'."""
    from socket_edge.adapt.config import METHOD_SETTINGS

    return ",".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in METHOD_SETTINGS["socket-rms"].items()
    )


def adapted_path(work: Path, variant: str, modality: str, label: str, seed: int) -> Path:
    return work / f"{variant}-{modality}-{re.sub(r'[^A-Za-z0-9.-]+', '_', label)}-s{seed}.pt"


def label_free_scores(path: Path, source: Path, folders: dict[str, Path], device) -> dict:
    """The validators of one adapted model: on its unlabelled target images and, where the
    variant holds TI pairs out, its agreement with the source model on them."""
    from socket_edge.adapt.validators import score_checkpoint, score_pairs

    got = score_checkpoint(path, folders["target"], device)
    if "held_out" in folders:
        got |= score_pairs(path, source, folders["held_out"], device)
    return got


def rescore(raw: dict, args) -> int:
    """Add what runs from before these figures lack to the cells the JSON holds, from the
    adapted models and sources still on disk: the held-out-pair validators and the source's
    per-class RGB val; returns how many were added."""
    from socket_edge.adapt.validators import score_pairs
    from socket_edge.evaluate import evaluate_artifact

    added = 0
    for run in raw["runs"]:
        source = source_path(args.work, run["variant"], run["seed"])
        if "source_val_per_class" not in run and source.exists():
            val = args.data / "source_rgb" / "val"  # every variant's (``variant_data``)
            scored = evaluate_artifact(source, val, show_progress=False)
            run["source_val_per_class"] = scored.per_class
            added += 1
        for m in raw["modalities"]:
            validators = run.get(m, {}).get("validators", {})
            if not validators or not source.exists():
                continue
            held_out = variant_data(run["variant"], args.data, args.work, m, args.sizes)
            for label, scores in validators.items():
                path = adapted_path(args.work, run["variant"], m, label, run["seed"])
                if VALIDATOR in scores or not path.exists() or "held_out" not in held_out:
                    continue
                scores |= score_pairs(path, source, held_out["held_out"], args.device)
                added += 1
                print(
                    f"{run['variant']} seed {run['seed']} {m} {label} on the held-out pairs: "
                    f"agreement {scores[VALIDATOR]:.3f}",
                    flush=True,
                )
    return added


def _worker_init(jobs: int) -> None:
    """Each of ``jobs`` worker processes gets its share of the cores (set before torch loads),
    and ends with the suite: a killed suite must not leave trainings running that hold their
    output's lock (Linux; elsewhere the workers end when they next ask for work)."""
    share = max(1, (os.cpu_count() or 1) // jobs)
    os.environ["OMP_NUM_THREADS"] = str(share)
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


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
    with ProcessPoolExecutor(
        jobs, mp_context=ctx, initializer=_worker_init, initargs=(jobs,)
    ) as pool:
        futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
        results: list = [None] * len(items)
        for future in as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            if on_done:
                on_done(items[i], results[i])
        return results


# The label-free rule: the highest mean agreement with the source model on the held-out TI pairs
# (socket_edge.adapt.validators). RankMe, the rule before it, is reported beside it.
VALIDATOR = "ti_agreement"
EARLIER_VALIDATOR = "rankme"


def seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def _mean_of(runs: list[dict], modality: str, label: str, key: str | None = None) -> float | None:
    """Mean top-1 (or validator ``key``) of ``label`` over ``runs``; None if any run lacks it
    or diverged."""
    vals = []
    for r in runs:
        res = r.get(modality, {})
        v = res.get(label) if key is None else res.get("validators", {}).get(label, {}).get(key)
        if v is None:
            return None
        vals.append(v)
    return statistics.mean(vals) if vals else None


def _has(run: dict, modality: str, label: str, key: str | None) -> bool:
    res = run.get(modality, {})
    return label in res if key is None else key in res.get("validators", {}).get(label, {})


def best(runs: list[dict], modality: str, candidates: list[str], key: str | None = None) -> str:
    """The candidate with the highest mean top-1 (``key``: label-free score), as 'label (top-1)',
    over the seeds on which every candidate has it (a candidate added later, or a score added
    later, is compared seed for seed)."""
    ran = [c for c in candidates if any(_has(r, modality, c, key) for r in runs)]
    common = [r for r in runs if all(_has(r, modality, c, key) for c in ran)]
    means = {c: _mean_of(common, modality, c, key) for c in ran}
    means = {c: v for c, v in means.items() if v is not None}
    if not means:
        return "-"
    label = max(means, key=means.__getitem__)
    fewer = f", {seeds(len(common))}" if len(common) < len(runs) else ""
    return f"{label} ({100 * _mean_of(common, modality, label):.1f}{fewer})"


RULES = {
    VALIDATOR: "agreement with the source model on the held-out TI pairs",
    "ti_feature_cosine": "feature cosine with the source model on the held-out TI pairs "
    "(reported, not the rule: it is what the TI term trains)",
    EARLIER_VALIDATOR: "RankMe on the unlabelled target images (the earlier rule)",
}


def rule_summary(raw: dict, validator: str = VALIDATOR) -> list[str]:
    """A label-free rule's choice over every finished cell, beside the label-chosen best.

    A candidate that diverged in any cell is out (a default must never diverge); the rest are
    compared on the cells where all of them have the rule's score."""
    cells = [(r, m) for r in raw["runs"] for m in raw["modalities"] if m in r]
    labels = [m for m in raw["methods"] if m not in BASELINES]
    out = [c for c in labels if any(c in r[m].get("diverged", {}) for r, m in cells)]
    candidates = [c for c in labels if c not in out]
    complete = [(r, m) for r, m in cells if all(_has(r, m, c, validator) for c in candidates)]
    if not candidates or not complete:
        return []

    def over_cells(label: str, key: str | None) -> float:
        return statistics.mean(
            r[m]["validators"][label][key] if key else r[m][label] for r, m in complete
        )

    scale = 100 if validator.startswith("ti_") else 1  # a share or a cosine, shown x 100
    by_rule = max(candidates, key=lambda c: over_cells(c, validator))
    by_labels = max(candidates, key=lambda c: over_cells(c, None))
    scores = ", ".join(
        f"{c} {scale * over_cells(c, validator):.1f} ({100 * over_cells(c, None):.1f}%)"
        for c in candidates
    )
    dropped = f" Out, for diverging: {', '.join(out)}." if out else ""
    return [
        "",
        f"Label-free {'rule' if validator == VALIDATOR else 'score'} ({validator}) over the "
        f"{len(complete)} cells where every candidate has "
        f"it: the candidate with the highest mean {RULES.get(validator, validator)} is "
        f"**{by_rule}**; by test labels (reporting only) **{by_labels}**. Mean {validator}"
        f"{' (x 100)' if scale == 100 else ''} (mean top-1): {scores}.{dropped}",
    ]


def weakest(runs: list[dict], m: str, method: str = DEFAULT) -> str:
    """``method``'s weakest class by mean per-class top-1 over the runs that recorded it (where
    the oracle's per-class figures were recorded: the class furthest below its oracle's), and
    whether it is below half the oracle's figure for that class. Below it, and where the source's
    own RGB val knows some class less well than the oracle, every class is also judged against
    half of what the source knows: knowledge the source lacks cannot be transferred."""
    recorded = [r[m]["per_class"][method] for r in runs if method in r[m].get("per_class", {})]
    if not recorded:
        return "-"
    means = {c: statistics.mean(pc[c] for pc in recorded) for c in recorded[0]}
    oracles = [r[m]["oracle_per_class"] for r in runs if r[m].get("oracle_per_class")]
    oracle = {c: statistics.mean(o[c] for o in oracles) for c in means} if oracles else None
    name = min(means, key=lambda c: means[c] / oracle[c] if oracle else means[c])
    note = seeds(len(recorded))
    if oracle:
        half = oracle[name] / 2
        side = "below" if means[name] < half else "above"
        note += f"; {side} half the oracle's {200 * half:.0f}"
        sources = [r["source_val_per_class"] for r in runs if r.get("source_val_per_class")]
        if sources and side == "below":
            known = {c: min(oracle[c], statistics.mean(s[c] for s in sources)) for c in means}
            low = min(means, key=lambda c: means[c] / known[c])
            if known[low] < oracle[low]:
                side = "below" if means[low] < known[low] / 2 else "above"
                note += (
                    f"; against half the source's own RGB val: {low} "
                    f"{100 * means[low]:.1f}, {side} {50 * known[low]:.1f}"
                )
    return f"{name} {100 * means[name]:.0f} ({note})"


def length(raw: dict) -> str:
    """How long each adaptation ran: the suite's --epochs, else adapt's default budget."""
    if raw.get("epochs") is not None:
        return f"{raw['epochs']} adaptation epochs"
    # (the epochs that takes depend on each target set's size: not a figure to restate here)
    return f"adapt's default length, {raw['adapt_steps']} updates (as many epochs as that takes)"


def table(raw: dict) -> str:
    """One row per variant and modality: each method's mean ± std, the best, the gap closed."""
    mods, labels = raw["modalities"], raw["methods"]
    candidates = [m for m in labels if m not in BASELINES]
    lines = [
        "## Adaptation suite: variants of the built-in benchmark (`benchmarks/adaptation_suite.py`)",
        "",
        f"top-1 (%) on each variant's target test split, mean ± std over the seeds run; "
        f"{length(raw)}; source and oracle with train-source's defaults. "
        "`best (labels)` is the best candidate column by mean top-1 (chosen with labels: "
        f"reporting only); `rule's pick` the candidate with the highest mean "
        f"{RULES[VALIDATOR]} (the label-free rule), with its top-1; "
        "gap closed = (SOCKET - source-only) / (oracle - source-only); the `default` columns "
        f"say the same of `{DEFAULT}` (what `adapt` runs by default), with its weakest class "
        "(mean per-class top-1 over the seeds that recorded it; against half the oracle's own "
        "figure for that class where the oracle's per-class figures were recorded, and against "
        "half the source's own RGB val per class where that is lower: a source-free method "
        "transfers what the source knows).",
        f"Machine: {raw['machine']}; {raw.get('jobs', 1)} process(es) at once, "
        f"torch threads {raw['threads']} each.",
        "",
        "| variant | modality | seeds | RGB val | "
        + " | ".join(labels)
        + " | oracle | SOCKET - SHOT | gap closed | default - SHOT | default gap closed "
        "| default's weakest class | best (labels) | rule's pick |",
        "| --- | --- | ---: | ---: | "
        + " | ".join("---:" for _ in labels)
        + " | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |",
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
                fewer = f" ({seeds(len(vals))})" if len(vals) < len(have) else ""
                return f"{100 * statistics.mean(vals):.1f}{sd}{fewer}"

            def mean(key: str, runs: list[dict], m=m) -> float:
                vals = [r[m].get(key) for r in runs]  # (no oracle yet: an unfinished run)
                return float("nan") if None in vals else statistics.mean(vals)

            rgb = statistics.mean(r["source_val"] for r in have)
            figures = []
            for method in ("SOCKET", DEFAULT):
                # over the seeds the method ran, seed for seed with the baselines
                ran = [r for r in have if method in r[m]] or have
                gap = mean("oracle", ran) - mean("source-only", ran)
                closed = (
                    (mean(method, ran) - mean("source-only", ran)) / gap
                    if gap > 0
                    else float("nan")
                )
                edge = 100 * (mean(method, ran) - mean("SHOT", ran))
                figures += [
                    "-" if math.isnan(edge) else f"{edge:+.1f}",
                    "-" if math.isnan(closed) else f"{100 * closed:.0f}%",
                ]
            lines.append(
                f"| {variant} | {m} | {len(have)} | {100 * rgb:.1f} | "
                + " | ".join(cell(k) for k in labels)
                + f" | {cell('oracle')} | {' | '.join(figures)} | {weakest(have, m)} | "
                f"{best(have, m, candidates)} | {best(have, m, candidates, VALIDATOR)} |"
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
    for validator in RULES:
        lines += rule_summary(raw, validator)
    if DEFAULT in candidates:
        lines += [
            "",
            f"`{DEFAULT}` (`{default_settings()}`) is what the default "
            "method, `socket-rms`, runs (the `default` columns); `SOCKET` is the published form, "
            "the one `SOCKET - SHOT` and `gap closed` describe.",
        ]
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
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="adaptation epochs of every method (default: adapt's own length, its update budget)",
    )
    p.add_argument(
        "--weak-val",
        type=float,
        default=0.5,
        help="weak-source's source stops after the first epoch whose RGB val top-1 reaches this",
    )
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
    p.add_argument(
        "--ti-pairs",
        type=int,
        default=ROBOT["ti_pairs"],
        help="TI pairs in all that a robot-sized variant adapts with",
    )
    p.add_argument(
        "--held-out-pairs",
        type=int,
        default=ROBOT["held_out_pairs"],
        help="TI pairs in all held out of adaptation for the label-free rule",
    )
    p.add_argument(
        "--rescore",
        action="store_true",
        help="run nothing new: add the held-out-pair scores to the cells the JSON holds, from "
        "the models on disk, then write the table",
    )
    p.add_argument(
        "--retrain",
        action="store_true",
        help="train the oracles again even where the JSON holds their figures",
    )
    p.add_argument("--json-out", type=Path, default=HERE / "adaptation_suite.json")
    p.add_argument("--results", type=Path, default=None, help="default: benchmarks/RESULTS.md")
    p.add_argument("--no-write", action="store_true", help="print, do not touch RESULTS.md")
    p.add_argument(
        "--section",
        default="adaptation_suite",
        help="RESULTS.md section to write (another for exploratory candidates)",
    )
    p.add_argument("--heading", default="", help="the section's heading (default: the suite's)")
    p.add_argument("--preface", default="", help="a paragraph under the section's heading")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: write the table of the cells the JSON holds (a suite still running)",
    )
    args = p.parse_args()
    os.environ.setdefault("SOCKET_EDGE_PROGRESS", "0")
    args.modalities = args.modalities.split(",")
    args.sizes = ROBOT | {"ti_pairs": args.ti_pairs, "held_out_pairs": args.held_out_pairs}
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
        "adapt_steps": adapt_steps(),
        "train_steps": args.train_steps,
        "weak_val": args.weak_val,
        "modalities": args.modalities,
        "methods": [*BASELINES, *candidates],
        "command": " ".join(sys.argv[1:]),
        "runs": [],
    }
    if args.json_out.exists():  # an interrupted run (or fewer methods): keep what it finished
        old = json.loads(args.json_out.read_text())
        # the same length (adapt's budget counts only where --epochs was not given)
        budget = raw["epochs"] is not None or old.get("adapt_steps") == raw["adapt_steps"]
        if budget and all(old.get(k) == raw[k] for k in ("epochs", "train_steps", "modalities")):
            raw["runs"] = old["runs"]
    if args.report_only or args.rescore:  # the JSON as it stands: its methods, machine, settings
        old = json.loads(args.json_out.read_text())
        if args.rescore and rescore(old, args):
            tmp = args.json_out.with_name(args.json_out.name + ".tmp")
            tmp.write_text(json.dumps(old, indent=2))
            os.replace(tmp, args.json_out)
        _report(old, args)
        return
    runs = {(r["variant"], r["seed"]): r for r in raw["runs"]}
    trainings, cells = plan(args, args.variants.split(","), [int(x) for x in args.seeds.split(",")])

    def previous(c: Cell) -> dict | None:
        return runs.get((c.variant, c.seed), {}).get(c.modality)

    def finished(c: Cell) -> bool:
        done = previous(c) or {}
        return all(k in done for k in raw["methods"]) and all(
            done[k] is None or k in done.get("validators", {}) for k in raw["methods"]
        )

    cells = [replace(c, previous=previous(c)) for c in cells if not finished(c)]
    # Sources first (every cell needs one), then the cells, then the oracles (only the table
    # needs them): a cell starts as soon as the sources are there.
    sources = [t for t in trainings if t.modality == "rgb" and t.out in {c.source for c in cells}]
    scores = dict(
        zip(
            [t.out for t in sources],
            run_all(partial(run_training, device=args.device), sources, args.jobs),
            strict=True,
        )
    )

    def save() -> None:
        order = {v: i for i, v in enumerate(VARIANTS)}
        raw["runs"] = sorted(runs.values(), key=lambda r: (order.get(r["variant"], 99), r["seed"]))
        tmp = args.json_out.with_name(args.json_out.name + ".tmp")
        tmp.write_text(json.dumps(raw, indent=2))
        os.replace(tmp, args.json_out)

    def keep(cell: Cell, result: dict) -> None:  # after each cell: an interrupted run continues
        run = runs.setdefault(
            (cell.variant, cell.seed), {"variant": cell.variant, "seed": cell.seed}
        )
        source = scores[cell.source]
        run.update(
            {
                cell.modality: result,
                "source_val": source["top1"],
                "source_val_per_class": source["per_class"],
            }
        )
        save()

    run_all(partial(run_cell, args=args, candidates=candidates), cells, args.jobs, keep)
    _, every = plan(args, args.variants.split(","), [int(x) for x in args.seeds.split(",")])
    # An oracle trains with seed 0 whatever the cell's seed: a figure an earlier run recorded
    # for the same oracle stands for it when its file is gone (a new checkout), unless --retrain.
    known = {
        (oracle_key(r["variant"]), m): r[m]
        for r in raw["runs"]
        for m in args.modalities
        if m in r and r[m].get("oracle") is not None and not r.get("oracle_recorded")
    }
    known = {
        args.work / f"oracle-{k}-{m}.pt": {
            "top1": v["oracle"],
            "per_class": v.get("oracle_per_class"),
        }
        for (k, m), v in known.items()
    }
    wanted = {c.oracle for c in every if c.oracle is not None}
    reuse = {o: known[o] for o in wanted if o in known and not o.exists() and not args.retrain}
    scores |= reuse
    oracles = [t for t in trainings if t.out in wanted - reuse.keys()]
    scores |= dict(
        zip(
            [t.out for t in oracles],
            run_all(partial(run_training, device=args.device), oracles, args.jobs),
            strict=True,
        )
    )
    for c in every:  # every cell of this command gets its oracle's figure
        result = runs.get((c.variant, c.seed), {}).get(c.modality)
        if result is not None:
            if c.oracle is None:
                result["oracle"] = args.oracle[c.modality]
            else:
                result["oracle"] = scores[c.oracle]["top1"]
                if scores[c.oracle].get("per_class"):
                    result["oracle_per_class"] = scores[c.oracle]["per_class"]
            run = runs[(c.variant, c.seed)]
            run["oracle_recorded"] = run.get("oracle_recorded", False) or c.oracle is None
    save()
    _report(raw, args)


def _report(raw: dict, args) -> None:
    """Print the table (and write it to RESULTS.md unless --no-write)."""
    text = table(raw)
    if args.heading:
        text = f"## {args.heading}\n" + text.split("\n", 1)[1]
    if args.preface:  # a paragraph under the heading: what the table was run for
        heading, rest = text.split("\n", 1)
        text = f"{heading}\n\n{args.preface}\n{rest}"
    text = (
        text
        + "\n\nCommand: `python benchmarks/adaptation_suite.py "
        + raw.get("command", " ".join(sys.argv[1:]))
        + "`"
    )
    print(text)
    if not args.no_write:
        update_section(args.section, text, *([args.results] if args.results else []))


if __name__ == "__main__":
    main()
