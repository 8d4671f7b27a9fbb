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
from socket_edge.monitor.reference import build_reference, ks_distance, tv_distance

from .conftest import run_cli
from .helpers import assert_one_line_error

CLASSES = [f"c{i}" for i in range(5)]


def _world(rng, n, holes=0.05, scale=1.0, prior=None):
    """Synthetic depth frames (N, 1, 16, 16) and logits (N, 5): a stand-in sensor and model."""
    x = rng.uniform(500, 4000, (n, 1, 16, 16)) * scale
    x[rng.random(x.shape) < holes] = 0
    cls = rng.choice(5, n, p=prior)
    logits = rng.normal(0, 1, (n, 5))
    logits[np.arange(n), cls] += 3.0
    return x.astype(np.float32), logits.astype(np.float32)


@pytest.fixture(scope="module")
def synthetic_reference():
    rng = np.random.default_rng(0)
    ref, held = _world(rng, 512), _world(rng, 256)
    return build_reference(*ref, *held, "depth", CLASSES, frames={"frame_size": [16, 16]})


def _drifted_share(reference, make, windows=150, size=32, seed=1):
    rng = np.random.default_rng(seed)
    mon = Monitor(reference, window=size)
    verdicts = []
    for _ in range(windows):
        x, logits = make(rng, size)
        verdicts += [r.verdict for r in mon.observe_batch(x, logits)]
    assert len(verdicts) == windows
    return np.mean([v == "drifted" for v in verdicts]), np.mean([v != "ok" for v in verdicts])


def test_distances_are_zero_for_identical_data_and_grow_with_shift():
    sketch = np.sort(np.random.default_rng(0).normal(size=201))
    assert ks_distance(sketch[None], sketch)[0] == 0.0
    assert ks_distance(sketch[None] + 0.5, sketch)[0] > ks_distance(sketch[None] + 0.1, sketch)[0]
    assert ks_distance(np.full((1, 10), 99.0), sketch)[0] == 1.0
    shares = np.full(4, 0.25)
    assert tv_distance(np.array([[0, 1, 2, 3]]), shares)[0] == 0.0
    assert tv_distance(np.array([[0, 0, 0, 0]]), shares)[0] == pytest.approx(0.75)


def test_false_alarms_stay_near_the_stated_rate_on_in_distribution_windows(synthetic_reference):
    drifted, not_ok = _drifted_share(synthetic_reference, _world, windows=300)
    # 1% drifted and 5% drifting stated; bootstrapped thresholds are conservative.
    assert drifted <= 0.03
    assert not_ok <= 0.10


@pytest.mark.parametrize(
    "shift",
    [
        dict(holes=0.3),  # a sensor that loses readings
        dict(scale=0.8),  # a range offset
        dict(prior=[0.8, 0.05, 0.05, 0.05, 0.05]),  # one class much more frequent
    ],
)
def test_shifts_are_called_drifted(synthetic_reference, shift):
    drifted, _ = _drifted_share(synthetic_reference, lambda r, n: _world(r, n, **shift), 40)
    assert drifted >= 0.9


def test_logits_alone_judge_the_output_signals(synthetic_reference):
    rng = np.random.default_rng(3)
    mon = Monitor(synthetic_reference, window=64)
    _, logits = _world(rng, 64, prior=[0.9, 0.025, 0.025, 0.025, 0.025])
    (report,) = mon.observe_batch(logits=logits)
    assert not report.inputs and "valid_share" not in report.signals
    assert report.verdict == "drifted" and "classes" in report.fired


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
    assert ref["frames"]["reference"] + ref["frames"]["held_back"] == 40
    assert ref["frames"]["frame_size"] == [64, 64] and ref["frames"]["image_size"] == 64
    assert set(ref["signals"]) == {"valid_share", "p05", "p50", "p95", "max_prob", "entropy"}
    q = ref["signals"]["p50"]["quantiles"]
    assert q == sorted(q) and 300 < q[100] < 6000  # median depth of a frame, in mm
    assert sum(ref["class_shares"]) == pytest.approx(1.0)
    assert len(ref["held_back"]["predicted"]) == ref["frames"]["held_back"]


def _write_depth(folder, frames):
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        Image.fromarray(np.clip(f[0], 0, 65535).astype(np.uint16)).save(folder / f"f{i:03d}.png")


def _frames(root):
    from socket_edge.data.readers import read_depth

    return [read_depth(p) for p in sorted(root.rglob("*.png"))]


def test_cli_clean_frames_pass_and_a_broken_sensor_is_drifted(depth_onnx, synth_root, tmp_path):
    clean = _frames(synth_root / "depth/target/train")
    rng = np.random.default_rng(0)
    broken = [np.where(rng.random(f.shape) < 0.5, 0, f * 0.6) for f in clean]
    _write_depth(tmp_path / "broken", broken)
    r = run_cli(
        "monitor", str(depth_onnx), str(synth_root / "depth/target/train"), "--window", "20",
        "--jsonl", str(tmp_path / "clean.jsonl"),
    )  # fmt: skip
    assert r.returncode in (0, 3), r.stderr  # the reference's own frames: never drifted
    lines = (tmp_path / "clean.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["frames"] == 20
    r = run_cli(
        "monitor", str(depth_onnx), str(tmp_path / "broken"), "-w", "20",
        "--json", str(tmp_path / "b.json"),
    )  # fmt: skip
    assert r.returncode == 4, r.stderr + r.stdout
    doc = json.loads((tmp_path / "b.json").read_text())
    assert doc["verdict"] == "drifted" and doc["exit_code"] == 4
    assert "valid_share" in doc["windows"][0]["fired"]
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
