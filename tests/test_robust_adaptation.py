"""The departures of the robust default from the published method, each on a hand-made example:
pseudo-labels that never let a class die, neighbourhood consistency, the label-free validators."""

from __future__ import annotations

import math

import pytest
import torch

from socket_edge.adapt import AdaptConfig
from socket_edge.adapt.losses import (
    centroid_pseudo_labels,
    nearest_neighbours,
    neighbourhood_consistency,
)
from socket_edge.adapt.validators import (
    choose,
    mutual_information,
    pair_scores,
    prediction_balance,
    rankme,
    score_pairs,
    scores,
    ti_agreement,
)
from socket_edge.errors import SocketEdgeError

# Four samples, two classes (found by a search over small integer examples): a hard round
# assigns nobody to class 1, so SHOT's rule drops it for good, although the model itself
# prefers class 1 for every sample.
FEATURES = torch.tensor([[-4.0, -4.0], [-3.0, -4.0], [-3.0, 4.0], [2.0, -4.0]])
LOGITS = torch.tensor([[1.0, 3.0], [1.0, 3.0], [2.0, 4.0], [0.0, 2.0]])


def test_shot_rule_lets_a_class_die_and_keep_classes_does_not():
    shot = centroid_pseudo_labels(FEATURES, LOGITS, iterations=2)
    kept = centroid_pseudo_labels(FEATURES, LOGITS, iterations=2, keep_classes=True)
    assert shot.tolist() == [0, 0, 0, 0]  # class 1 got no sample once: gone
    assert kept.tolist() == [1, 1, 0, 1]  # its centroid stays, and samples come back to it
    # SHOT's own setting (one hard round) already differs; with soft centroids only, no class
    # can be empty and both rules agree
    assert centroid_pseudo_labels(FEATURES, LOGITS).tolist() == [0, 0, 0, 0]
    soft = centroid_pseudo_labels(FEATURES, LOGITS, iterations=0)
    assert soft.tolist() == centroid_pseudo_labels(FEATURES, LOGITS, 0, keep_classes=True).tolist()


def test_keep_classes_changes_nothing_when_no_class_is_empty():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.2], [0.1, 1.0]])
    logits = torch.tensor([[3.0, 0.0], [0.0, 3.0], [2.0, 0.0], [0.0, 2.0]])
    a = centroid_pseudo_labels(feats, logits)
    assert a.tolist() == centroid_pseudo_labels(feats, logits, keep_classes=True).tolist()


def test_nearest_neighbours_are_the_closest_others_in_cosine():
    feats = torch.tensor([[1.0, 0.0], [10.0, 1.0], [0.0, 1.0], [0.1, 5.0], [1.0, 1.0]])
    knn = nearest_neighbours(feats, 1, chunk=2)  # chunked like a large target set
    assert knn[:, 0].tolist() == [1, 0, 3, 2, 1]  # never itself; scale does not matter
    assert nearest_neighbours(feats[:2], 5).shape == (2, 1)  # at most the other rows


def test_neighbourhood_consistency_by_hand():
    logits = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1]]))
    neighbours = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]])
    # sample 0: (0.5 + 0.5) / 2 = 0.5; sample 1: 0.9 -> -(0.5 + 0.9) / 2
    assert neighbourhood_consistency(logits, neighbours).item() == pytest.approx(-0.7)
    logits.requires_grad_(True)
    neighbourhood_consistency(logits, neighbours).backward()
    # sample 1 is pulled towards class 0, its neighbours' class
    assert logits.grad[1, 0] < 0 < logits.grad[1, 1]


def test_nc_weight_is_a_loss_term_only_when_set():
    assert "nc" not in AdaptConfig().effective_weights()
    assert AdaptConfig(nc_weight=0.5).effective_weights()["nc"] == 0.5
    with pytest.raises(Exception, match="nc_neighbours"):
        AdaptConfig(nc_neighbours=0)


def test_validators_see_collapse_and_rank():
    torch.manual_seed(0)
    spread = torch.randn(200, 16)
    collapsed = spread[:, :1] * torch.ones(1, 16)  # rank one
    assert rankme(spread) > 10 and rankme(collapsed) == pytest.approx(1.0, abs=0.01)
    balanced = torch.eye(4).repeat(25, 1) * 10
    one_class = torch.zeros(100, 4)
    one_class[:, 0] = 10
    assert mutual_information(balanced) == pytest.approx(math.log(4), abs=0.01)
    assert mutual_information(one_class) == pytest.approx(0.0, abs=0.01)
    assert prediction_balance(balanced) == pytest.approx(1.0)
    assert prediction_balance(one_class) == pytest.approx(0.0)
    assert set(scores(spread[:100], balanced)) == {
        "rankme",
        "mutual_information",
        "prediction_balance",
    }


def test_ti_agreement_by_hand():
    source = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    target = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert ti_agreement(source, target) == pytest.approx(1 / 3)  # only the first pair agrees
    feats = torch.tensor([[1.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    got = pair_scores(feats, source, -feats, target)
    assert got["ti_feature_cosine"] == pytest.approx(-1.0)  # opposite features on every pair
    assert pair_scores(feats, source, 2 * feats, source) == pytest.approx(
        {"ti_agreement": 1.0, "ti_feature_cosine": 1.0}
    )  # the same reading, at any scale


def test_score_pairs_on_real_models(synth_root, source_ckpt, depth_ckpt, source_ckpt_mobilenet):
    from socket_edge.errors import CheckpointError

    paired = synth_root / "depth" / "paired"
    # the source read against itself on its own RGB side of the pairs: full agreement
    same = score_pairs(source_ckpt, source_ckpt, paired)
    assert same == pytest.approx({"ti_agreement": 1.0, "ti_feature_cosine": 1.0})
    got = score_pairs(depth_ckpt, source_ckpt, paired)  # depth side against the RGB side
    assert 0.0 <= got["ti_agreement"] <= 1.0 and got["ti_feature_cosine"] < 1.0
    with pytest.raises(CheckpointError, match="expected resnet18"):
        score_pairs(depth_ckpt, source_ckpt_mobilenet, paired)


def test_choose_takes_the_highest_mean_score():
    cells = {"a": [{"rankme": 5.0}, {"rankme": 9.0}], "b": [{"rankme": 6.0}, {"rankme": 7.0}]}
    assert choose(cells) == "a"
    assert choose({"a": [{"mi": 0.1}], "b": [{"mi": 0.2}]}, "mi") == "b"
    with pytest.raises(ValueError):
        choose({"a": []})


def test_robust_settings_adapt_and_score_without_labels(synth_root, source_ckpt, tmp_path):
    from socket_edge.adapt import adapt
    from socket_edge.adapt.validators import score_checkpoint

    cfg = AdaptConfig(
        epochs=2, batch_size=8, ti_batch_size=8, device="cpu", bn_scale="rms", joint_batch=True,
        pl_keep_classes=True, nc_weight=1.0, nc_neighbours=3,
    )  # fmt: skip
    out = tmp_path / "robust.pt"
    target = synth_root / "depth" / "target" / "train"
    result = adapt(
        source_ckpt, target, out, "depth", paired=synth_root / "depth" / "paired",
        config=cfg, show_progress=False,
    )  # fmt: skip
    assert out.exists() and len(result["history"]) == 2
    first = result["history"][0]
    assert -1.0 <= first["nc"] <= 0.0 and math.isfinite(first["loss"])
    got = score_checkpoint(out, target)
    assert got["rankme"] >= 1.0 and 0.0 <= got["prediction_balance"] <= 1.0


def test_default_method_departs_in_three_settings_and_socket_stays_as_published():
    """socket-rms (the default) scales the BN-moment term per channel, trains the backbone at the
    bottleneck's learning rate and weighs the TI term 1; socket and shot keep the published sum,
    0.1 and 0.5; an explicit setting wins over either; the optimizer and the recorded settings
    use what is in effect."""
    from socket_edge.adapt.loop import _optimizer
    from socket_edge.data.encoding import default_encoding
    from socket_edge.models.network import SocketNet

    default = AdaptConfig()
    assert default.method == "socket-rms"
    assert (default.bn_term_scale, default.backbone_rate, default.effective_weights()["ti"]) == (
        "rms", 1.0, 1.0,
    )  # fmt: skip
    published = default.with_overrides(method="socket")
    assert (published.bn_term_scale, published.backbone_rate) == ("sum", 0.1)
    assert published.to_dict()["bn_scale"] == "sum"
    assert (
        published.to_dict()["backbone_lr_mult"] == 0.1 and published.to_dict()["ti_weight"] == 0.5
    )
    assert AdaptConfig(method="shot").backbone_rate == 0.1
    assert AdaptConfig(bn_scale="sum").bn_term_scale == "sum"
    assert AdaptConfig(method="socket", bn_scale="rms").to_dict()["bn_scale"] == "rms"
    assert AdaptConfig(backbone_lr_mult=0.3).backbone_rate == 0.3
    assert AdaptConfig(ti_weight=0.5).effective_weights() == published.effective_weights()
    model = SocketNet("resnet18", 3, default_encoding("depth"))
    for cfg, rate in ((default, 1.0), (AdaptConfig(method="shot"), 0.1)):
        assert [g["lr_mult"] for g in _optimizer(model, cfg).param_groups] == [rate, 1.0]
    with pytest.raises(SocketEdgeError, match="unknown bn_scale 'l1'"):
        AdaptConfig(bn_scale="l1")
    with pytest.raises(SocketEdgeError, match="backbone_lr_mult"):
        AdaptConfig(backbone_lr_mult=-1.0)
