"""Calibration pieces without a model: cache format, thresholds, batches, gate, calibration draw."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from socket_edge.calibration import batcher, cache, calibset, gate, ranges
from socket_edge.errors import ArtifactError, DataError

# --- TensorRT calibration cache -----------------------------------------------------------------


def test_version_tags_follow_tensorrt_numbering():
    assert cache.version_tag("8.5.2") == 8502
    assert cache.version_tag("8.6.2.3") == 8602
    assert cache.version_tag("10.3.0") == 100300
    assert cache.version_tag("10.13.0.35") == 101300
    assert cache.header("8.5.2") == "TRT-8502-EntropyCalibration2"


def test_cache_format_line_by_line():
    amax = {"/encoder/Div_1_output_0": 2.64, "/backbone/relu/Relu_output_0": 1.0, "logits": 127.0}
    text = cache.format_cache(amax, version="8.5.2")
    lines = text.splitlines()
    assert text.endswith("\n")
    assert lines[0] == "TRT-8502-EntropyCalibration2"
    assert len(lines) == 1 + len(amax)
    for line, (name, value) in zip(lines[1:], amax.items(), strict=True):
        tensor, digits = line.split(": ")
        assert tensor == name
        assert len(digits) == 8 and digits == digits.lower()
        # big-endian float32 bits of amax / 127
        assert digits == struct.pack(">f", np.float32(value / 127.0)).hex()
    assert lines[3] == "logits: 3f800000"  # scale 1.0 exactly


def test_cache_parses_back_to_the_same_ranges():
    rng = np.random.default_rng(0)
    amax = {f"t{i}/out:0": float(v) for i, v in enumerate(rng.uniform(1e-3, 50.0, 40))}
    parsed = cache.parse_cache(cache.format_cache(amax).encode("ascii"))
    assert parsed.version == 100300 and parsed.algorithm == "EntropyCalibration2"
    assert list(parsed.scales) == list(amax)
    back = parsed.amax()
    for name, value in amax.items():
        # float32 storage of the scale: relative error below 1e-7
        assert back[name] == pytest.approx(value, rel=2e-7)
    # and the text round-trips exactly, also under another version's header
    again = cache.parse_cache(parsed.with_version("10.3.0"))
    assert again.scales == parsed.scales
    assert parsed.with_version("8.6.2").splitlines()[0] == "TRT-8602-EntropyCalibration2"


def test_zero_range_gets_a_positive_scale():
    parsed = cache.parse_cache(cache.format_cache({"dead": 0.0}))
    assert parsed.scales["dead"] > 0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty calibration cache"),
        ("not a header\nx: 3f800000\n", "line 1"),
        ("TRT-8502-EntropyCalibration2\nx: 3f80000\n", "line 2"),
        ("TRT-8502-EntropyCalibration2\nx 3f800000\n", "line 2"),
        ("TRT-8502-EntropyCalibration2\nx: 3f800000\nx: 3f800000\n", "appears twice"),
    ],
)
def test_malformed_caches_name_the_line(text, fragment):
    with pytest.raises(ArtifactError, match=fragment):
        cache.parse_cache(text, "model.calib.cache")


def test_binary_cache_is_refused(tmp_path):
    p = tmp_path / "x.cache"
    p.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ArtifactError, match="binary"):
        cache.read_cache(p)


# --- thresholds ---------------------------------------------------------------------------------


def _hist(values: np.ndarray, amax: float) -> np.ndarray:
    h = np.zeros(ranges.NUM_BINS, np.int64)
    ranges._add_histogram(h, values, amax)
    return h


def test_percentile_threshold_matches_numpy():
    x = np.random.default_rng(1).normal(0, 1, 200_000).astype(np.float32)
    amax = float(np.abs(x).max())
    t = ranges.percentile_threshold(_hist(x, amax), amax, 99.0)
    assert t == pytest.approx(np.percentile(np.abs(x), 99.0), abs=2 * amax / ranges.NUM_BINS)


def test_entropy_clips_rare_outliers_but_keeps_the_bulk():
    rng = np.random.default_rng(2)
    bulk = np.abs(rng.normal(0, 1, 100_000))  # a ReLU-like activation
    outliers = np.array([40.0, 45.0, 50.0])  # 3 in 100k: worth clipping
    x = np.concatenate([bulk, outliers]).astype(np.float32)
    t = ranges.entropy_threshold(_hist(x, 50.0), 50.0)
    assert 3.0 <= t < 8.0  # the bulk's tail ends near 4.4; minmax would keep 50
    # without outliers the threshold stays near the top of the bulk
    amax = float(bulk.max())
    t = ranges.entropy_threshold(_hist(bulk.astype(np.float32), amax), amax)
    assert 0.8 * amax <= t <= amax


def test_entropy_is_not_pulled_down_by_relu_zeros():
    rng = np.random.default_rng(3)
    half = np.abs(rng.normal(0, 1, 50_000))
    x = np.concatenate([np.zeros(60_000), half]).astype(np.float32)  # ReLU output
    amax = float(x.max())
    t = ranges.entropy_threshold(_hist(x, amax), amax)
    assert t > 2.5  # the smallest candidate (128 of 2048 bins) would be amax / 16 ~ 0.27


def test_entropy_of_empty_histogram_is_amax():
    assert ranges.entropy_threshold(np.zeros(ranges.NUM_BINS, np.int64), 3.0) == 3.0


def test_ranges_round_trip_through_json_and_ort():
    r = ranges.ActivationRanges("entropy", {"a": (-1.0, 2.0), "b": (0.0, 0.5)}, images=7)
    again = ranges.ActivationRanges.from_dict(r.to_dict())
    assert again == r and again.amax("a") == 2.0
    td = r.tensors_data()
    assert float(td["a"].range_value[1]) == 2.0


# --- TensorRT calibrator batches ----------------------------------------------------------------


def _loader(log):
    def load(idx):
        log.append(list(idx))
        return np.stack([np.full((1, 4, 4), i, np.float32) for i in idx])

    return load


def test_batches_drop_the_remainder():
    log = []
    b = batcher.CalibrationBatcher(10, _loader(log), 4)
    out = list(b)
    assert [x.shape for x in out] == [(4, 1, 4, 4), (4, 1, 4, 4)]
    assert log == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert b.num_batches == 2 and b.images_used == 8
    assert all(x.flags["C_CONTIGUOUS"] and x.dtype == np.float32 for x in out)


def test_batches_repeat_a_set_smaller_than_one_batch():
    log = []
    b = batcher.CalibrationBatcher(3, _loader(log), 8)
    (only,) = list(b)
    assert only.shape[0] == 8
    assert log == [[0, 1, 2, 0, 1, 2, 0, 1]]
    assert b.images_used == 3


def test_batcher_refuses_an_empty_set_and_short_loads():
    with pytest.raises(ValueError):
        batcher.CalibrationBatcher(0, _loader([]), 4)
    bad = batcher.CalibrationBatcher(4, lambda idx: np.zeros((1, 1, 2, 2), np.float32), 4)
    with pytest.raises(ValueError, match="returned 1 images"):
        list(bad)


# --- accuracy gate ------------------------------------------------------------------------------


def test_compare_with_and_without_labels():
    fp32 = np.eye(4)[[0, 1, 2, 3]]
    int8 = np.eye(4)[[0, 1, 2, 2]]
    c = gate.compare(fp32, int8)
    assert c.agreement == 0.75 and not c.labelled and c.drop == pytest.approx(25.0)
    c = gate.compare(fp32, int8, np.array([0, 1, 3, 2]))  # FP32 2/4, INT8 3/4 right
    assert c.labelled and c.drop == pytest.approx(-25.0)
    with pytest.raises(ArtifactError):
        gate.compare(np.zeros((0, 4)), np.zeros((0, 4)))


def test_budget_bounds_disagreement_with_and_without_labels():
    budget = gate.Budget(max_drop=1.0, max_disagreement=2.0)
    fp32 = np.eye(4)[[0, 1, 2, 3] * 25]  # 100 images
    flipped = fp32.copy()
    flipped[:8] = np.eye(4)[[1, 0, 3, 2, 1, 0, 3, 2]]  # 8 decisions changed
    c = gate.compare(fp32, flipped)
    assert c.disagreement == pytest.approx(8.0) and budget.excess(c) == pytest.approx(6.0)
    assert "disagreement with FP32 8.00% (8 of 100 images; budget 2%)" in budget.describe(c)
    # with labels the changes cancel (top-1 unchanged) and the accuracy alone would pass
    labels = np.array([0, 1, 2, 3] * 25)
    labels[:8] = [1, 1, 3, 3, 1, 1, 3, 3]  # FP32 right on 4 of them, INT8 on the other 4
    c = gate.compare(fp32, flipped, labels)
    assert c.drop == pytest.approx(0.0) and budget.excess(c) == pytest.approx(6.0)
    assert "top-1 drop 0.00 points (budget 1)" in budget.describe(c)
    within = gate.compare(fp32, fp32, labels)
    assert budget.excess(within) <= 0
    # a NaN logit is no decision: it counts as disagreeing everywhere
    nan = fp32.copy()
    nan[0, 0] = np.nan
    assert gate.compare(fp32, nan).agreement == 0.0


def test_fit_budget_keeps_the_most_sensitive_layers():
    # drop = 3 points minus what keeping each layer in float saves
    saves = {"conv1": 0.5, "conv2": 2.5, "fc": 1.0, "conv3": 0.0}
    calls = []

    def measure(layers):
        calls.append(list(layers))
        return 3.0 - sum(saves[layer] for layer in layers)

    r = gate.fit_budget(measure, list(saves), max_drop=0.2)
    assert r.float_layers == ["conv2", "fc"]  # most sensitive first, then the next
    assert r.passed and r.drop == pytest.approx(-0.5) and r.initial_drop == 3.0
    assert r.sensitivity["conv2"] == pytest.approx(0.5)
    assert r.evaluations == len(calls)
    assert r.to_dict()["sensitivity"][0]["node"] == "conv2"


def test_fit_budget_does_nothing_within_budget():
    r = gate.fit_budget(
        lambda layers: pytest.fail("no measurement needed"), ["a"], 1.0, initial_drop=0.4
    )
    assert r.passed and r.float_layers == [] and r.evaluations == 1


def test_fit_budget_reports_failure():
    r = gate.fit_budget(lambda layers: 5.0, ["a", "b"], 1.0)
    assert not r.passed and r.float_layers == ["a", "b"] and r.drop == 5.0


def test_fit_budget_survives_a_non_monotonic_drop():
    # all layers in float is worse than "b" alone: the search must still find "b"
    drops = {(): 3.0, ("a",): 2.0, ("b",): 0.5, ("a", "b"): 2.5, ("b", "a"): 2.5}
    r = gate.fit_budget(lambda layers: drops[tuple(layers)], ["a", "b"], 1.0)
    assert r.passed and r.float_layers == ["b"]


def test_fit_budget_ranks_with_the_cheaper_scorer():
    ranked = []

    def rank(layer):
        ranked.append(layer)
        return {"a": 2.0, "b": 0.1}[layer]

    r = gate.fit_budget(lambda layers: 0.0 if "b" in layers else 3.0, ["a", "b"], 1.0, rank=rank)
    assert ranked == ["a", "b"] and r.float_layers == ["b"]


# --- calibration draw ---------------------------------------------------------------------------


def test_draw_is_seeded_disjoint_and_hashed(synth_root):
    folder = synth_root / "depth" / "target" / "train"
    a = calibset.draw(folder, "depth", 32, size=10, seed=3, holdout=5)
    b = calibset.draw(folder, "depth", 32, size=10, seed=3, holdout=5)
    c = calibset.draw(folder, "depth", 32, size=10, seed=4, holdout=5)
    assert a.files == b.files and a.sha256 == b.sha256
    assert a.files != c.files and a.sha256 != c.sha256
    assert not set(a.files) & set(a.holdout) and len(a.holdout) == 5
    x = a.load(a.files[:3])
    assert x.shape == (3, 1, 32, 32) and x.dtype == np.float32 and x.max() > 100  # millimetres
    assert len(list(a.batches(4))) == 3
    classes = sorted(p.name for p in folder.iterdir())
    labels = a.labels(a.files, classes)
    assert labels is not None
    assert [classes[i] for i in labels] == [f.parent.name for f in a.files]
    without_first = [c for c in classes if c != a.files[0].parent.name]
    assert a.labels(a.files, without_first) is None  # one unknown class: no labels at all
    s1 = calibset.stamp("m" * 64, a.sha256, "entropy")
    assert s1 != calibset.stamp("m" * 64, a.sha256, "minmax")
    assert s1 != calibset.stamp("n" * 64, a.sha256, "entropy") and len(s1) == 16


def test_draw_warns_when_short_and_fails_when_empty(tmp_path, synth_root, capsys):
    folder = synth_root / "ir" / "target" / "test"
    n = len(calibset.draw(folder, "ir", 32, size=10_000, holdout=0))
    assert n > 0
    err = capsys.readouterr().err
    assert f"{n} images, fewer than the 10000 asked" in err and f"using all {n}" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no images found"):
        calibset.draw(empty, "ir", 32)


def test_set_hash_follows_file_content(tmp_path, synth_root):
    import shutil

    src = synth_root / "depth" / "target" / "test"
    copy = tmp_path / "copy"
    shutil.copytree(src, copy)
    a = calibset.draw(copy, "depth", 32, size=4, seed=0, holdout=0)
    victim = a.files[0]
    data = bytearray(victim.read_bytes())
    other = a.files[1].read_bytes()
    victim.write_bytes(other if other != bytes(data) else bytes(data) + b"\0")
    b = calibset.draw(copy, "depth", 32, size=4, seed=0, holdout=0)
    assert a.files == b.files and a.sha256 != b.sha256
