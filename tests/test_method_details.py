"""Method details that a wrong index or a dropped line would break silently.

- TI pairs: the cached source feature of each TI target image is the frozen source's feature of
  its OWN RGB partner under the SAME crop and flip (socket_edge.adapt.ti_cache).
- SHOT's centroid pseudo-labels: bias feature, cosine distance, one refinement round, min_share
  (socket_edge.adapt.losses.centroid_pseudo_labels), on a hand-worked example.
- The INT8 models: per-output-channel symmetric int8 weights and per-tensor activations in the
  Q/DQ model for TensorRT (``*.int8.onnx``); uint8 activations with zero points, int8 weights
  and int32 biases in the CPU model (``*.int8-cpu.onnx``) (calibration/qdq.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from socket_edge.adapt.losses import centroid_pseudo_labels
from socket_edge.adapt.ti_cache import TIViews, cache_source_features, ti_views
from socket_edge.data.datasets import PairedFolder
from socket_edge.data.transforms import CropFlip, apply_crop_flip

# ---------------------------------------------------------------------------------------------
# TI pairs: cached source features


N_PAIRS, N_VIEWS, TI_SIZE = 5, 3, 32


@pytest.fixture(scope="module")
def ir_pairs(tmp_path_factory) -> Path:
    """A paired folder whose IR image is its RGB partner's red channel (so a TI target image
    tells which RGB image, crop and flip it came from): rgb/<stem>.png, ir/<stem>.png, 32x32."""
    from PIL import Image

    root = tmp_path_factory.mktemp("ti-pairs")
    (root / "rgb").mkdir()
    (root / "ir").mkdir()
    rng = np.random.default_rng(14)
    for i in range(N_PAIRS):
        rgb = rng.integers(0, 256, (TI_SIZE, TI_SIZE, 3), dtype=np.uint8)
        Image.fromarray(rgb, "RGB").save(root / "rgb" / f"pair{i}.png")
        Image.fromarray(np.ascontiguousarray(rgb[..., 0]), "L").save(root / "ir" / f"pair{i}.png")
    return root


@pytest.fixture(scope="module")
def frozen_source(source_ckpt):
    """The tiny trained RGB source model of conftest, in eval mode."""
    from socket_edge.models.checkpoint import load_checkpoint

    model, _ = load_checkpoint(source_ckpt)
    return model.eval()


def _rgb_view(pairs: PairedFolder, index: int, view: CropFlip) -> torch.Tensor:
    return apply_crop_flip(pairs.load(pairs.pairs[index].rgb, "rgb"), view, pairs.pad, "rgb")


@torch.no_grad()
def test_ti_target_is_paired_with_the_source_feature_of_its_own_rgb_view(ir_pairs, frozen_source):
    """Guards the TI term's pairing: for every TIViews item (target image, pair index, view
    index), ``ti_feats[index, view]`` (as Run.losses indexes it) is the frozen source's feature
    of ``pairs.pairs[index].rgb`` under ``views[index][view]``, and the target image is that
    same pair under that same crop/flip. A feature of another pair or another view is far away,
    so a shuffled cache, a mixed-up view or a wrong image would fail here."""
    pairs = PairedFolder(ir_pairs, "ir", TI_SIZE, augment=False)
    assert len(pairs) == N_PAIRS and pairs.pad == TI_SIZE // 8
    views = ti_views(N_PAIRS, N_VIEWS, seed=3, pad=pairs.pad)
    assert all(v[0] == CropFlip(pairs.pad, pairs.pad, False) for v in views)  # view 0: plain
    for per_pair in views:  # distinct views, so that a view mix-up changes the feature
        assert len(set(per_pair)) == N_VIEWS
    # batch_size 4: the 15 (pair, view) items span several chunks, as in a real run
    cached = cache_source_features(frozen_source, pairs, views, torch.device("cpu"), batch_size=4)
    assert cached.shape == (N_PAIRS, N_VIEWS, frozen_source.bottleneck[0].out_features)

    # Reference: each (pair, view) recomputed on its own, in the cache's (pair, view) layout.
    ref = torch.stack(
        [
            torch.stack([frozen_source.features(_rgb_view(pairs, i, v)[None])[0] for v in views[i]])
            for i in range(N_PAIRS)
        ]
    )
    flat_ref, flat_cached = (
        ref.reshape(N_PAIRS * N_VIEWS, -1),
        cached.reshape(N_PAIRS * N_VIEWS, -1),
    )
    dist = torch.cdist(flat_cached, flat_ref)  # cached row k vs recomputed (pair, view) j
    same = dist.diagonal()
    others = dist + torch.eye(len(dist)) * 1e9
    assert same.max() < 1e-3, same
    # Any other pair or view is orders of magnitude further: a shuffle cannot pass the check.
    assert others.min() > 100 * max(same.max().item(), 1e-5), others.min()

    ti_set = TIViews(pairs, views)
    seen_views = set()
    for epoch_seed in (0, 1, 2, 3):
        ti_set.set_epoch(epoch_seed)
        items = [ti_set[i] for i in range(len(ti_set))]
        for i, (target, index, view) in enumerate(items):
            assert index == i
            seen_views.add(view)
            rgb = _rgb_view(pairs, index, views[index][view])
            # IR = red channel of the RGB partner: the target shows that image, crop and flip.
            torch.testing.assert_close(target, rgb[:1], rtol=0, atol=0)
            recomputed = frozen_source.features(rgb[None])[0]
            torch.testing.assert_close(cached[index, view], recomputed, rtol=1e-4, atol=1e-4)
        # Batched as the training loop gets them (default collate), indexed as Run.losses does.
        targets, idx, view_idx = torch.utils.data.default_collate(items)
        rgb_batch = torch.stack(
            [
                _rgb_view(pairs, int(i), views[int(i)][int(v)])
                for i, v in zip(idx, view_idx, strict=True)
            ]
        )
        torch.testing.assert_close(targets, rgb_batch[:, :1], rtol=0, atol=0)
        torch.testing.assert_close(
            cached[idx, view_idx], frozen_source.features(rgb_batch), rtol=1e-4, atol=1e-4
        )
    assert len(seen_views) > 1  # the epochs drew non-plain views too


# ---------------------------------------------------------------------------------------------
# SHOT's centroid pseudo-labels


def reference_pseudo_labels(
    features,
    logits,
    iterations: int = 1,
    bias: bool = True,
    cosine: bool = True,
    min_share: float = 0.0,
) -> np.ndarray:
    """A float64 numpy SHOT with switches: ``bias`` appends a column of ones; ``cosine``
    L2-normalises the features and uses 1 - cos to L2-normalised centroids, else Euclidean
    distance between raw features and raw (weighted-mean) centroids (SHOT's 'euclidean')."""
    f = np.asarray(features, np.float64)
    if bias:
        f = np.concatenate([f, np.ones((len(f), 1))], 1)
    if cosine:
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
    z = np.asarray(logits, np.float64)
    w = np.exp(z - z.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    for _ in range(iterations + 1):
        c = w.T @ f / (w.sum(0)[:, None] + 1e-8)
        if cosine:
            c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
            d = 1 - f @ c.T
        else:
            d = np.linalg.norm(f[:, None] - c[None], axis=2)
        share = w.sum(0) / w.sum()
        d[:, (share <= 0) | (share < min_share)] = np.inf
        labels = d.argmin(1)
        w = np.eye(z.shape[1])[labels]
    return labels


# Four 2-D features whose bias-augmented norms are whole numbers, two classes.
FEATURES = [[2.0, -2.0], [-2.0, -2.0], [4.0, 8.0], [8.0, 32.0]]
L3 = math.log(3.0)  # softmax of (ln 3, 0) is (3/4, 1/4)
LOGITS = [[L3, 0.0], [0.0, L3], [L3, 0.0], [0.0, L3]]
# Worked by hand; d = 1 - cos for the cosine versions, Euclidean distance for the last one:
#
# Full SHOT. With the bias column and L2 normalisation:
#   f1 = (2,-2,1)/3   f2 = (-2,-2,1)/3   f3 = (4,8,1)/9   f4 = (8,32,1)/33
# Round 0, soft weights w = (3/4,1/4), (1/4,3/4), (3/4,1/4), (1/4,3/4):
#   c0 ~ 3/4 f1 + 1/4 f2 + 3/4 f3 + 1/4 f4 = (0.727, 0.242, 0.424) -> (0.830, 0.277, 0.484)
#   c1 ~ 1/4 f1 + 3/4 f2 + 1/4 f3 + 3/4 f4 = (-0.056, 0.394, 0.535) -> (-0.084, 0.591, 0.802)
#   d(f, c0), d(f, c1): f1 0.470, 1.183 -> 0   f2 1.576, 1.070 -> 1
#                       f3 0.331, 0.423 -> 0   f4 0.516, 0.423 -> 1      labels (0, 1, 0, 1)
#   (= the answer with iterations=0)
# Round 1, hard centroids:
#   c0 ~ f1 + f3 = (10, 2, 4)/9 -> (5, 1, 2)/sqrt(30)
#   c1 ~ f2 + f4 = (-14, 10, 12)/33 -> (-7, 5, 6)/sqrt(110)
#   f1: 1 - 10/(3 sqrt 30) = 0.391   1 + 18/(3 sqrt 110) = 1.572  -> 0
#   f2: 1 + 10/(3 sqrt 30) = 1.609   1 - 10/(3 sqrt 110) = 0.682  -> 1
#   f3: 1 - 30/(9 sqrt 30) = 0.391   1 - 18/(9 sqrt 110) = 0.809  -> 0
#   f4: 1 - 74/(33 sqrt 30) = 0.591  1 - 110/(33 sqrt 110) = 0.682 -> 0   labels (0, 1, 0, 0)
FULL = [0, 1, 0, 0]
NO_REFINEMENT = [0, 1, 0, 1]
#
# Without the bias column: f1 = (1,-1)/sqrt2, f2 = (-1,-1)/sqrt2, f3 = (1,2)/sqrt5,
# f4 = (1,4)/sqrt17.
#   Round 0: c0 ~ (0.750, 0.206) -> (0.964, 0.265), c1 ~ (-0.060, 0.244) -> (-0.238, 0.971)
#     f1 0.506, 1.855 -> 0   f2 1.869, 1.518 -> 1   f3 0.332, 0.238 -> 1   f4 0.509, 0.115 -> 1
#   Round 1: c0 = f1, c1 ~ f2 + f3 + f4 = (-0.017, 1.157) -> (-0.015, 1.000)
#     f1 0, 1.718 -> 0   f2 1.000, 1.696 -> 0   f3 1.316, 0.112 -> 1   f4 1.514, 0.034 -> 1
NO_BIAS = [0, 0, 1, 1]
#
# Euclidean (raw features, raw weighted-mean centroids; the bias column cancels out):
#   Round 0: c0 = (3/4 (2,-2) + 1/4 (-2,-2) + 3/4 (4,8) + 1/4 (8,32)) / 2 = (6, 12)/2 = (3, 6)
#            c1 = (1/4 (2,-2) + 3/4 (-2,-2) + 1/4 (4,8) + 3/4 (8,32)) / 2 = (6, 24)/2 = (3, 12)
#     f1 sqrt65 = 8.06, sqrt197 = 14.04 -> 0   f2 sqrt89 = 9.43, sqrt221 = 14.87 -> 0
#     f3 sqrt5 = 2.24, sqrt17 = 4.12 -> 0      f4 sqrt701 = 26.48, sqrt425 = 20.62 -> 1
#   Round 1: c0 = mean(f1, f2, f3) = (4/3, 4/3), c1 = (8, 32): f1, f2, f3 -> 0 (3.40, 4.71,
#     7.18 vs 34.5, 35.4, 24.3), f4 -> 1 (distance 0)
EUCLIDEAN = [0, 0, 0, 1]


def test_centroid_pseudo_labels_hand_worked_example():
    """Guards SHOT's pseudo-labels as published: bias-augmented, L2-normalised features, cosine
    distance, softmax-weighted initial centroids and one hard refinement round. The example is
    built so that dropping the refinement, the bias column, or cosine distance each gives a
    different answer (checked against a reference implementation with those switches)."""
    features, logits = torch.tensor(FEATURES), torch.tensor(LOGITS)

    # The reference reproduces the hand-worked answers ...
    assert reference_pseudo_labels(FEATURES, LOGITS).tolist() == FULL
    assert reference_pseudo_labels(FEATURES, LOGITS, iterations=0).tolist() == NO_REFINEMENT
    assert reference_pseudo_labels(FEATURES, LOGITS, bias=False).tolist() == NO_BIAS
    assert reference_pseudo_labels(FEATURES, LOGITS, cosine=False).tolist() == EUCLIDEAN
    # ... which all differ, so the library can match the full version only.
    assert len({tuple(x) for x in (FULL, NO_REFINEMENT, NO_BIAS, EUCLIDEAN)}) == 4

    labels = centroid_pseudo_labels(features, logits)
    assert labels.dtype == torch.int64
    assert labels.tolist() == FULL
    assert centroid_pseudo_labels(features, logits, iterations=1).tolist() == FULL
    # (a) the refinement round matters: without it, the softmax centroids' answer
    assert centroid_pseudo_labels(features, logits, iterations=0).tolist() == NO_REFINEMENT


def test_min_share_drops_rare_classes():
    """Guards ``min_share``: a class whose softmax share over the samples is below it gets no
    centroid and no sample; with a lower threshold the same class does get a sample (so the
    example is one where the threshold decides)."""
    features = torch.tensor(
        [[4.0, 8.0], [8.0, 4.0], [2.0, -2.0], [2.0, 2.0], [-8.0, -4.0], [12.0, 12.0]]
    )
    big = 6.0
    logits = torch.tensor(
        [
            [big, 0.0, 0.0],
            [big, 0.0, 0.0],
            [0.0, big, 0.0],
            [0.0, big, 0.0],
            [0.0, 0.0, 0.0],  # the only sample that leans to class 2 at all: p2 = 1/3
            [big, 0.0, 0.0],
        ]
    )
    p2 = logits.softmax(1)[:, 2]
    share2 = (p2.sum() / len(p2)).item()  # ~ (1/3 + 5 * 0.0025) / 6 = 0.058
    assert 0.05 < share2 < 0.1
    for min_share in (0.0, 0.05):  # kept: sample 4, far from the rest, is class 2
        got = centroid_pseudo_labels(features, logits, min_share=min_share)
        assert (
            got.tolist() == reference_pseudo_labels(features, logits, min_share=min_share).tolist()
        )
        assert got[4] == 2 and (got == 2).sum() == 1
    for min_share in (0.1, 0.2):  # dropped: nobody is class 2, sample 4 goes elsewhere
        got = centroid_pseudo_labels(features, logits, min_share=min_share)
        assert (
            got.tolist() == reference_pseudo_labels(features, logits, min_share=min_share).tolist()
        )
        assert not (got == 2).any()
        assert set(got.tolist()) == {0, 1}


# ---------------------------------------------------------------------------------------------
# INT8 models: Q/DQ for TensorRT, uint8/int8 for the CPU


@pytest.fixture(scope="module")
def int8_models(source_ckpt, tmp_path_factory):
    """The tiny trained source exported to ONNX and quantized into both INT8 variants, as the
    export's INT8 step does (graph.regions -> ranges.collect -> qdq.quantize with the encoder
    kept in float), with minmax ranges from two batches of generated images (no gate, so every
    weighted layer is quantized). Returns (fp32 path, {variant: path}, ranges, regions)."""
    from socket_edge.calibration import graph, qdq, ranges
    from socket_edge.export.onnx_export import example_input, export_onnx
    from socket_edge.export.pipeline import int8_paths
    from socket_edge.models.checkpoint import load_checkpoint

    net, meta = load_checkpoint(source_ckpt)
    size = int(meta["image_size"])
    out = tmp_path_factory.mktemp("int8") / "model.onnx"
    export_onnx(net, out, meta["modality"], size)
    regions = graph.regions(graph.load_model(out, check=False))
    batches = [example_input(meta["modality"], size, batch=4, seed=s).numpy() for s in (0, 1)]
    act_ranges = ranges.collect(out, batches, regions.activations, "minmax")
    paths = {v: int8_paths(out)[v] for v in qdq.VARIANTS}
    for variant, path in paths.items():
        qdq.quantize(out, path, act_ranges, variant, regions.float_nodes)
    assert paths["int8-qdq"].name == "model.int8.onnx"
    assert paths["int8-cpu"].name == "model.int8-cpu.onnx"
    return out, paths, act_ranges, regions


def _arrays(model) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _axis(node) -> int:
    """A Q/DQ node's axis attribute (1 when absent, as in the ONNX spec)."""
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


def _check_weights(model, fp32_weights: dict[str, np.ndarray], weighted: list[str], key: str):
    """Every Conv and Gemm reads its weight through a per-output-channel symmetric int8
    DequantizeLinear (axis 0, one scale per output channel = max|w_c| / 127, zero points 0)."""
    import onnx

    arrays = _arrays(model)
    dtypes = {t.name: t.data_type for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    layers = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm")]
    assert sorted(n.name for n in layers) == sorted(weighted), key  # none left in float
    assert {n.op_type for n in layers} == {"Conv", "Gemm"}
    for node in layers:
        w = fp32_weights[node.name]
        if node.op_type == "Gemm":  # torch's Linear: (out, in) with transB=1
            assert next(a.i for a in node.attribute if a.name == "transB") == 1
        dq = producer[node.input[1]]
        assert dq.op_type == "DequantizeLinear", (key, node.name)
        assert _axis(dq) == 0, (key, node.name)
        scale, zp = arrays[dq.input[1]], arrays[dq.input[2]]
        assert scale.shape == (w.shape[0],), (key, node.name, scale.shape)
        assert zp.shape == (w.shape[0],) and zp.dtype == np.int8 and not zp.any(), (key, node.name)
        absmax = np.abs(w.reshape(w.shape[0], -1)).max(1)
        np.testing.assert_allclose(scale, absmax / 127, rtol=1e-5, err_msg=f"{key} {node.name}")
        if key == "int8-qdq":  # TensorRT: float weight -> QuantizeLinear -> DequantizeLinear
            q = producer[dq.input[0]]
            assert q.op_type == "QuantizeLinear" and _axis(q) == 0
            assert list(q.input[1:]) == list(dq.input[1:])
            np.testing.assert_array_equal(arrays[q.input[0]], w)
        else:  # ONNX Runtime: the int8 weights themselves
            assert dtypes[dq.input[0]] == onnx.TensorProto.INT8
            q_w = arrays[dq.input[0]].astype(np.float32)
            shape = (-1,) + (1,) * (w.ndim - 1)
            assert np.abs(q_w * scale.reshape(shape) - w).max() <= scale.max() / 2 * 1.001


def _activation_quantizers(model):
    arrays = _arrays(model)
    qs = [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in arrays]
    assert qs
    return arrays, qs


def _fp32_weights(fp32_path: Path) -> dict[str, np.ndarray]:
    import onnx

    model = onnx.load(str(fp32_path))
    arrays = _arrays(model)
    return {n.name: arrays[n.input[1]] for n in model.graph.node if n.op_type in ("Conv", "Gemm")}


def test_trt_qdq_model_is_per_channel_symmetric_int8(int8_models):
    """Guards the TensorRT Q/DQ model (``*.int8.onnx``): every Conv and Gemm weight has a
    per-output-channel DequantizeLinear (axis 0, scale length = output channels, max|w_c|/127)
    with int8 zero points all 0; every activation QuantizeLinear is per-tensor (scalar scale)
    symmetric int8 (zero point 0, scale = calibrated amax / 127). A per-tensor weight scale,
    asymmetric or uint8 activations, or reduce_range would fail here."""
    import onnx

    fp32, paths, act_ranges, regions = int8_models
    model = onnx.load(str(paths["int8-qdq"]))
    _check_weights(model, _fp32_weights(fp32), regions.weighted_nodes, "int8-qdq")

    arrays, qs = _activation_quantizers(model)
    fp32_users: dict[str, list] = {}
    for n in onnx.load(str(fp32)).graph.node:
        for i in n.input:
            fp32_users.setdefault(i, []).append(n)
    for q in qs:
        scale, zp = arrays[q.input[1]], arrays[q.input[2]]
        assert scale.shape == () and zp.shape == (), q.input[0]
        assert zp.dtype == np.int8 and zp == 0, q.input[0]
        # amax / 127 of the tensor's calibrated range; a Conv/Add output that only feeds a Relu
        # (in the float graph) takes the Relu output's range: the Relu cuts the negative side.
        users = fp32_users.get(q.input[0], [])
        amaxes = [act_ranges.amax(q.input[0])]
        if len(users) == 1 and users[0].op_type == "Relu":
            amaxes.append(act_ranges.amax(users[0].output[0]))
        assert any(math.isclose(scale * 127, a, rel_tol=1e-5) for a in amaxes), q.input[0]
    # Biases stay float: TensorRT's importer takes no int32 DequantizeLinear.
    dq_inputs = [n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert not [name for name in dq_inputs if name in arrays and arrays[name].dtype == np.int32]


def test_cpu_int8_model_has_uint8_activations_and_int8_weights(int8_models):
    """Guards the CPU model (``*.int8-cpu.onnx``), as calibration/qdq.py intends for ONNX
    Runtime's u8s8 kernels: activations are per-tensor uint8 with the asymmetric scale and zero
    point of their calibrated range (scale = (max(hi,0) - min(lo,0)) / 255, zero point =
    round(-min(lo,0) / scale), nonzero where the range goes negative); weights are stored int8,
    per output channel, symmetric (zero points 0); biases are int32."""
    import onnx

    fp32, paths, act_ranges, regions = int8_models
    model = onnx.load(str(paths["int8-cpu"]))
    _check_weights(model, _fp32_weights(fp32), regions.weighted_nodes, "int8-cpu")

    arrays, qs = _activation_quantizers(model)
    nonzero = 0
    for q in qs:
        scale, zp = arrays[q.input[1]], arrays[q.input[2]]
        assert scale.shape == () and zp.shape == (), q.input[0]
        assert zp.dtype == np.uint8, q.input[0]
        lo, hi = act_ranges.ranges[q.input[0]]
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        assert math.isclose(scale, (hi - lo) / 255, rel_tol=1e-5), q.input[0]
        assert int(zp) == round(-lo / float(scale)), q.input[0]
        nonzero += int(zp) != 0
    assert nonzero > 0  # asymmetric ranges are used, not symmetric ones stored as uint8

    producer = {o: n for n in model.graph.node for o in n.output}
    biased = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm") and len(n.input) > 2]
    assert biased  # (every Conv has a bias once BatchNorm is folded in)
    for node in biased:
        dq = producer[node.input[2]]
        assert dq.op_type == "DequantizeLinear", node.name
        assert arrays[dq.input[0]].dtype == np.int32, node.name


def test_int8_models_pass_the_onnx_checker(int8_models):
    """Both INT8 files are valid ONNX: every node after the producers of its inputs (the
    quantizer appends its Q/DQ nodes; TensorRT's parser and `export MODEL.int8.onnx --trt` run
    the checker)."""
    import onnx

    _, paths, _, _ = int8_models
    for path in paths.values():
        onnx.checker.check_model(onnx.load(str(path)))
