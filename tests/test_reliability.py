"""Nothing wrong may look right: verified artifacts, one writer per output, all-or-nothing export
sets, untrusted files. Each bad case: a one-line error (or the stated warning), a
non-zero exit, no traceback, nothing half-written."""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from socket_edge.artifact import (
    check_external_data,
    digest,
    dump_sidecar,
    read_sidecar,
    sidecar_path,
    verify_artifact,
    write_sidecar,
)
from socket_edge.errors import ArtifactError, DataError, SocketEdgeError

from .helpers import assert_one_line_error


@pytest.fixture(scope="module")
def exported(depth_ckpt, tmp_path_factory) -> Path:
    """model.onnx + model.json from `export` (no parity run, to stay fast)."""
    from socket_edge.export.pipeline import ExportOptions, export

    out = tmp_path_factory.mktemp("exported") / "model.onnx"
    export(depth_ckpt, out, ExportOptions(verify=False, show_progress=False))
    return out


@pytest.fixture()
def model(exported, tmp_path) -> Path:
    """A private copy of the exported set."""
    folder = tmp_path / "set"
    folder.mkdir()
    for p in (exported, sidecar_path(exported)):
        shutil.copy2(p, folder / p.name)
    return folder / exported.name


@pytest.fixture()
def test_dir(synth_root) -> Path:
    return synth_root / "depth" / "target" / "test"


def _fake_int8(model: Path, fp32_sha: str) -> Path:
    """An INT8-CPU file beside ``model`` whose sidecar says it was made from ``fp32_sha``."""
    int8 = model.with_name(model.stem + ".int8-cpu.onnx")
    shutil.copy(model, int8)
    doc = read_sidecar(model)
    doc.update(
        artifact=int8.name,
        precision="int8-cpu",
        sha256=digest(int8),
        calibration={"model_sha256": fp32_sha, "fp32_artifact": model.name},
    )
    write_sidecar(int8, doc)
    return int8


# ----------------------------------------------------------------------------- verified reads


def test_exported_set_verifies_and_embeds_its_metadata(model):
    import onnx

    from socket_edge.artifact import onnx_metadata

    doc = verify_artifact(model)
    embedded = onnx_metadata(onnx.load(str(model), load_external_data=False))
    assert embedded["classes"] == doc["classes"] and embedded["modality"] == "depth"
    assert embedded["encoding"] == doc["encoding"]


def test_reversed_classes_in_the_sidecar_are_refused(model, test_dir, cli):
    doc = read_sidecar(model)
    doc["classes"] = doc["classes"][::-1]
    sidecar_path(model).write_text(json.dumps(doc))
    r = cli("eval", str(model), "--data", str(test_dir))
    assert_one_line_error(r, str(model), "model.json", "disagree on classes")
    r = cli("bench", str(model), "--data", str(test_dir), "--iterations", "1", "--warmup-s", "0")
    assert r.returncode == 2 and "disagree on classes" in r.stderr
    assert "Traceback" not in r.stderr
    # the escape hatch: the user says they know
    r = cli("eval", str(model), "--data", str(test_dir), "--no-verify", "--json", "-")
    assert r.returncode == 0, r.stderr


def test_changed_model_file_is_refused(model, test_dir, cli):
    import onnx

    proto = onnx.load(str(model))
    proto.doc_string = "edited after export"
    onnx.save(proto, str(model))
    r = cli("eval", str(model), "--data", str(test_dir))
    assert_one_line_error(r, str(model), "does not match its sidecar model.json", "sha256")


def test_sidecar_without_sha256_cannot_be_verified(model):
    doc = read_sidecar(model)
    doc["sha256"] = None
    sidecar_path(model).write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="records no sha256"):
        verify_artifact(model)


def test_int8_from_an_older_model_is_refused_in_bench(model, test_dir, cli):
    int8 = _fake_int8(model, "0" * 64)
    r = cli(
        "bench", str(model), str(int8), "--data", str(test_dir), "--iterations", "1",
        "--warmup-s", "0", "--no-accuracy", "--no-power",
    )  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr
    assert (
        "model.int8-cpu.onnx" in errors[0] and "another FP32 model than the model.onnx" in errors[0]
    )
    # the same file, made from this model, is accepted
    _fake_int8(model, digest(model))
    verify_artifact(int8)


def test_engine_built_from_another_onnx_is_refused(model):
    engine = model.with_name("model.fp16.engine")
    engine.write_bytes(b"serialized engine")
    doc = read_sidecar(model)
    doc.update(
        artifact=engine.name,
        kind="engine",
        sha256=digest(engine),
        tensorrt={"built_from": {"artifact": model.name, "sha256": "1" * 64}},
    )
    write_sidecar(engine, doc)
    with pytest.raises(ArtifactError, match="was built from another model.onnx"):
        verify_artifact(engine)


def test_sidecar_refuses_nan():
    with pytest.raises(ArtifactError, match=r"parity.max_abs_logit_diff"):
        dump_sidecar({"parity": {"max_abs_logit_diff": float("nan")}}, "model.json")
    assert json.loads(dump_sidecar({"a": 1.0}))["a"] == 1.0


def test_digest_is_cached_by_size_and_mtime(tmp_path, monkeypatch):
    from socket_edge import files

    calls = []
    real = files.sha256_file
    monkeypatch.setattr(files, "sha256_file", lambda p: calls.append(p) or real(p))
    files.clear_digest_cache(disk=True)
    f = tmp_path / "a.bin"
    f.write_bytes(b"x" * 100)
    first = digest(f)
    assert digest(f) == first and len(calls) == 1
    files.clear_digest_cache()  # a new process: the on-disk cache answers
    assert digest(f) == first and len(calls) == 1
    f.write_bytes(b"y" * 100)
    os.utime(f, ns=(1, 1))
    assert digest(f) != first and len(calls) == 2


# ----------------------------------------------------------------------------- external data


def _with_external(model: Path, location: str) -> Path:
    """``model`` re-saved with its first initializer's data pointing at ``location``."""
    import onnx

    proto = onnx.load(str(model))
    t = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    entry = t.external_data.add()
    entry.key, entry.value = "location", location
    onnx.save(proto, str(model))
    return model


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_external_data_outside_the_folder_is_refused(model, test_dir, tmp_path, cli, kind):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 4096)
    if kind == "dotdot":
        location = "../secret.bin"
    elif kind == "absolute":
        location = str(secret)
    else:
        (model.parent / "weights.bin").symlink_to(secret)
        location = "weights.bin"
    _with_external(model, location)
    with pytest.raises(ArtifactError):
        check_external_data(model)
    for args in (["eval", str(model)], ["eval", str(model), "--no-verify"]):
        r = cli(*args, "--data", str(test_dir))
        assert_one_line_error(r, str(model), "external data")
    r = cli("export", str(model), "--trt")
    assert r.returncode != 0 and "Traceback" not in r.stderr


def test_external_data_inside_the_folder_is_allowed(model):
    import onnx

    proto = onnx.load(str(model))
    onnx.save(proto, str(model), save_as_external_data=True, location="model.data")
    check_external_data(model)


# ----------------------------------------------------------------------------- one writer


def test_second_writer_fails_at_once_naming_the_first(synth_root, source_ckpt, tmp_path, cli):
    from socket_edge.outputs import exclusive

    out = tmp_path / "depth.pt"
    with exclusive(out, "adapt"):
        r = cli(
            "adapt", "--source", str(source_ckpt), "--target",
            str(synth_root / "depth/target/train"), "--modality", "depth",
            "--method", "source-only", "--out", str(out),
        )  # fmt: skip
        assert_one_line_error(r, str(out), "another adapt is writing it", f"pid {os.getpid()}")
        r = cli("export", str(source_ckpt), "--out", str(out.with_suffix(".onnx")), "--no-verify")
        assert r.returncode == 0, r.stderr  # another output: no conflict
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["depth.json", "depth.onnx"]


def test_resume_with_another_source_is_refused(synth_root, source_ckpt, tmp_path, cli):
    import torch

    from socket_edge.adapt import AdaptConfig, adapt

    cfg = AdaptConfig(method="shot", epochs=2, batch_size=8, seed=0, device="cpu")
    target = synth_root / "ir/target/train"
    out = tmp_path / "ir.pt"

    class Killed(Exception):
        pass

    def kill(epoch, record):
        raise Killed

    with pytest.raises(Killed):
        adapt(source_ckpt, target, out, "ir", config=cfg, show_progress=False, callbacks=[kill])
    other = tmp_path / "other.pt"
    obj = torch.load(source_ckpt, weights_only=True)
    obj["meta"]["created"] = "another run"
    torch.save(obj, other)
    args = [
        "adapt", "--target", str(target), "--modality", "ir", "--method", "shot", "--epochs",
        "2", "--batch-size", "8", "--seed", "0", "--device", "cpu", "--out", str(out),
        "--resume",
    ]  # fmt: skip
    r = cli(*args, "--source", str(other))
    assert_one_line_error(r, "--resume refused", "the --source checkpoint (sha256)")
    r = cli(*args, "--source", str(source_ckpt), "--lr", "0.5")
    assert_one_line_error(r, "--resume refused", "lr 0.01 -> 0.5")
    assert not out.exists()
    with pytest.raises(SocketEdgeError, match="the target folder"):
        adapt(source_ckpt, synth_root / "depth/target/train", out, "ir", config=cfg,
              show_progress=False, resume=True)  # fmt: skip


def test_half_written_log_line_is_dropped_with_a_warning(synth_root, source_ckpt, tmp_path, cli):
    out = tmp_path / "depth.pt"
    log = tmp_path / "depth.log.jsonl"
    log.write_text('{"epoch": 1, "loss": 0.5}\n{"epoch": 2, "lo')
    r = cli(
        "adapt", "--source", str(source_ckpt), "--target", str(synth_root / "depth/target/train"),
        "--modality", "depth", "--method", "source-only", "--out", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "dropped its last line" in r.stderr and "Traceback" not in r.stderr
    assert out.exists()


# ----------------------------------------------------------------------------- all or nothing


def _killed_commit(model: Path) -> Path:
    """A kill after the journal and the first rename: a new model.onnx beside the old sidecar,
    the new sidecar still in the staging folder (returned)."""
    import onnx

    from socket_edge.outputs import MANIFEST, staging_prefix

    staging = model.parent / (staging_prefix(model) + "killed")
    staging.mkdir()
    proto = onnx.load(str(model))
    proto.doc_string = "the new export"
    onnx.save(proto, str(staging / model.name))
    doc = read_sidecar(model)
    doc["sha256"] = digest(staging / model.name)
    write_sidecar(model, doc, staging / sidecar_path(model).name)
    moves = [[model.name, model.name], [sidecar_path(model).name, sidecar_path(model).name]]
    (staging / MANIFEST).write_text(json.dumps({"out": model.name, "moves": moves}))
    os.replace(staging / model.name, model)
    return staging


def test_a_reader_refuses_a_killed_commit_and_moves_nothing(model, test_dir, cli):
    """Reading never writes: eval names the export to rerun and leaves every file as it was."""
    staging = _killed_commit(model)
    before = {p.name: p.read_bytes() for p in [model, sidecar_path(model), *staging.iterdir()]}
    r = cli("eval", str(model), "--data", str(test_dir), "--json", "-")
    assert_one_line_error(r, "was stopped while moving its files into place", "rerun that export")
    after = {p.name: p.read_bytes() for p in [model, sidecar_path(model), *staging.iterdir()]}
    assert after == before


def test_the_writers_roll_a_killed_commit_forward(model):
    """An export (or an engine build from its model) first finishes the killed one's set."""
    from socket_edge.outputs import finish_interrupted_export

    staging = _killed_commit(model)
    new_sha = digest(model)
    finish_interrupted_export(model)
    assert not staging.exists() and read_sidecar(model)["sha256"] == new_sha
    verify_artifact(model)


def test_a_reader_waits_for_a_running_commit(model):
    """A journal whose export is still running (its lock names a live process) is waited for."""
    import socket
    import threading

    from socket_edge.outputs import lock_info_path, pending_commit

    staging = _killed_commit(model)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}
    lock_info_path(model).write_text(json.dumps({**info, "command": "export"}))
    timer = threading.Timer(0.3, shutil.rmtree, [staging])  # the writer finishing its moves
    timer.start()
    try:
        assert pending_commit(model, wait_s=10) is None
    finally:
        timer.join()
    assert pending_commit(model, wait_s=0) is None


def test_mix_without_a_journal_is_refused(model, exported, test_dir, tmp_path, cli):
    """A new model.onnx copied beside an old model.json (no journal): refused, not accepted."""
    import onnx

    proto = onnx.load(str(model))
    proto.doc_string = "newer"
    onnx.save(proto, str(model))
    r = cli("eval", str(model), "--data", str(test_dir))
    assert_one_line_error(r, "does not match its sidecar")


def test_next_export_removes_only_its_own_leftovers(depth_ckpt, tmp_path, cli):
    out = tmp_path / "model.onnx"
    mine = [
        tmp_path / ".socket-edge-export.model.onnx.k1ll3d",
        tmp_path / ".model.onnx.abc123.tmp",
        tmp_path / ".model.json.abc123.tmp",
    ]
    theirs = [
        tmp_path / ".socket-edge-export.other.onnx.k1ll3d",
        tmp_path / ".other.onnx.abc123.tmp",
        tmp_path / "notes.txt",
    ]
    mine[0].mkdir()
    (mine[0] / "model.onnx").write_bytes(b"half")
    theirs[0].mkdir()
    for p in mine[1:] + theirs[1:]:
        p.write_bytes(b"x")
    r = cli("export", str(depth_ckpt), "--out", str(out), "--no-verify")
    assert r.returncode == 0, r.stderr
    assert not any(p.exists() for p in mine)
    assert all(p.exists() for p in theirs)
    names = sorted(p.name for p in tmp_path.iterdir() if p not in theirs)
    assert names == ["model.json", "model.onnx"]


def test_train_source_removes_temp_files_of_killed_runs(synth_root, tmp_path):
    from socket_edge.supervised import TrainConfig, train_supervised

    out = tmp_path / "src.pt"
    stale = [tmp_path / ".src.pt.x1.tmp", tmp_path / ".src.state.pt.x2.tmp"]
    other = tmp_path / ".other.pt.x3.tmp"
    for p in [*stale, other]:
        p.write_bytes(b"half")
    cfg = TrainConfig(epochs=1, batch_size=16, device="cpu", amp=False)
    train_supervised(synth_root / "source_rgb/train", out, cfg, show_progress=False)
    assert not any(p.exists() for p in stale) and other.exists()


# ----------------------------------------------------------------------------- untrusted images


def _png_header_only(path: Path, width: int, height: int, bit_depth: int = 16) -> None:
    """A PNG whose header claims ``width`` x ``height`` (no pixel data worth decoding)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )  # fmt: skip


def _zero_png(path: Path, width: int, height: int) -> None:
    """A real 16-bit grey PNG of zeros: tiny on disk, huge decoded (zlib of zero rows)."""
    comp = zlib.compressobj(9)
    row = b"\0" * (1 + 2 * width)
    parts = [comp.compress(row) for _ in range(height)] + [comp.flush()]
    idat = b"".join(parts)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def _class_folder_with(synth_root: Path, tmp_path: Path, name: str, writer) -> Path:
    data = tmp_path / "data"
    src = synth_root / "depth/target/test"
    shutil.copytree(src, data)
    cls = sorted(p for p in data.iterdir() if p.is_dir())[0]
    writer(cls / name)
    return cls / name


def test_huge_png_is_refused_before_decoding(synth_root, depth_ckpt, tmp_path, cli):
    bomb = _class_folder_with(
        synth_root, tmp_path, "huge.png", lambda p: _png_header_only(p, 20000, 20000)
    )
    r = cli("eval", str(depth_ckpt), "--data", str(tmp_path / "data"))
    assert_one_line_error(r, str(bomb), "20000x20000", "50 MP limit")


def test_small_file_of_many_pixels_is_refused(synth_root, depth_ckpt, tmp_path, cli):
    bomb = _class_folder_with(
        synth_root, tmp_path, "bomb.png", lambda p: _zero_png(p, 10000, 10000)
    )
    assert bomb.stat().st_size < 400_000
    r = cli("eval", str(depth_ckpt), "--data", str(tmp_path / "data"))
    assert_one_line_error(r, str(bomb), "10000x10000", "100 MP")


def test_pixel_limit_is_settable(tmp_path, monkeypatch):
    from socket_edge.data.readers import read_depth

    f = tmp_path / "d.png"
    _zero_png(f, 200, 100)
    monkeypatch.setenv("SOCKET_EDGE_MAX_MEGAPIXELS", "0.01")
    with pytest.raises(DataError, match="200x100"):
        read_depth(f)
    monkeypatch.setenv("SOCKET_EDGE_MAX_MEGAPIXELS", "1")
    assert read_depth(f).shape == (1, 100, 200)
    big = tmp_path / "big.npy"
    np.save(big, np.zeros((1, 2000, 1000), dtype=np.uint16))
    with pytest.raises(DataError, match="1000x2000"):
        read_depth(big)


def test_empty_class_folder(synth_root, depth_ckpt, tmp_path, cli):
    data = tmp_path / "rgb"
    shutil.copytree(synth_root / "source_rgb/train", data)
    (data / "zz_empty").mkdir()
    r = cli("train-source", str(data), "--out", str(tmp_path / "src.pt"), "--epochs", "1")
    assert_one_line_error(r, "zz_empty", "hold no images")
    assert not (tmp_path / "src.pt").exists()

    test = tmp_path / "test"
    shutil.copytree(synth_root / "depth/target/test", test)
    gone = sorted(p for p in test.iterdir() if p.is_dir())[:2]
    for p in gone:
        shutil.rmtree(p)
    r = cli("eval", str(depth_ckpt), "--data", str(test), "--json", "-")
    assert r.returncode == 0, r.stderr
    warning = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warning) == 1 and all(p.name in warning[0] for p in gone), r.stderr


def test_depth_without_valid_readings_warns_with_counts(depth_ckpt, tmp_path, cli):
    from PIL import Image

    data = tmp_path / "test"
    from socket_edge.models.checkpoint import read_checkpoint

    classes = read_checkpoint(depth_ckpt)["meta"]["classes"]
    for i, c in enumerate(classes):
        (data / c).mkdir(parents=True)
        for k in range(2):
            arr = np.zeros((64, 64), np.uint16)
            if i == 0 and k == 0:
                arr[:] = 1500  # one image with readings
            Image.fromarray(arr).save(data / c / f"{k}.png")
    n = 2 * len(classes)
    r = cli("eval", str(depth_ckpt), "--data", str(data), "--json", "-")
    assert r.returncode == 0, r.stderr
    assert f"{n - 1} of {n} depth images have no valid reading" in r.stderr
