"""Drift monitoring: reference statistics at export, the Monitor, `socket-edge monitor`."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from socket_edge.artifact import read_sidecar
from socket_edge.errors import ArtifactError, DataError
from socket_edge.export.pipeline import ExportOptions, export
from socket_edge.files import sha256_file
from socket_edge.monitor import Monitor
from socket_edge.monitor.reference import (
    build_reference,
    dependence_factor,
    estimate_mix,
    ks_distance,
    tv_distance,
)
from socket_edge.monitor.rule import WindowRule
from socket_edge.monitor.signals import input_signals

from .conftest import run_cli
from .helpers import assert_one_line_error

CLASSES = [f"c{i}" for i in range(5)]
MEANS = np.array([-3.0, -1.5, 0.0, 1.5, 3.0])  # each class's latent "object" position


def _world(rng, n, holes=0.05, scale=1.0, prior=None, cls=None):
    """Depth frames (N, 1, 16, 16) and logits (N, 5) of a stand-in sensor and model whose
    signals all differ by class: a latent z ~ N(MEANS[class], 1) sets the frame's depth and
    hole share, and the logits are the exact log-posterior of the class given z (a calibrated
    model), so that a window of one class differs from the pooled reference in every signal."""
    c = rng.choice(5, n, p=prior) if cls is None else np.full(n, cls)
    z = rng.normal(MEANS[c], 1.0)
    depth = 1500 * np.exp(0.15 * z)[:, None, None, None] * rng.uniform(0.7, 1.3, (n, 1, 16, 16))
    x = depth * scale
    x[rng.random(x.shape) < holes * (1 + 0.3 * (z[:, None, None, None] + 3))] = 0
    logits = -0.5 * (z[:, None] - MEANS[None, :]) ** 2
    return x.astype(np.float32), logits.astype(np.float32)


@pytest.fixture(scope="module")
def synthetic_reference():
    rng = np.random.default_rng(0)
    return build_reference(*_world(rng, 768), "depth", CLASSES, frames={"frame_size": [16, 16]})


def _verdicts(reference, make, windows=60, size=128, seed=1, **options):
    rng = np.random.default_rng(seed)
    mon = Monitor(reference, window=size, class_names=CLASSES, **options)
    reports = []
    for i in range(windows):
        x, logits = make(rng, size, i)
        reports += mon.observe_batch(x, logits)
    assert len(reports) == windows
    return reports


def _share(reports, what="drifted"):
    if what == "flagged":
        return np.mean([r.flagged for r in reports])
    return np.mean([r.verdict == what for r in reports])


def test_distances_are_zero_for_identical_data_and_grow_with_shift():
    sketch = np.sort(np.random.default_rng(0).normal(size=201))
    assert ks_distance(sketch[None], sketch)[0] == 0.0
    assert ks_distance(sketch[None] + 0.5, sketch)[0] > ks_distance(sketch[None] + 0.1, sketch)[0]
    assert ks_distance(np.full((1, 10), 99.0), sketch)[0] == 1.0
    shares = np.full(4, 0.25)
    assert tv_distance(np.array([[0, 1, 2, 3]]), shares)[0] == 0.0
    assert tv_distance(np.array([[0, 0, 0, 0]]), shares)[0] == pytest.approx(0.75)


def test_the_window_rule_states_false_alarms_per_hour():
    rule = WindowRule(window=128, frame_rate=30, false_alarms_per_hour=0.1, confirm=2, of_last=3)
    assert rule.windows_per_hour == pytest.approx(843.75)
    a = rule.alpha
    # P(a drifted spell starts: 2 of 3 windows flagged) x its mean length x windows per hour
    assert (3 * a**2 * (1 - a) + a**3) / (1 - a) * 843.75 == pytest.approx(0.1, rel=1e-6)
    assert WindowRule(false_alarms_per_hour=1.0).alpha > a  # more alarms allowed: lower bar
    assert WindowRule(frame_rate=15).alpha > a  # fewer windows an hour
    one = WindowRule(confirm=1, of_last=1).alpha
    assert one / (1 - one) == pytest.approx(0.1 / 843.75, rel=1e-6)
    assert rule.verdict([False, True]) == "drifting"
    assert rule.verdict([True, False, True]) == "drifted"
    assert rule.verdict([True, False, False, True]) == "drifting"  # the first is too old
    assert rule.verdict([True, True, False]) == "drifted"  # 2 of the last 3, current not
    assert rule.verdict([]) == "ok"
    # windows of one class flagged one after another: not yet drifted; a second class confirms
    assert rule.verdict([True, True, True], [4, 4, 4]) == "drifting"
    assert rule.verdict([True, True, True, True], [4, 4, 4, 7]) == "drifted"
    assert rule.verdict([True, True], [4, 4], before="drifted") == "drifted"  # the spell goes on
    assert rule.verdict([True, False], [4, 7], before="drifted") == "ok"
    assert WindowRule(distinct_classes=1).verdict([True, True], [4, 4]) == "drifted"
    with pytest.raises(Exception, match="confirm"):
        WindowRule(confirm=4, of_last=3)
    with pytest.raises(Exception, match="false_alarms_per_hour"):
        WindowRule(false_alarms_per_hour=0)


def test_the_class_mix_is_estimated_from_calibrated_outputs(synthetic_reference):
    rng = np.random.default_rng(5)
    _, logits = _world(rng, 4000, prior=[0.6, 0.1, 0.1, 0.1, 0.1])
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    q = estimate_mix(p, np.full(5, 0.2))
    np.testing.assert_allclose(q, [0.6, 0.1, 0.1, 0.1, 0.1], atol=0.04)


def test_in_distribution_windows_in_any_order_are_not_drift(synthetic_reference):
    shuffled = _verdicts(synthetic_reference, lambda r, n, i: _world(r, n))
    # class order: windows of one class each, every class in turn (a robot dwelling on one)
    ordered = _verdicts(synthetic_reference, lambda r, n, i: _world(r, n, cls=i % 5))
    for reports in (shuffled, ordered):
        assert _share(reports, "flagged") <= 0.05
        assert _share(reports) == 0.0
    # the mix is reported for what it is: one class, unlike the reference
    assert all(r.class_mix["differs"] for r in ordered)
    assert [r.class_mix["top"] for r in ordered[:5]] == CLASSES
    line = ordered[0].class_mix_line
    assert line.startswith("class mix differs from the reference: ") and "% c0" in line
    assert line.endswith("(what the robot sees, not drift)")
    assert not any(r.class_mix["differs"] for r in shuffled[:20] if r.class_mix["p"] > 0.01)


def test_a_shifted_sensor_is_drift_in_any_class_order(synthetic_reference):
    for shift, fired in ((dict(holes=0.2), "valid_share"), (dict(scale=0.8), "p50")):
        for order in (None, "class"):
            reports = _verdicts(
                synthetic_reference,
                lambda r, n, i, s=shift, o=order: _world(
                    r, n, cls=None if o is None else i % 5, **s
                ),
                windows=20,
            )
            assert _share(reports, "flagged") >= 0.9, (shift, order)
            assert _share(reports[3:]) >= 0.9, (shift, order)
            assert fired in reports[-1].fired


def test_a_class_prior_change_alarms_only_when_asked(synthetic_reference):
    def skewed(r, n, i):
        return _world(r, n, prior=[0.8, 0.05, 0.05, 0.05, 0.05])

    quiet = _verdicts(synthetic_reference, skewed, windows=20)
    assert _share(quiet) == 0.0 and all(r.class_mix["differs"] for r in quiet)
    loud = _verdicts(synthetic_reference, skewed, windows=20, class_mix_alarm=True)
    assert _share(loud, "flagged") == 1.0 and "classes" in loud[-1].fired
    assert loud[-1].to_dict()["class_mix"]["line"].startswith("class mix differs")


def _objects(rng, n, size=1.0, gain=1.0, offset=0.0):
    """IR-like frames (N, 1, 32, 32) of a warm square on a noisy background, with an
    automatic gain that maps each frame's own range to the same counts, and logits of a
    calibrated stand-in model: the class (0-4) sets the square's side, 6 + 2 * class pixels,
    times ``size`` (a camera moved further away shows smaller objects)."""
    c = rng.choice(5, n)
    x = rng.normal(0.0, 0.05, (n, 1, 32, 32))
    for i, side in enumerate(np.round((6 + 2 * c) * size).astype(int)):
        top, left = rng.integers(0, 32 - side, 2)
        x[i, 0, top : top + side, left : left + side] += 1.0
    lo, hi = np.percentile(x, 1, axis=(1, 2, 3)), np.percentile(x, 99, axis=(1, 2, 3))
    x = 8000 + 1000 * (x - lo[:, None, None, None]) / (hi - lo)[:, None, None, None]
    logits = 4.0 * np.eye(5)[c] + rng.normal(0, 0.3, (n, 5))
    return (gain * x + offset).astype(np.float32), logits.astype(np.float32)


def test_foreground_follows_what_fills_the_frame_not_the_gain():
    """A camera moved further away (a new mount) shows smaller objects: under an automatic
    gain the percentiles hardly move, the foreground share does; a new gain or offset moves the
    percentiles and leaves the foreground share as it was."""
    x, _ = _objects(np.random.default_rng(0), 200)
    base = input_signals(x, "ir")
    again = input_signals(1.7 * x - 300, "ir")
    np.testing.assert_allclose(again["foreground"], base["foreground"])
    assert not np.allclose(again["p50"], base["p50"])
    smaller = input_signals(_objects(np.random.default_rng(0), 200, size=0.7)[0], "ir")
    assert smaller["foreground"].mean() < 0.7 * base["foreground"].mean()
    flat = input_signals(np.full((1, 1, 8, 8), 8000, np.float32), "ir")
    assert flat["foreground"][0] == 0.0  # nothing stands out of a flat frame

    rng = np.random.default_rng(1)
    ref = build_reference(*_objects(rng, 768), "ir", CLASSES, frames={"frame_size": [32, 32]})
    for size, drifted in ((1.0, False), (0.7, True)):
        reports = _verdicts(ref, lambda r, n, i, s=size: _objects(r, n, size=s), windows=10)
        assert (_share(reports[2:]) == 1.0) if drifted else (_share(reports) == 0.0), size
    assert "foreground" in reports[-1].fired
    # a reference recorded before the foreground signal existed monitors without it
    del ref["signals"]["foreground"], ref["per_frame"]["signals"]["foreground"]
    old = _verdicts(ref, lambda r, n, i: _objects(r, n), windows=3)
    assert "foreground" not in old[-1].signals and "p50" in old[-1].signals


def test_correlated_frames_count_for_less(synthetic_reference):
    """Frames repeated in runs (a robot's camera sees one view for many frames): the window's
    variance grows with the runs, and in-distribution windows stay undrifted."""
    rng = np.random.default_rng(7)
    assert dependence_factor(rng.normal(size=128)) < 1.6
    assert dependence_factor(np.repeat(rng.normal(size=16), 8)) > 3.0

    def repeated(r, n, i):
        x, logits = _world(r, n // 8, cls=i % 5)
        return np.repeat(x, 8, axis=0), np.repeat(logits, 8, axis=0)

    reports = _verdicts(synthetic_reference, repeated, windows=40)
    assert _share(reports) == 0.0 and _share(reports, "flagged") <= 0.05
    assert min(s["dependence"] for s in reports[0].signals.values()) > 2.0


def test_logits_alone_judge_the_output_signals(synthetic_reference):
    rng = np.random.default_rng(3)
    mon = Monitor(synthetic_reference, window=64, class_mix_alarm=True)
    _, logits = _world(rng, 64, prior=[0.9, 0.025, 0.025, 0.025, 0.025])
    (report,) = mon.observe_batch(logits=logits)
    assert not report.inputs and "valid_share" not in report.signals
    assert report.flagged and "classes" in report.fired


def test_a_version_1_sidecar_still_monitors(synthetic_reference):
    """Sidecars written before the per-class comparison: their held-back frames are the reference."""
    ref = synthetic_reference
    old = {k: v for k, v in ref.items() if k != "per_frame"}
    old["version"] = 1
    old["held_back"] = {
        "signals": {k: v[:256] for k, v in ref["per_frame"]["signals"].items()},
        "predicted": ref["per_frame"]["predicted"][:256],
    }
    reports = _verdicts(old, lambda r, n, i: _world(r, n), windows=10)
    assert _share(reports) == 0.0
    shifted = _verdicts(old, lambda r, n, i: _world(r, n, holes=0.3), windows=5)
    assert shifted[-1].verdict == "drifted"
    with pytest.raises(ArtifactError, match="lack 'held_back'"):
        Monitor({k: v for k, v in old.items() if k != "held_back"})


def test_frame_by_frame_with_partial_window(synthetic_reference):
    rng = np.random.default_rng(4)
    mon = Monitor(synthetic_reference, window=10)
    x, logits = _world(rng, 13)
    reports = [mon.observe(x[i], logits[i]) for i in range(13)]
    assert [r is not None for r in reports].count(True) == 1 and reports[9].frames == 10
    last = mon.flush()
    assert last.frames == 3 and last.first_frame == 10
    assert mon.flush() is None


def test_bad_frames_and_empty_windows_are_one_line_errors(synthetic_reference):
    mon = Monitor(synthetic_reference, window=8)
    with pytest.raises(DataError, match="a depth model takes 1 channel"):
        mon.observe(np.zeros((3, 16, 16), np.float32), np.zeros(5, np.float32))
    with pytest.raises(DataError, match="frame is 32x32, the reference statistics were recorded"):
        mon.observe(np.zeros((1, 32, 32), np.float32), np.zeros(5, np.float32))
    with pytest.raises(DataError, match="reference is for 5 classes"):
        mon.observe(logits=np.zeros(7, np.float32))
    with pytest.raises(DataError, match="empty window"):
        mon.judge({}, np.zeros(0, int))
    with pytest.raises(ArtifactError, match="no reference statistics"):
        Monitor({}, window=8)


# ------------------------------------------------------------------------- with a real model


@pytest.fixture(scope="module")
def depth_onnx(depth_ckpt, synth_root, tmp_path_factory):
    """depth_ckpt exported with reference statistics on target/train (40 frames)."""
    out = tmp_path_factory.mktemp("monitor") / "depth.onnx"
    ref = synth_root / "depth" / "target" / "train"
    export(depth_ckpt, out, ExportOptions(show_progress=False, reference=ref, batch=(1, 8)))
    return out


def test_export_records_reference_statistics(depth_onnx):
    doc = read_sidecar(depth_onnx)
    ref = doc["reference"]
    assert ref["computed_with"] == "depth.onnx" and ref["modality"] == "depth"
    assert ref["version"] == 2 and ref["frames"]["reference"] == 40  # every frame, none held back
    assert ref["frames"]["frame_size"] == [64, 64] and ref["frames"]["image_size"] == 64
    assert set(ref["signals"]) == {
        "valid_share",
        "p05",
        "p50",
        "p95",
        "max_prob",
        "entropy",
    }
    q = ref["signals"]["p50"]["quantiles"]
    assert q == sorted(q) and 300 < q[100] < 6000  # median depth of a frame, in mm
    assert sum(ref["class_shares"]) == pytest.approx(1.0)
    frames = ref["per_frame"]
    assert len(frames["predicted"]) == 40 and len(frames["signals"]["p50"]) == 40
    probs = np.asarray(frames["probs"])
    assert probs.shape == (40, 10) and np.allclose(probs.sum(1), 1.0, atol=1e-4)
    assert (probs.argmax(1) == frames["predicted"]).all()


def _write_depth(folder, frames):
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        Image.fromarray(np.clip(f[0], 0, 65535).astype(np.uint16)).save(folder / f"f{i:03d}.png")


def _frames(root):
    from socket_edge.data.readers import read_depth

    return [read_depth(p) for p in sorted(root.rglob("*.png"))]


@pytest.fixture(scope="module")
def streams(tmp_path_factory):
    """`synth --stream` of 100 test scenes (10 per class) in runs of one class, clean and through
    the depth-sensor shift (the same scenes): 60 s at 4 Hz, dwell 2-5 s."""
    root = tmp_path_factory.mktemp("streams")
    common = ["--per-class", "40", "--modality", "depth", "--stream", "60", "--dwell", "2,5"]
    for name, extra in (("clean", []), ("shifted", ["--shift", "depth-sensor"])):
        r = run_cli("synth", str(root / name), *common, "--rate", "4", "--workers", "1", *extra)
        assert r.returncode == 0, r.stderr
    return root


def test_synth_stream_writes_runs_of_one_class(streams):
    base = streams / "clean/depth/stream"
    doc = json.loads((base / "stream.json").read_text())
    ordered = sorted((base / "ordered").glob("*.png"))
    assert len(ordered) == 240 == len(doc["ordered"]) == len(list((base / "shuffled").glob("*")))
    assert len(list((base / "scenes").rglob("*.png"))) == 100
    runs = doc["runs"]
    assert sum(r["frames"] for r in runs) == 240
    assert all(8 <= r["frames"] <= 20 for r in runs[:-1])  # 2-5 s at 4 Hz (the last is cut)
    assert all(a["class"] != b["class"] for a, b in zip(runs[:-1], runs[1:], strict=True))
    labels = [f["class"] for f in doc["ordered"]]
    assert labels[: runs[0]["frames"]] == [runs[0]["class"]] * runs[0]["frames"]
    # a frame is its scene's file; the shifted stream has the same scenes, seen otherwise
    first = doc["ordered"][0]["scene"]
    assert ordered[0].read_bytes() == (base / "scenes" / f"{first}.png").read_bytes()
    shifted = streams / "shifted/depth/stream"
    assert json.loads((shifted / "stream.json").read_text())["ordered"] == doc["ordered"]
    assert ordered[0].read_bytes() != (shifted / "ordered" / ordered[0].name).read_bytes()
    k = json.loads((base / "stream.json").read_text())["shuffled"][5]
    assert (base / "shuffled/000005.png").read_bytes() == ordered[k].read_bytes()


def test_cli_class_ordered_clean_frames_pass_and_a_shifted_sensor_is_drifted(
    depth_ckpt, streams, tmp_path
):
    """The issue's case: the frames the reference was recorded on, read in class order (runs of
    one class), are not drift (exit 0); the same scenes through another depth sensor are (4)."""
    onnx = tmp_path / "depth.onnx"
    scenes = streams / "clean/depth/stream/scenes"
    export(depth_ckpt, onnx, ExportOptions(show_progress=False, reference=scenes, batch=(1, 8)))
    for folder in (scenes, streams / "clean/depth/stream/ordered"):  # class order, both
        r = run_cli(
            "monitor", str(onnx), str(folder), "--window", "32", "--frame-rate", "4",
            "--jsonl", str(tmp_path / "clean.jsonl"),
        )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
    lines = [json.loads(x) for x in (tmp_path / "clean.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and lines[0]["frames"] == 32 and lines[-1]["frames"] == 16
    assert all(w["verdict"] == "ok" and not w["flagged"] for w in lines)
    assert all(w["class_mix"]["line"].startswith("class mix ") for w in lines)
    r = run_cli(
        "monitor", str(onnx), str(streams / "shifted/depth/stream/ordered"), "-w", "32",
        "--frame-rate", "4", "--json", str(tmp_path / "s.json"),
    )  # fmt: skip
    assert r.returncode == 4, r.stderr + r.stdout
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["verdict"] == "drifted" and doc["exit_code"] == 4
    assert doc["rule"]["confirm"] == 2 and doc["rule"]["frame_rate"] == 4
    assert sum(w["verdict"] == "drifted" for w in doc["windows"]) >= len(doc["windows"]) - 1
    assert "valid_share" in doc["windows"][1]["fired"]
    assert "drifted" in r.stdout  # the table


def test_cli_bad_input(depth_onnx, depth_ckpt, synth_root, tmp_path):
    rgb = synth_root / "source_rgb/val"
    assert_one_line_error(run_cli("monitor", str(depth_onnx), str(rgb)), "8-bit", "16-bit depth")
    big = [np.kron(f, np.ones((1, 2, 2))) for f in _frames(synth_root / "depth/target/test")[:3]]
    _write_depth(tmp_path / "big", big)
    assert_one_line_error(
        run_cli("monitor", str(depth_onnx), str(tmp_path / "big")), "frame is 128x128"
    )
    (tmp_path / "empty").mkdir()
    assert_one_line_error(
        run_cli("monitor", str(depth_onnx), str(tmp_path / "empty")), "no frames found"
    )
    bare = tmp_path / "bare.onnx"
    export(depth_ckpt, bare, ExportOptions(show_progress=False, batch=(1,)))
    assert "reference" not in read_sidecar(bare)
    assert_one_line_error(
        run_cli("monitor", str(bare), str(synth_root / "depth/target/test")),
        "bare.onnx",
        "no reference statistics",
    )


def test_monitor_runs_without_torch(depth_onnx, synth_root):
    code = f"""
import sys
sys.modules['torch'] = None  # any import of torch fails
from socket_edge.monitor import Monitor
from socket_edge.monitor.frames import list_frames, read_frame
mon = Monitor.from_artifact({str(depth_onnx)!r}, window=5)
files = list_frames([__import__('pathlib').Path({str(synth_root / "depth/target/test")!r})])
reports = [mon.step(read_frame(p, 'depth', mon.frame_size))[1] for p in files[:10]]
print(sum(r is not None for r in reports), reports[4].verdict in ('ok', 'drifting', 'drifted'))
assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["2", "True"]


def test_engine_sidecar_carries_the_reference(depth_onnx, tmp_path):
    """An engine's sidecar is its ONNX model's plus `tensorrt`: the monitor reads it alike."""
    from socket_edge.artifact import write_sidecar

    engine = tmp_path / "depth.fp16.engine"
    engine.write_bytes(b"not built here")
    doc = {
        **read_sidecar(depth_onnx),
        "artifact": engine.name,
        "kind": "engine",
        "sha256": sha256_file(engine),
    }
    write_sidecar(engine, doc)
    mon = Monitor.from_artifact(engine, window=4, load_model=False)  # no TensorRT needed
    reports = mon.observe_batch(logits=np.eye(10, dtype=np.float32)[[0, 1, 2, 3]] * 5)
    assert len(reports) == 1 and not reports[0].inputs


def test_monitor_help_has_examples_and_exit_codes():
    r = run_cli("monitor", "--help")
    assert r.returncode == 0 and "Examples" in r.stdout and "drifted" in r.stdout


def test_numpy_resize_matches_the_inference_resize():
    from socket_edge.data.transforms import interpolation_for, resize_center_crop
    from socket_edge.data.transforms import resize_center_crop_torch as torch_resize

    rng = np.random.default_rng(0)
    depth = rng.uniform(0, 5000, (1, 48, 80)).astype(np.float32)
    np.testing.assert_array_equal(
        resize_center_crop(depth, 32, interpolation_for("depth")),
        torch_resize(depth, 32, "nearest-exact").numpy(),
    )
    rgb = rng.uniform(0, 1, (3, 40, 30)).astype(np.float32)
    ours = resize_center_crop(rgb, 16, interpolation_for("rgb"))
    assert ours.shape == (3, 16, 16)
    np.testing.assert_allclose(ours, torch_resize(rgb, 16, "bilinear").numpy(), atol=2e-5)


def test_rank_tests_allow_for_tied_values():
    """Signals with ties (integer millimetres; a model whose outputs hardly vary): a window
    drawn from the reference is not flagged, a window of one tied value equal to all of the
    reference's is no evidence (z = 0), and a real move is still seen."""
    from socket_edge.monitor.reference import ReweightedReference

    rng = np.random.default_rng(0)
    n_ref = 600
    values = {"p50": rng.integers(0, 4, n_ref).astype(float), "max_prob": np.full(n_ref, 0.1)}
    ref = {
        "classes": 2,
        "class_shares": [0.5, 0.5],
        "per_frame": {"predicted": [0, 1] * (n_ref // 2), "signals": values},
    }
    r = ReweightedReference(ref, ("p50", "max_prob"))
    w = np.ones(n_ref)
    same = [r.test("p50", rng.integers(0, 4, 128).astype(float), w) for _ in range(200)]
    flagged = sum(t.p < 0.01 for t in same)
    assert flagged <= 6, flagged  # ~1% expected; the continuous null moments flag most
    tied = r.test("max_prob", np.full(128, 0.1), w)
    assert (tied.location, tied.spread) == (0.0, 0.0)
    moved = r.test("p50", rng.integers(1, 5, 128).astype(float), w)
    assert moved.location > 5
