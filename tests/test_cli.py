"""The command line: help, one-line errors on bad input, exit codes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from .helpers import assert_one_line_error


@pytest.mark.parametrize(
    "command",
    ["synth", "train-source", "adapt", "eval", "doctor", "export", "bench", "demo", "convert"],
)
def test_every_command_has_help_with_examples(cli, command):
    result = cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Examples" in result.stdout


def test_top_level_help_lists_the_contract(cli):
    result = cli("--help")
    assert result.returncode == 0
    for command in ("synth", "train-source", "adapt", "eval", "export", "bench", "demo", "doctor"):
        assert command in result.stdout


def test_fixed_choices_are_the_librarys_and_bad_ones_get_typers_error(cli, monkeypatch):
    from socket_edge.adapt.config import BN_SCALES, METHODS, TI_DISTANCES
    from socket_edge.calibration.ranges import METHODS as CALIB_METHODS
    from socket_edge.cli import choices
    from socket_edge.convert.diml import RESOLUTIONS
    from socket_edge.convert.nyuv2 import DEPTH_KEYS
    from socket_edge.convert.sunrgbd import DEPTH_FOLDERS
    from socket_edge.data.shapes import TI_SHAPE_SETS
    from socket_edge.data.shifts import SHIFTS
    from socket_edge.export.tensorrt import INT8_MODES
    from socket_edge.models.backbones import BACKBONES
    from socket_edge.runtime.onnxruntime import PROVIDER_ALIASES

    def values(enum):
        return tuple(e.value for e in enum)

    assert values(choices.Method) == METHODS
    assert values(choices.Arch) == tuple(BACKBONES)
    assert values(choices.CalibMethod) == CALIB_METHODS
    assert values(choices.Int8Mode) == INT8_MODES
    assert values(choices.BNScale) == BN_SCALES
    assert values(choices.TIDistance) == TI_DISTANCES
    assert values(choices.Shift) == SHIFTS
    assert values(choices.TIShapes) == tuple(TI_SHAPE_SETS)
    assert values(choices.DepthMap) == tuple(DEPTH_FOLDERS) == tuple(DEPTH_KEYS)
    assert values(choices.Resolution) == RESOLUTIONS
    assert values(choices.OrtDevice) == tuple(PROVIDER_ALIASES)
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping inside the words checked below
    r = cli("adapt", "--source", "s.pt", "--target", "t", "--out", "o.pt", "--modality", "rgb")
    assert r.returncode == 2
    assert "Invalid value for '--modality'" in r.stderr
    assert "'rgb' is not one of 'depth', 'ir'" in r.stderr
    assert "socket|shot|source-only" in cli("adapt", "--help").stdout


@pytest.mark.parametrize(
    "command,table",
    [("train-source", "train"), ("adapt", "adapt"), ("export", "export"), ("bench", "bench")],
)
def test_help_keeps_the_config_table_name(cli, monkeypatch, command, table):
    """Rich markup must not eat '[train]' (help once said 'its  table sets defaults')."""
    monkeypatch.setenv("COLUMNS", "200")
    assert f"[{table}] table" in cli(command, "--help").stdout


def _rgb_tree(root, corrupt: bytes | None = None):
    for cls in ("a", "b"):
        for i in range(2):
            path = root / cls / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(path)
    if corrupt is not None:
        (root / "b" / "bad.png").write_bytes(corrupt)


def test_train_source_on_an_empty_folder(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("train-source", str(tmp_path / "empty"), "--out", str(tmp_path / "m.pt"))
    assert_one_line_error(result, "empty", "no images found")
    assert result.returncode == 2
    assert not (tmp_path / "m.pt").exists()


def test_train_source_without_class_subfolders(cli, tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "x.png")
    result = cli("train-source", str(tmp_path), "--out", str(tmp_path / "m.pt"))
    assert_one_line_error(result, "class subfolders")


@pytest.mark.parametrize(
    "payload,problem", [(b"", "empty file (0 bytes)"), (b"GIF89a garbage", "not a readable image")]
)
def test_corrupt_or_empty_image_is_named(cli, tmp_path, payload, problem):
    _rgb_tree(tmp_path / "data", corrupt=payload)
    result = cli(
        "train-source",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "m.pt"),
        "--epochs",
        "1",
        "--image-size",
        "32",
        "--arch",
        "mobilenet_v3_small",
    )
    assert_one_line_error(result, "bad.png", problem)
    assert not (tmp_path / "m.pt").exists()


def test_eight_bit_depth_where_16_bit_is_expected(cli, tmp_path, synth_root, depth_ckpt):
    data = tmp_path / "test"
    shutil.copytree(synth_root / "depth" / "target" / "test", data)
    victim = next((data / "cube").iterdir())
    Image.fromarray(np.full((64, 64), 90, np.uint8)).save(victim)
    result = cli("eval", str(depth_ckpt), "--data", str(data))
    assert_one_line_error(result, victim.name, "8-bit image where 16-bit depth")


def test_eval_checkpoint_json(cli, tmp_path, synth_root, depth_ckpt):
    out = tmp_path / "acc.json"
    result = cli(
        "eval", str(depth_ckpt), "--data", str(synth_root / "depth/target/test"), "--json", str(out)
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(out.read_text())
    from socket_edge.evaluate import evaluate_artifact

    here = evaluate_artifact(depth_ckpt, synth_root / "depth/target/test", show_progress=False)
    assert doc == json.loads(json.dumps(here.to_dict()))  # the library's figures, as JSON
    assert doc["n"] == 20 and len(doc["per_class"]) == 10
    # 2 images per class: top-1 is the mean of the per-class accuracies
    assert doc["top1"] == pytest.approx(sum(doc["per_class"].values()) / 10)


def test_missing_and_foreign_checkpoints(cli, tmp_path, synth_root):
    result = cli("eval", str(tmp_path / "nope.pt"), "--data", str(synth_root / "depth/target/test"))
    assert_one_line_error(result, "nope.pt", "no such file")
    (tmp_path / "foreign.pt").write_bytes(b"\x00" * 64)
    result = cli(
        "eval", str(tmp_path / "foreign.pt"), "--data", str(synth_root / "depth/target/test")
    )
    assert_one_line_error(result, "foreign.pt", "not a socket-edge checkpoint")


def test_debug_shows_the_traceback(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli(
        "train-source", str(tmp_path / "empty"), "--out", str(tmp_path / "m.pt"), "--debug"
    )
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "DataError" in result.stderr


def test_doctor_json(cli):
    result = cli("doctor", "--json", "-")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["python"] and doc["torch"] and "CPUExecutionProvider" in doc["onnxruntime_providers"]
    assert "tensorrt" in doc  # None where TensorRT is absent (type stubs alone do not count)
    assert "gloo" in doc["distributed_backends"]  # what `torchrun ... adapt` uses on CPUs


def test_synth_cli_writes_the_layout(cli, tmp_path):
    result = cli("synth", str(tmp_path / "s"), "--per-class", "2", "--size", "32", "--workers", "1")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "s" / "synth.json").read_text())
    assert manifest["counts"]["source_train"] == 2
    assert (tmp_path / "s" / "ir" / "paired" / "ir").is_dir()
