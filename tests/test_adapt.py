"""SOCKET adaptation: the losses on hand-computed values, the loop's guarantees, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch

from socket_edge.adapt import AdaptConfig, adapt, load_config, losses
from socket_edge.adapt.moments import MomentCollector, source_statistics
from socket_edge.models.checkpoint import load_checkpoint

from .helpers import assert_one_line_error

# ----------------------------------------------------------------------------- losses


def test_information_maximization_by_hand():
    # Two confident predictions of different classes: entropy ~0, mean prediction uniform.
    logits = torch.tensor([[100.0, 0.0], [0.0, 100.0]])
    assert losses.information_maximization(logits).item() == pytest.approx(-math.log(2), abs=1e-4)
    # Two uniform predictions: per-sample entropy log 2, mean entropy log 2 -> 0.
    assert losses.information_maximization(torch.zeros(2, 2)).item() == pytest.approx(0.0, abs=1e-4)
    # p = (0.75, 0.25) for both samples.
    p = torch.tensor([0.75, 0.25])
    logits = torch.log(p).repeat(2, 1)
    assert losses.information_maximization(logits).item() == pytest.approx(0.0, abs=1e-4)
    # One confident sample of class 0, one uniform: mean p = (0.75, 0.25).
    logits = torch.stack([torch.tensor([100.0, 0.0]), torch.zeros(2)])
    h_uniform, h_mean = math.log(2), -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert losses.information_maximization(logits).item() == pytest.approx(
        h_uniform / 2 - h_mean, abs=1e-4
    )


def test_pseudo_label_loss_is_cross_entropy():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0])
    expected = (-math.log(math.e**2 / (math.e**2 + 1)) - math.log(1 / (1 + math.e))) / 2
    assert losses.pseudo_label_loss(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_ti_alignment_is_mean_euclidean_distance():
    t = torch.tensor([[3.0, 4.0], [1.0, 1.0]])
    s = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    assert losses.ti_alignment(t, s).item() == pytest.approx(2.5)


def test_bn_moment_loss_by_hand_and_first_layer_weight():
    means = [torch.tensor([1.0, 1.0, 1.0, 1.0]), torch.tensor([0.0])]
    variances = [torch.ones(4), torch.tensor([3.0])]
    src_means = [torch.zeros(4), torch.zeros(1)]
    src_vars = [torch.ones(4), torch.ones(1)]
    # Published: layer 0: ||mean diff|| = 2, ||var diff|| = 0; layer 1: 0 + 2; weights 3 and 1.
    got = losses.bn_moment_loss(means, variances, src_means, src_vars, first_weight=3.0)
    assert got.item() == pytest.approx(3 * 2 + 1 * 2)
    # rms: layer 0: RMS(mean diff) = 1, RMS(var diff) = 0 -> 1; layer 1: 0 + 2 -> 2; mean by weight.
    got = losses.bn_moment_loss(
        means, variances, src_means, src_vars, first_weight=3.0, scale="rms"
    )
    assert got.item() == pytest.approx((3 * 1 + 1 * 2) / 4)
    with pytest.raises(ValueError, match="unknown BN scale"):
        losses.bn_moment_loss(means, variances, src_means, src_vars, scale="mean")


def test_cosine_ti_alignment_is_scale_free_and_euclidean_is_not():
    torch.manual_seed(0)
    t, s = torch.randn(5, 8), torch.randn(5, 8)
    cos = losses.ti_alignment(t, s, "cosine")
    assert losses.ti_alignment(10 * t, 10 * s, "cosine").item() == pytest.approx(
        cos.item(), rel=1e-5
    )
    assert losses.ti_alignment(t, t, "cosine").item() == pytest.approx(0.0, abs=1e-6)
    assert losses.ti_alignment(t, -t, "cosine").item() == pytest.approx(2.0, abs=1e-6)
    eu = losses.ti_alignment(t, s)
    assert losses.ti_alignment(10 * t, 10 * s).item() == pytest.approx(10 * eu.item(), rel=1e-5)


def test_rare_classes_flags_shares_below_the_fraction_of_uniform():
    # 4 classes, uniform 25%; class 3 has 1 of 20 (5% < 0.25 x 25% = 6.25%), class 2 none.
    predictions = torch.tensor([0] * 10 + [1] * 9 + [3])
    assert losses.rare_classes(predictions, 4, 0.25) == {2: 0.0, 3: pytest.approx(0.05)}
    assert losses.rare_classes(predictions, 4, 0.1) == {2: 0.0}


def test_separate_batches_normalise_target_images_with_their_own_statistics():
    from socket_edge.adapt.loop import FeaturesAndLogits
    from socket_edge.data.encoding import default_encoding
    from socket_edge.models.network import SocketNet

    torch.manual_seed(0)
    model = SocketNet("resnet18", 3, default_encoding("depth")).train()
    x, ti = torch.rand(6, 3, 64, 64), torch.rand(4, 3, 64, 64) * 5
    alone_feats = model.features(x)
    with MomentCollector(model.backbone) as mc:
        feats, logits = FeaturesAndLogits(model, joint=False)(torch.cat([x, ti]), 6)
    layers = len(mc.layers)
    assert len(mc.means) == 2 * layers  # the target pass first, then the TI pass
    assert torch.allclose(feats[:6], alone_feats, atol=1e-5)
    assert torch.allclose(logits, model.classify(alone_feats), atol=1e-5)
    # One joint pass mixes the TI images into the target images' BatchNorm statistics.
    joint_feats, _ = FeaturesAndLogits(model, joint=True)(torch.cat([x, ti]), 6)
    assert (joint_feats[:6] - alone_feats).abs().max() > 1e-2


def test_bn_term_is_zero_at_source_moments_and_only_trains_the_target():
    torch.manual_seed(0)
    from socket_edge.data.encoding import default_encoding
    from socket_edge.models.network import SocketNet

    source = SocketNet("resnet18", 3, default_encoding("rgb"))
    target = SocketNet("resnet18", 3, default_encoding("rgb"))
    target.load_state_dict(source.state_dict())
    x = torch.rand(8, 3, 64, 64)
    # Give the source running statistics that equal this batch's moments.
    with MomentCollector(source.backbone) as mc:
        source.train()
        source.features(x)
    for bn, m, v in zip(mc.layers, mc.means, mc.variances, strict=True):
        bn.running_mean.copy_(m.detach())
        bn.running_var.copy_(v.detach())
    src_means, src_vars = source_statistics(source.backbone)
    target.load_state_dict(source.state_dict())
    target.train()
    with MomentCollector(target.backbone) as mc:
        target.features(x)
    loss = losses.bn_moment_loss(mc.means, mc.variances, src_means, src_vars)
    assert loss.item() == pytest.approx(0.0, abs=1e-4)
    # Away from the source moments the gradient flows into the target's weights only.
    with MomentCollector(target.backbone) as mc:
        target.features(x * 3 + 1)
    loss = losses.bn_moment_loss(mc.means, mc.variances, src_means, src_vars)
    assert loss.item() > 0.1
    loss.backward()
    assert (
        target.backbone.conv1.weight.grad is not None
        and target.backbone.conv1.weight.grad.abs().sum() > 0
    )
    assert all(p.grad is None for p in source.parameters())
    assert all(not t.requires_grad for t in src_means + src_vars)


def test_centroid_pseudo_labels_fix_a_wrong_prediction():
    # Two tight clusters; the classifier mislabels one point of cluster 1 as class 0.
    feats = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.05, 1.0]])
    logits = torch.tensor([[5.0, 0.0], [5.0, 0.0], [0.0, 5.0], [0.0, 5.0], [0.2, 0.0]])
    labels = losses.centroid_pseudo_labels(feats, logits)
    assert labels.tolist() == [0, 0, 1, 1, 1]


# ----------------------------------------------------------------------------- the loop


def _cfg(**kw) -> AdaptConfig:
    base = dict(
        method="socket", epochs=2, batch_size=8, ti_batch_size=8, seed=1, device="cpu", ti_views=2
    )
    return AdaptConfig(**{**base, **kw})


def test_classifier_frozen_source_never_rerun_and_outputs_recorded(
    synth_root, source_ckpt, tmp_path, monkeypatch
):
    from socket_edge.models import network

    rgb_calls = []
    original = network.SocketNet.features

    def counting(self, x):
        if self.encoding.modality == "rgb":
            rgb_calls.append(len(x))
        return original(self, x)

    monkeypatch.setattr(network.SocketNet, "features", counting)
    seen_at_epoch_end = []
    out = tmp_path / "depth.pt"
    cfg = _cfg()
    adapt(
        source_ckpt,
        synth_root / "depth/target/train",
        out,
        "depth",
        paired=synth_root / "depth/paired",
        config=cfg,
        show_progress=False,
        callbacks=[lambda epoch, rec: seen_at_epoch_end.append(sum(rgb_calls))],
    )
    n_pairs = len(list((synth_root / "depth/paired/rgb").iterdir()))
    # The source ran once over every cached view before training, never during the steps.
    assert sum(rgb_calls) == n_pairs * cfg.ti_views
    assert seen_at_epoch_end == [n_pairs * cfg.ti_views] * 2

    source, _ = load_checkpoint(source_ckpt)
    adapted, meta = load_checkpoint(out)
    for (name, a), b in zip(
        source.classifier.state_dict().items(),
        adapted.classifier.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b), name
    assert not torch.equal(source.backbone.conv1.weight, adapted.backbone.conv1.weight)
    assert meta["modality"] == "depth" and meta["stage"] == "adapted"
    assert meta["encoding"]["modality"] == "depth"
    assert meta["method"]["name"] == "socket" and meta["method"]["weights"]["ti"] == 0.5
    log = [json.loads(line) for line in (tmp_path / "depth.log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    assert {"loss", "im", "pl", "bn", "ti", "images_per_s"} <= set(log[0])
    assert not (tmp_path / "depth.state.pt").exists()


def test_killed_run_resumes_to_the_same_weights(synth_root, source_ckpt, tmp_path):
    kw = dict(paired=synth_root / "ir/paired", config=_cfg(), show_progress=False)
    target = synth_root / "ir/target/train"
    adapt(source_ckpt, target, tmp_path / "full.pt", "ir", **kw)

    class Killed(Exception):
        pass

    def kill(epoch, record):
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        adapt(source_ckpt, target, tmp_path / "resumed.pt", "ir", callbacks=[kill], **kw)
    assert not (tmp_path / "resumed.pt").exists()
    adapt(source_ckpt, target, tmp_path / "resumed.pt", "ir", resume=True, **kw)
    a, _ = load_checkpoint(tmp_path / "full.pt")
    b, _ = load_checkpoint(tmp_path / "resumed.pt")
    for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(ta, tb), name


def test_zero_pairs_warns_and_runs_without_ti(synth_root, source_ckpt, tmp_path, capsys):
    paired = tmp_path / "paired"
    (paired / "rgb").mkdir(parents=True)
    (paired / "depth").mkdir()
    result = adapt(
        source_ckpt,
        synth_root / "depth/target/train",
        tmp_path / "m.pt",
        "depth",
        paired=paired,
        config=_cfg(epochs=1),
        show_progress=False,
    )
    assert result["weights"]["ti"] == 0.0
    assert "no task-irrelevant pairs" in capsys.readouterr().err


def test_shot_and_source_only(synth_root, source_ckpt, tmp_path):
    shot = adapt(
        source_ckpt,
        synth_root / "depth/target/train",
        tmp_path / "shot.pt",
        "depth",
        paired=synth_root / "depth/paired",
        config=_cfg(method="shot", epochs=1),
        show_progress=False,
    )
    assert shot["weights"] == {"pl": 0.3, "im": 1.0, "bn": 0.0, "ti": 0.0}
    log = json.loads((tmp_path / "shot.log.jsonl").read_text().splitlines()[0])
    assert "ti" not in log and "bn" not in log
    adapt(
        source_ckpt,
        synth_root / "depth/target/train",
        tmp_path / "so.pt",
        "depth",
        config=_cfg(method="source-only"),
        show_progress=False,
    )
    a, _ = load_checkpoint(source_ckpt)
    b, meta = load_checkpoint(tmp_path / "so.pt")
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert meta["modality"] == "depth"


def test_the_default_length_is_a_budget_of_updates(synth_root, source_ckpt, tmp_path):
    cfg = AdaptConfig()
    assert cfg.epochs is None and cfg.steps == 600
    # 2,000 robot-sized target images at batch 64: 31 updates an epoch, 20 epochs; 975: 40
    assert (cfg.epochs_for(31), cfg.epochs_for(15), cfg.epochs_for(1000)) == (20, 40, 1)
    assert AdaptConfig(epochs=3, steps=5).epochs_for(31) == 3  # --epochs wins
    # In a run: the synthetic depth target split at batch 8 gives ``per`` updates an epoch.
    target = synth_root / "depth/target/train"
    per = len(list(target.rglob("*.png"))) // 8
    result = adapt(source_ckpt, target, tmp_path / "m.pt", "depth",
                   config=_cfg(method="shot", epochs=None, steps=per + 1),
                   show_progress=False)  # fmt: skip
    assert len(result["history"]) == 2  # per + 1 updates need a second epoch
    _, meta = load_checkpoint(tmp_path / "m.pt")
    assert meta["method"]["settings"]["steps"] == per + 1


def test_config_file_and_flag_override(tmp_path):
    cfg_file = tmp_path / "team.toml"
    cfg_file.write_text('[adapt]\nmethod = "shot"\nepochs = 3\nbn-weight = 0.25\n')
    settings = load_config(cfg_file)
    cfg = AdaptConfig(**settings).with_overrides(epochs=5, lr=None)
    assert (cfg.method, cfg.epochs, cfg.bn_weight, cfg.lr) == ("shot", 5, 0.25, 0.01)
    cfg_file.write_text("[adapt]\nepoch = 3\n")
    from socket_edge.errors import SocketEdgeError

    with pytest.raises(SocketEdgeError, match=r"\[adapt\] has unknown settings \['epoch'\]"):
        load_config(cfg_file)


# ----------------------------------------------------------------------------- bad input (CLI)


def _adapt_args(source, target, paired, out, modality="depth"):
    return [
        "adapt",
        "--source",
        str(source),
        "--target",
        str(target),
        "--paired",
        str(paired),
        "--modality",
        modality,
        "--out",
        str(out),
        "--epochs",
        "1",
        "--batch-size",
        "8",
    ]


def test_cli_rejects_a_foreign_checkpoint(cli, synth_root, tmp_path):
    bogus = tmp_path / "bogus.pt"
    torch.save({"weights": torch.zeros(3)}, bogus)
    r = cli(
        *_adapt_args(
            bogus, synth_root / "depth/target/train", synth_root / "depth/paired", tmp_path / "o.pt"
        )
    )
    assert_one_line_error(r, "bogus.pt", "not a socket-edge checkpoint")


def test_cli_paired_without_the_modality_folder(cli, synth_root, source_ckpt, tmp_path):
    r = cli(
        *_adapt_args(
            source_ckpt,
            synth_root / "ir/target/train",
            synth_root / "depth/paired",
            tmp_path / "o.pt",
            modality="ir",
        )
    )
    assert_one_line_error(r, "no 'ir/' folder")


def _split_pairs(paired, root, modality="depth"):
    """Two pair folders under ``root`` (symlinks): the first pair of each TI class held out."""
    for f in sorted((paired / "rgb").iterdir()):
        part = "held_out" if f.stem.endswith("_00000") else "adapting"
        for side in ("rgb", modality):
            (root / part / side).mkdir(parents=True, exist_ok=True)
            (root / part / side / f.name).symlink_to(paired / side / f.name)
    return root / "adapting", root / "held_out"


def test_cli_scores_held_out_pairs_and_refuses_ones_that_adapt(
    cli, synth_root, source_ckpt, tmp_path
):
    adapting, held_out = _split_pairs(synth_root / "depth/paired", tmp_path)
    args = _adapt_args(source_ckpt, synth_root / "depth/target/train", adapting, tmp_path / "o.pt")
    r = cli(*args, "--held-out-pairs", str(held_out))
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip().splitlines()[-1]
    assert line.startswith("agreement with the source on 8 held-out TI pairs: ")
    share = float(line.split(": ")[1].split()[0])
    assert share in {i / 8 for i in range(9)}  # a share of the 8 pairs
    _, meta = load_checkpoint(tmp_path / "o.pt")
    assert meta["method"]["settings"]["balance_classes"] is True  # socket-rms's last step ran
    assert len(meta["method"]["class_offsets"]) == len(meta["classes"])
    # a held-out pair that also adapts is refused before anything runs
    bad = _adapt_args(source_ckpt, synth_root / "depth/target/train", adapting, tmp_path / "b.pt")
    r = cli(*bad, "--held-out-pairs", str(adapting))
    assert_one_line_error(r, "adapting", "held-out pairs also in --paired")
    assert not (tmp_path / "b.pt").exists()


def test_cli_empty_target_folder(cli, synth_root, source_ckpt, tmp_path):
    (tmp_path / "empty").mkdir()
    r = cli(
        *_adapt_args(
            source_ckpt, tmp_path / "empty", synth_root / "depth/paired", tmp_path / "o.pt"
        )
    )
    assert_one_line_error(r, "empty", "no images found")


def test_cli_modality_the_checkpoint_cannot_take(
    cli, synth_root, source_ckpt, depth_ckpt, tmp_path
):
    r = cli(
        *_adapt_args(
            source_ckpt,
            synth_root / "depth/target/train",
            synth_root / "depth/paired",
            tmp_path / "o.pt",
            modality="thermal",
        )
    )
    assert r.returncode == 2  # Typer's own error for a value outside the choices
    assert "Invalid value for '--modality'" in r.stderr and "Traceback" not in r.stderr
    r = cli(
        *_adapt_args(
            depth_ckpt,
            synth_root / "ir/target/train",
            synth_root / "ir/paired",
            tmp_path / "o.pt",
            modality="ir",
        )
    )
    assert_one_line_error(r, "is a depth model; adapt needs the RGB source model")


# ----------------------------------------------------------------------------- divergence guard


@pytest.mark.parametrize(
    "field,value,requirement",
    [
        ("lr", math.nan, "> 0"),
        ("lr", 0.0, "> 0"),
        ("lr", math.inf, "> 0"),
        ("pl_weight", -0.5, ">= 0"),
        ("bn_weight", math.nan, ">= 0"),
        ("batch_size", 0, ">= 2"),
        ("epochs", 0, ">= 1"),
        ("steps", 0, ">= 1"),
        ("weight_decay", -1e-3, ">= 0"),
        ("ti_views", 0, ">= 1"),
    ],
)
def test_settings_must_be_finite_and_in_range(field, value, requirement):
    from socket_edge.guard import SettingError

    with pytest.raises(SettingError, match=f"^{field} must be .*{requirement}, got {value!r}$"):
        AdaptConfig(**{field: value})
    with pytest.raises(SettingError):  # with_overrides re-checks too
        AdaptConfig().with_overrides(**{field: value})


def test_cli_names_the_bad_flag_and_starts_nothing(cli, synth_root, source_ckpt, tmp_path):
    base = _adapt_args(
        source_ckpt,
        synth_root / "depth/target/train",
        synth_root / "depth/paired",
        tmp_path / "o.pt",
    )
    for flag, value, fragment in (
        ("--lr", "nan", "--lr must be a finite number > 0, got nan"),
        ("--im-weight", "-1", "--im-weight must be a finite number >= 0, got -1.0"),
        ("--ti-weight", "inf", "--ti-weight must be a finite number >= 0, got inf"),
    ):
        r = cli(*base, flag, value)
        assert r.returncode == 2
        assert_one_line_error(r, fragment)
    assert list(tmp_path.iterdir()) == []
    # a bad value in the config file names the file and the table
    cfg = tmp_path / "team.toml"
    cfg.write_text("[adapt]\nlr = -0.1\n")
    r = cli(*base, "--config", str(cfg))
    assert_one_line_error(r, "team.toml: [adapt] lr must be a finite number > 0, got -0.1")


@pytest.mark.slow
def test_diverging_adaptation_stops_and_keeps_the_last_good_epoch(
    cli, synth_root, source_ckpt, tmp_path
):
    """All-zero depth maps, --lr 100 and the published BN-moment term (--method socket): it blows
    up in epoch 2 (deterministic on CPUs); the run must stop there, write nothing at --out and
    keep epoch 1 for --resume."""
    import numpy as np
    from PIL import Image

    zeros = tmp_path / "zeros"
    for c in ("a", "b"):
        (zeros / c).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(np.zeros((64, 64), np.uint16)).save(zeros / c / f"{i}.png")
    out = tmp_path / "out" / "z.pt"
    args = _adapt_args(source_ckpt, zeros, synth_root / "depth/paired", out)
    args[args.index("--epochs") + 1] = "2"
    r = cli(*args, "--lr", "100", "--device", "cpu", "--method", "socket")
    assert r.returncode == 2
    assert_one_line_error(
        r, "adaptation diverged at epoch 2, step", "(L_BN)", "not finite", "smaller --lr (now 100)",
        "or --bn-scale rms (the scale-free BN term)",
    )  # fmt: skip
    assert "z.state.pt keeps epoch 1 for --resume" in r.stderr
    assert not out.exists()
    from socket_edge.models.checkpoint import read_checkpoint

    state = read_checkpoint(out.with_name("z.state.pt"))  # finite: it loads
    assert state["epoch"] == 1
    log = [json.loads(line) for line in out.with_name("z.log.jsonl").read_text().splitlines()]
    assert [rec["epoch"] for rec in log] == [1]


def test_a_nan_loss_stops_every_step_before_the_update(
    synth_root, source_ckpt, tmp_path, monkeypatch
):
    """The guard reads the terms each step: a NaN term stops the run before the optimizer moves."""
    from socket_edge.adapt import loop
    from socket_edge.guard import DivergenceError

    real = loop.Run.losses
    calls = []

    def losses_with_nan(self, x, idx, ti_batch, labels):
        terms = real(self, x, idx, ti_batch, labels)
        calls.append(1)
        if len(calls) == 2:
            terms["ti"] = terms["ti"] * float("nan")
        return terms

    monkeypatch.setattr(loop.Run, "losses", losses_with_nan)
    out = tmp_path / "n.pt"
    with pytest.raises(
        DivergenceError, match=r"epoch 1, step 2/\d+: total loss, TI-alignment"
    ) as e:
        adapt(
            source_ckpt,
            synth_root / "depth/target/train",
            out,
            "depth",
            paired=synth_root / "depth/paired",
            config=_cfg(epochs=1),
            show_progress=False,
        )
    assert "no epoch had finished" in str(e.value)
    assert not out.exists() and not (tmp_path / "n.state.pt").exists()


# ----------------------------------------------------------------------------- class balance


def test_class_offsets_make_the_mean_prediction_uniform():
    from socket_edge.adapt.balance import class_offsets

    z = torch.randn(500, 4, generator=torch.Generator().manual_seed(0)) * 2
    z[:, 0] += 1.5  # class 0 favoured
    v = class_offsets(z)
    assert torch.allclose((z + v).softmax(1).mean(0), torch.full((4,), 0.25), atol=1e-5)
    assert abs(float(v.sum())) < 1e-5 and int(v.argmin()) == 0
    shift = torch.tensor([3.0, -1.0, 0.5, 0.0])  # a per-class shift of the logits is undone
    assert torch.allclose(class_offsets(z + shift), v - (shift - shift.mean()), atol=1e-4)
    assert torch.allclose(class_offsets(torch.tensor([[2.0, 0.0], [0.0, 2.0]])), torch.zeros(2))


def test_balance_is_a_last_step_on_the_classifier_bias_alone(synth_root, source_ckpt, tmp_path):
    from socket_edge.adapt.balance import balance_checkpoint
    from socket_edge.adapt.targets import score_targets
    from socket_edge.data.datasets import UnlabelledFolder
    from socket_edge.errors import SocketEdgeError

    target, kw = synth_root / "depth/target/train", dict(paired=synth_root / "depth/paired")
    plain, balanced = tmp_path / "plain.pt", tmp_path / "balanced.pt"
    for out, balance in ((plain, False), (balanced, None)):  # None: socket-rms's (on)
        cfg = _cfg(method="socket-rms", epochs=1, balance_classes=balance)
        adapt(source_ckpt, target, out, "depth", config=cfg, show_progress=False, **kw)
    a, _ = load_checkpoint(plain)
    b, meta = load_checkpoint(balanced)
    before, after = a.state_dict(), b.state_dict()
    for name, tensor in before.items():  # the same training: the weights are equal
        if name != "classifier.bias":
            assert torch.equal(tensor, after[name]), name
    offsets = torch.tensor(list(meta["method"]["class_offsets"].values()))
    assert torch.allclose(after["classifier.bias"] - before["classifier.bias"], offsets, atol=1e-6)
    assert meta["method"]["settings"]["balance_classes"] is True and offsets.abs().max() > 0
    _, logits = score_targets(b, UnlabelledFolder(target, "depth", 64), "cpu")
    classes = logits.shape[1]
    assert torch.allclose(logits.softmax(1).mean(0), torch.full((classes,), 1 / classes), atol=1e-4)
    # balancing the unbalanced file afterwards writes the same model
    balance_checkpoint(plain, target, tmp_path / "derived.pt")
    c, derived_meta = load_checkpoint(tmp_path / "derived.pt")
    assert torch.allclose(c.classifier.bias, b.classifier.bias, atol=1e-5)
    assert derived_meta["method"]["class_offsets"].keys() == meta["method"]["class_offsets"].keys()
    with pytest.raises(SocketEdgeError, match="not an adapted checkpoint"):
        balance_checkpoint(source_ckpt, target, tmp_path / "x.pt")
