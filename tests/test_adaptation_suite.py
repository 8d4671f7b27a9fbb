"""benchmarks/adaptation_suite.py runs every variant end to end (tiny data, two processes) and
continues an interrupted run without redoing finished cells."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from socket_edge.models.checkpoint import read_checkpoint

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("base", "weak-source", "ti-unlike", "imbalanced", "today")


def _suite(data: Path, work: Path, results: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, str(REPO / "benchmarks" / "adaptation_suite.py"),
        "--data", str(data), "--work", str(work / "runs"), "--json-out", str(work / "suite.json"),
        "--results", str(results), "--variants", ",".join(VARIANTS), "--seeds", "0",
        "--modalities", "depth", "--epochs", "1", "--train-steps", "3", "--weak-val", "0.01",
        # the tiny data have 2 TI pairs per TI class: one adapts, one is held out (8 TI classes
        # in the built-in benchmark, 4 in ti-unlike's: a pair per class either way)
        "--ti-pairs", "4", "--held-out-pairs", "4",
        # a candidate whose loss overflows at once: the divergence guard stops it, the suite goes on
        "--candidate", "blown=bn_first_weight=1e300",
        *extra,
    ]  # fmt: skip
    env = {**os.environ, "SOCKET_EDGE_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)


def test_suite_runs_every_variant_in_two_processes_and_resumes(synth_root, tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# results\n\n<!-- other:begin -->\nkept\n<!-- other:end -->\n")
    r = _suite(synth_root, tmp_path, results, "--jobs", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    raw = json.loads((tmp_path / "suite.json").read_text())
    assert [run["variant"] for run in raw["runs"]] == list(
        VARIANTS
    )  # in order, whatever finished first
    for run in raw["runs"]:
        scores = dict(run["depth"])
        diverged = scores.pop("diverged")
        assert set(diverged) == {"blown"} and "not finite" in diverged["blown"]
        assert scores.pop("blown") is None
        validators = scores.pop("validators")
        per_class = scores.pop("per_class")
        oracle_per_class = scores.pop("oracle_per_class")
        assert set(scores) == {"source-only", "SHOT", "SOCKET", "oracle"}
        # per-class top-1 of every model written, and of the oracle: their mean is the top-1
        # (the test splits are balanced)
        assert set(per_class) == {"source-only", "SHOT", "SOCKET"}
        for label, classes in [*per_class.items(), ("oracle", oracle_per_class)]:
            assert len(classes) == 10
            assert abs(sum(classes.values()) / 10 - scores[label]) < 1e-9, label
        assert all(0.0 <= v <= 1.0 for v in scores.values())
        assert 0.0 <= run["source_val"] <= 1.0
        rgb = run["source_val_per_class"]  # what the source knows, class by class
        assert len(rgb) == 10 and abs(sum(rgb.values()) / 10 - run["source_val"]) < 1e-9
        # every model that was written has its label-free scores (the diverged one has none)
        assert set(validators) == {"source-only", "SHOT", "SOCKET"}
        for v in validators.values():
            assert v["rankme"] >= 1.0 and 0.0 <= v["prediction_balance"] <= 1.0
            # agreement with the source on the held-out pairs: robot-sized variants only
            if run["variant"] == "today":
                assert "ti_agreement" not in v
            else:
                assert v["ti_agreement"] in {i / 8 for i in range(9)}  # a share of 8 or 4 pairs
                assert -1.0 <= v["ti_feature_cosine"] <= 1.0
    held_out = tmp_path / "runs" / "data" / "robot" / "depth_paired_held_out" / "rgb"
    adapting = tmp_path / "runs" / "data" / "robot" / "depth_paired" / "rgb"
    assert {p.name for p in held_out.iterdir()}.isdisjoint(p.name for p in adapting.iterdir())
    assert len(list(held_out.iterdir())) == len(list(adapting.iterdir())) == 8
    # Variants that share a source or an oracle reuse the one file; each variant adapts its own.
    runs = tmp_path / "runs"
    assert sorted(p.name for p in runs.glob("source-*.pt")) == [
        "source-base-s0.pt", "source-today-s0.pt", "source-weak-s0.pt",
    ]  # fmt: skip
    # the weak source stopped at the first epoch whose RGB val reached --weak-val
    weak_history = read_checkpoint(runs / "source-weak-s0.pt")["meta"]["training"]["history"]
    assert len(weak_history) == 1 and weak_history[0]["val_acc"] >= 0.01
    assert (
        "val_acc"
        not in read_checkpoint(runs / "source-base-s0.pt")["meta"]["training"]["history"][-1]
    )  # the others run their step budget, unscored
    assert sorted(p.name for p in runs.glob("oracle-*.pt")) == [
        "oracle-base-depth.pt", "oracle-imbalanced-depth.pt", "oracle-today-depth.pt",
    ]  # fmt: skip
    assert len(list(runs.glob("*-depth-SOCKET-s0.pt"))) == len(VARIANTS)
    text = results.read_text()
    assert "<!-- other:begin -->\nkept\n<!-- other:end -->" in text
    section = text[text.index("<!-- adaptation_suite:begin -->") :]
    for variant in VARIANTS:
        row = next(line for line in section.splitlines() if line.startswith(f"| {variant} | depth"))
        assert row.startswith(f"| {variant} | depth | 1 |") and "| diverged (1 of 1) |" in row
        assert row.endswith("| - | - |")  # best candidate, rule's pick: none, the only one diverged
    assert "Stopped by the divergence guard" in section

    # A second run finds every cell done: nothing adapted or scored again, the same table.
    again = _suite(synth_root, tmp_path, results)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "SOCKET:" not in again.stdout
    assert json.loads((tmp_path / "suite.json").read_text())["runs"] == raw["runs"]

    # A new candidate: only it runs (the baselines' models and scores are kept), and the
    # label-free rule names its choice among the candidates that finished.
    more = _suite(synth_root, tmp_path, results, "--candidate", "nc=nc_weight=1,nc_neighbours=2")
    assert more.returncode == 0, more.stderr[-3000:]
    assert "SHOT:" not in more.stdout and more.stdout.count("depth nc:") == len(VARIANTS)
    after = json.loads((tmp_path / "suite.json").read_text())
    for old, new in zip(raw["runs"], after["runs"], strict=True):
        assert new["depth"]["SHOT"] == old["depth"]["SHOT"]
        assert 0.0 <= new["depth"]["nc"] <= 1.0 and new["depth"]["validators"]["nc"]["rankme"] > 0
    section = results.read_text()
    assert f"Label-free rule (ti_agreement) over the {len(VARIANTS) - 1} cells" in section
    assert f"Label-free score (rankme) over the {len(VARIANTS)} cells" in section
    assert section.count("is **nc**; by test labels (reporting only) **nc**") == 3
    assert "Out, for diverging: blown." in section

    # --rescore adds the held-out-pair scores and the source's per-class RGB val to cells
    # recorded without them, from the models on disk, and runs nothing else: the same figures
    # as when scored with the run.
    stripped = json.loads((tmp_path / "suite.json").read_text())
    for run in stripped["runs"]:
        run.pop("source_val_per_class")
        for v in run["depth"]["validators"].values():
            v.pop("ti_agreement", None), v.pop("ti_feature_cosine", None)
    (tmp_path / "suite.json").write_text(json.dumps(stripped))
    rescored = _suite(synth_root, tmp_path, results, "--rescore")
    assert rescored.returncode == 0, rescored.stderr[-3000:]
    assert "SHOT:" not in rescored.stdout
    rescored_runs = json.loads((tmp_path / "suite.json").read_text())["runs"]
    for old, new in zip(after["runs"], rescored_runs, strict=True):
        assert new["source_val_per_class"] == old["source_val_per_class"]
        for label, v in old["depth"]["validators"].items():
            got = new["depth"]["validators"][label]
            assert got.keys() == v.keys() and got["rankme"] == v["rankme"], label
            if "ti_agreement" in v:  # (threads may differ from the run's: float rounding)
                assert got["ti_agreement"] == v["ti_agreement"]
                assert abs(got["ti_feature_cosine"] - v["ti_feature_cosine"]) < 1e-5

    # --report-only runs nothing: the table of the JSON as it stands, with the suite's command.
    results.write_text("# results\n")
    report = _suite(synth_root, tmp_path, results, "--report-only")
    assert report.returncode == 0, report.stderr[-3000:]
    assert json.loads((tmp_path / "suite.json").read_text()) == after
    assert "nc=nc_weight=1,nc_neighbours=2" in results.read_text()
    assert "--report-only" not in results.read_text()


def test_the_default_columns_name_its_weakest_class_against_the_oracle():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from adaptation_suite import DEFAULT, weakest

    def run(rms: dict, oracle: dict | None = None) -> dict:
        cell = {"per_class": {DEFAULT: rms}, **({"oracle_per_class": oracle} if oracle else {})}
        return {"depth": cell}

    runs = [run({"cone": 0.2, "cube": 0.9}), run({"cone": 0.4, "cube": 0.8})]
    assert weakest(runs, "depth") == "cone 30 (2 seeds)"  # mean over the seeds
    assert weakest([{"depth": {}}], "depth") == "-"  # nothing recorded
    runs = [run({"cone": 0.4, "cube": 0.9}, {"cone": 0.9, "cube": 0.95})]
    assert weakest(runs, "depth") == "cone 40 (1 seed; below half the oracle's 90)"
    runs = [run({"cone": 0.5, "cube": 0.9}, {"cone": 0.9, "cube": 0.95})]
    assert weakest(runs, "depth").endswith("(1 seed; above half the oracle's 90)")
    # Against the oracle, the class furthest below its own figure, not the lowest one.
    runs = [run({"cone": 0.5, "cube": 0.45}, {"cone": 0.6, "cube": 0.95})]
    assert weakest(runs, "depth") == "cube 45 (1 seed; below half the oracle's 95)"


def test_a_candidate_added_later_is_compared_seed_for_seed():
    """A candidate run on fewer seeds than the others is compared on the seeds it ran, and its
    column says how many: a mean over other seeds would compare different data."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from adaptation_suite import best

    runs = [
        {"seed": 0, "depth": {"old": 0.30}},  # a hard seed the new candidate did not run
        {"seed": 1, "depth": {"old": 0.60, "new": 0.65}},
        {"seed": 2, "depth": {"old": 0.62, "new": 0.67}},
    ]
    assert best(runs, "depth", ["old", "new"]) == "new (66.0, 2 seeds)"
    assert best(runs[1:], "depth", ["old", "new"]) == "new (66.0)"
    # A candidate that ran on none of this cell's seeds leaves the others compared as before.
    assert best(runs[1:], "depth", ["old", "new", "elsewhere"]) == "new (66.0)"


def test_a_class_below_half_its_oracle_is_judged_against_what_the_source_knows():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from adaptation_suite import DEFAULT, weakest

    def run(rms: dict, oracle: dict, source: dict | None) -> dict:
        cell = {"per_class": {DEFAULT: rms}, "oracle_per_class": oracle}
        return {"depth": cell, **({"source_val_per_class": source} if source else {})}

    oracle = {"stairs": 0.96, "cube": 0.9}
    # A weak source that knows stairs at 16% on RGB: 10% on depth is below half the oracle but
    # above half of what the source could transfer (8%), with the mean over the seeds.
    runs = [
        run({"stairs": 0.08, "cube": 0.7}, oracle, {"stairs": 0.12, "cube": 0.8}),
        run({"stairs": 0.12, "cube": 0.7}, oracle, {"stairs": 0.20, "cube": 0.8}),
    ]
    assert weakest(runs, "depth") == (
        "stairs 10 (2 seeds; below half the oracle's 96; against half the source's own RGB "
        "val: stairs 10.0, above 8.0)"
    )
    # Below that too: named so.
    runs = [run({"stairs": 0.05, "cube": 0.7}, oracle, {"stairs": 0.16, "cube": 0.8})]
    assert weakest(runs, "depth").endswith("stairs 5.0, below 8.0)")
    # The source knows every class as well as the oracle, or the class is above half the
    # oracle: the oracle's figure alone.
    strong = {"stairs": 0.99, "cube": 0.99}
    assert weakest([run({"stairs": 0.4, "cube": 0.7}, oracle, strong)], "depth") == (
        "stairs 40 (1 seed; below half the oracle's 96)"
    )
    assert weakest([run({"stairs": 0.6, "cube": 0.7}, oracle, {"stairs": 0.1, "cube": 0.8})],
                   "depth") == "stairs 60 (1 seed; above half the oracle's 96)"  # fmt: skip
