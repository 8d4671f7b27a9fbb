"""Models, checkpoints and supervised training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from socket_edge.data.encoding import default_encoding
from socket_edge.errors import CheckpointError, SocketEdgeError
from socket_edge.models.checkpoint import (
    load_checkpoint,
    make_meta,
    read_checkpoint,
    save_checkpoint,
)
from socket_edge.models.network import SocketNet


@pytest.mark.parametrize(
    "arch,width", [("resnet18", 512), ("mobilenet_v3_small", 576), ("resnet50", 2048)]
)
def test_backbones_have_features_and_classifier(arch, width):
    model = SocketNet(arch, 5, default_encoding("rgb")).eval()
    x = torch.rand(2, 3, 64, 64)
    assert model.backbone(model.encoder(x)).shape == (2, width)
    f = model.features(x)
    assert f.shape == (2, 256)
    torch.testing.assert_close(model.classify(f), model(x))
    assert model(x).shape == (2, 5)


def test_depth_model_takes_one_channel_raw_maps():
    model = SocketNet("resnet18", 3, default_encoding("depth")).eval()
    x = torch.full((2, 1, 64, 64), 1500.0)
    x[:, :, :10] = 0  # missing readings
    out = model(x)
    assert out.shape == (2, 3) and torch.isfinite(out).all()


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = SocketNet("resnet18", 4, default_encoding("ir", colormap="jet")).eval()
    meta = make_meta("resnet18", ["a", "b", "c", "d"], 64, model.encoding, "source")
    save_checkpoint(tmp_path / "m.pt", model, meta)
    loaded, meta2 = load_checkpoint(tmp_path / "m.pt")
    assert meta2["classes"] == ["a", "b", "c", "d"] and meta2["encoding"]["colormap"] == "jet"
    assert meta2["versions"]["torch"] == str(torch.__version__)
    x = torch.rand(3, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_checkpoint_errors(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pt: not a socket-edge checkpoint"):
        read_checkpoint(junk)
    plain = tmp_path / "plain.pt"
    torch.save(SocketNet("resnet18", 2, default_encoding("rgb")).state_dict(), plain)
    with pytest.raises(CheckpointError, match="looks like a plain state_dict"):
        read_checkpoint(plain)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty file"):
        read_checkpoint(empty)
    with pytest.raises(CheckpointError, match="no such file"):
        read_checkpoint(tmp_path / "missing.pt")


def test_wrong_architecture_is_reported(tmp_path):
    model = SocketNet("mobilenet_v3_small", 2, default_encoding("rgb"))
    meta = make_meta("resnet18", ["a", "b"], 64, model.encoding, "source")  # lies about the arch
    save_checkpoint(tmp_path / "liar.pt", model, meta)
    with pytest.raises(CheckpointError, match="weights do not fit architecture resnet18"):
        load_checkpoint(tmp_path / "liar.pt")
    honest = make_meta("mobilenet_v3_small", ["a", "b"], 64, model.encoding, "source")
    save_checkpoint(tmp_path / "mnv3.pt", model, honest)
    with pytest.raises(CheckpointError, match="is a mobilenet_v3_small model, expected resnet18"):
        load_checkpoint(tmp_path / "mnv3.pt", expect_arch="resnet18")


def test_imagenet_weights_from_a_local_file(tmp_path):
    import torchvision

    tv = torchvision.models.resnet18(weights=None)
    torch.save(tv.state_dict(), tmp_path / "r18.pth")
    model = SocketNet("resnet18", 3, default_encoding("rgb"), weights=tmp_path / "r18.pth")
    torch.testing.assert_close(model.backbone.conv1.weight, tv.conv1.weight)
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match="weights do not fit torchvision resnet18"):
        SocketNet("resnet18", 3, default_encoding("rgb"), weights=tmp_path / "m.pth")


def test_unknown_architecture():
    with pytest.raises(SocketEdgeError, match="unknown architecture 'vgg99'"):
        SocketNet("vgg99", 2, default_encoding("rgb"))


def test_train_source_resumes_to_the_same_weights(synth_root, tmp_path):
    from socket_edge.supervised import TrainConfig, train_supervised

    data = synth_root / "source_rgb" / "train"
    cfg = TrainConfig(arch="mobilenet_v3_small", epochs=2, batch_size=16, seed=3, device="cpu")
    train_supervised(data, tmp_path / "full.pt", cfg, show_progress=False)

    class Killed(Exception):
        pass

    def kill_after_first_epoch(epoch, record):
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        train_supervised(
            data,
            tmp_path / "resumed.pt",
            cfg,
            show_progress=False,
            callbacks=[kill_after_first_epoch],
        )
    assert not (tmp_path / "resumed.pt").exists()  # nothing half-written
    assert (tmp_path / "resumed.state.pt").exists()
    train_supervised(data, tmp_path / "resumed.pt", cfg, resume=True, show_progress=False)
    a, _ = load_checkpoint(tmp_path / "full.pt")
    b, _ = load_checkpoint(tmp_path / "resumed.pt")
    for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(ta, tb), name
    log = (tmp_path / "resumed.log.jsonl").read_text().splitlines()
    assert [int(__import__("json").loads(line)["epoch"]) for line in log] == [1, 2]


def test_synth_is_deterministic_and_has_the_layout(tmp_path):
    from socket_edge.data.synth import SynthConfig, synth

    cfg = SynthConfig(size=32, per_class=4, seed=7)
    synth(tmp_path / "a", cfg, workers=1, show_progress=False)
    synth(tmp_path / "b", cfg, workers=2, show_progress=False)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.png"))
    assert files_a == files_b and len(files_a) > 0
    for rel in files_a[::17]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    for m in ("depth", "ir"):
        for split in ("train", "test"):
            assert len(list((tmp_path / "a" / m / "target" / split).iterdir())) == 10
        assert {p.stem for p in (tmp_path / "a" / m / "paired" / "rgb").iterdir()} == {
            p.stem for p in (tmp_path / "a" / m / "paired" / m).iterdir()
        }
    from socket_edge.data.readers import read_depth

    d = read_depth(next((tmp_path / "a" / "depth" / "target" / "test" / "cube").iterdir()))
    assert d.max() > 400 and (d >= 0).all()  # millimetres
    other = tmp_path / "c"
    synth(other, SynthConfig(size=32, per_class=4, seed=8), workers=1, show_progress=False)
    rel = files_a[0]
    assert (tmp_path / "a" / rel).read_bytes() != (other / rel).read_bytes()


def test_synth_task_and_ti_classes_are_disjoint():
    from socket_edge.data.shapes import TASK_SHAPES, TI_SHAPES, TI_UNLIKE_SHAPES

    assert not set(TASK_SHAPES) & set(TI_SHAPES)
    assert not set(TASK_SHAPES) & set(TI_UNLIKE_SHAPES)
    pts = np.random.default_rng(0).uniform(-1.5, 1.5, (2000, 3)).astype(np.float32)
    for name, sdf in {**TASK_SHAPES, **TI_SHAPES, **TI_UNLIKE_SHAPES}.items():
        d = sdf(pts)
        assert d.shape == (2000,) and (d < 0).any() and (d > 0).any(), name


def _nan_checkpoint(path, poisoned: int = 3):
    """A checkpoint file whose first ``poisoned`` float tensors hold NaN (written without the
    save-time check, as a diverged run of an older socket-edge wrote them)."""
    from socket_edge.models.checkpoint import FORMAT, FORMAT_VERSION

    model = SocketNet("resnet18", 2, default_encoding("depth"))
    meta = make_meta("resnet18", ["a", "b"], 64, model.encoding, "adapted")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    floats = [k for k, v in state.items() if v.is_floating_point()]
    for k in floats[:poisoned]:
        state[k].fill_(float("nan"))
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "meta": meta}
    torch.save({**payload, "state_dict": state}, path)
    return path, len(state), floats[0]


def test_checkpoint_with_nan_weights_is_refused_at_load_and_save(tmp_path):
    path, total, first = _nan_checkpoint(tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=rf"nan\.pt: 3 of {total} tensors hold NaN/inf") as e:
        load_checkpoint(path)
    assert first in str(e.value)
    model = SocketNet("resnet18", 2, default_encoding("depth"))
    with torch.no_grad():
        model.classifier.parametrizations.weight.original0.fill_(float("inf"))
    meta = make_meta("resnet18", ["a", "b"], 64, model.encoding, "adapted")
    with pytest.raises(CheckpointError, match=r"out\.pt: 1 of \d+ tensors hold NaN/inf.*refusing"):
        save_checkpoint(tmp_path / "out.pt", model, meta)
    assert list(tmp_path.iterdir()) == [path]  # no temp file left either


def test_export_of_a_nan_model_is_one_line_and_writes_nothing(tmp_path, cli):
    from .helpers import assert_one_line_error

    path, total, _ = _nan_checkpoint(tmp_path / "nan.pt", poisoned=5)
    out = tmp_path / "out" / "model.onnx"
    r = cli("export", str(path), "--out", str(out))
    assert r.returncode == 2
    assert_one_line_error(r, "nan.pt", f"5 of {total} tensors hold NaN/inf")
    assert not out.parent.exists()


def test_parity_fails_on_non_finite_logits(tmp_path, monkeypatch):
    """max(worst, nan) keeps worst: a NaN output must fail explicitly."""
    from socket_edge.export import parity
    from socket_edge.export.onnx_export import example_input, export_onnx

    model = SocketNet("resnet18", 2, default_encoding("depth")).eval()
    export_onnx(model, tmp_path / "m.onnx", "depth", 64, 17)
    x = example_input("depth", 64, batch=2, seed=0).numpy()
    assert parity.parity_check(model, tmp_path / "m.onnx", x, [1, 2])["passed"]
    real = parity.ort_logits
    monkeypatch.setattr(parity, "ort_logits", lambda s, x, b=64: real(s, x, b) * np.nan)
    res = parity.parity_check(model, tmp_path / "m.onnx", x, [1, 2])
    assert not res["passed"] and not res["finite"] and res["max_abs_logit_diff"] == float("inf")


def test_train_source_stops_on_a_nan_loss_and_keeps_the_last_epoch(
    synth_root, tmp_path, monkeypatch
):
    import torch.nn.functional as F

    from socket_edge.guard import DivergenceError, SettingError
    from socket_edge.supervised import TrainConfig, train_supervised

    with pytest.raises(SettingError, match="lr must be a finite number > 0, got nan"):
        TrainConfig(lr=float("nan"))
    with pytest.raises(SettingError, match="batch_size must be an integer >= 2, got 0"):
        TrainConfig(batch_size=0)
    with pytest.raises(SocketEdgeError, match="steps"):
        TrainConfig(steps=0)
    data = synth_root / "source_rgb" / "train"
    cfg = TrainConfig(arch="mobilenet_v3_small", epochs=2, batch_size=32, seed=3, device="cpu")
    real, calls = F.cross_entropy, []
    steps = -(-sum(1 for p in data.rglob("*.png")) // 32)

    def cross_entropy(*a, **kw):
        calls.append(1)
        loss = real(*a, **kw)
        return loss * float("nan") if len(calls) == steps + 1 else loss  # epoch 2, step 1

    monkeypatch.setattr(F, "cross_entropy", cross_entropy)
    out = tmp_path / "src.pt"
    with pytest.raises(DivergenceError, match=r"training diverged at epoch 2, step 1/") as e:
        train_supervised(data, out, cfg, show_progress=False)
    assert "cross-entropy" in str(e.value) and "src.state.pt keeps epoch 1" in str(e.value)
    assert not out.exists() and read_checkpoint(tmp_path / "src.state.pt")["epoch"] == 1


def test_train_source_length_is_a_step_budget_unless_epochs_are_given():
    from socket_edge.supervised import TrainConfig

    cfg = TrainConfig()  # 3000 updates of 32 images
    assert cfg.epochs_for(6000) == 16  # 188 steps per epoch
    assert cfg.epochs_for(1440) == 67  # 45 steps per epoch
    assert cfg.epochs_for(100_000) == 1
    assert TrainConfig(epochs=5).epochs_for(1440) == 5
    assert TrainConfig(steps=10, batch_size=2).epochs_for(7) == 3  # 4 steps per epoch


def test_train_source_stops_at_the_first_epoch_whose_val_reaches_stop_at_val(synth_root, tmp_path):
    from socket_edge.supervised import TrainConfig, train_supervised

    data, val = synth_root / "source_rgb" / "train", synth_root / "source_rgb" / "val"
    cfg = TrainConfig(
        arch="mobilenet_v3_small", epochs=3, batch_size=16, seed=3, device="cpu", stop_at_val=0.01
    )
    result = train_supervised(data, tmp_path / "weak.pt", cfg, val=val, show_progress=False)
    assert [r["epoch"] for r in result["history"]] == [1]  # any model beats 1% of 10 classes
    meta = read_checkpoint(tmp_path / "weak.pt")["meta"]
    assert meta["training"]["epochs"] == 1 and not (tmp_path / "weak.state.pt").exists()
    with pytest.raises(SocketEdgeError, match="stop_at_val needs a validation folder"):
        train_supervised(data, tmp_path / "no-val.pt", cfg, show_progress=False)
    with pytest.raises(SocketEdgeError, match="stop_at_val"):
        TrainConfig(stop_at_val=1.5)
