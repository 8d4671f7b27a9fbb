"""`socket-edge export`: ONNX parity, INT8 artifacts and their gate, bad input."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from socket_edge.artifact import read_sidecar, sidecar_path
from socket_edge.export.pipeline import ExportOptions, export, int8_paths

from .conftest import carried_over
from .helpers import assert_one_line_error


def _opts(**kw) -> ExportOptions:
    return ExportOptions(show_progress=False, **kw)


@pytest.fixture(scope="module")
def depth_int8(depth_ckpt, synth_root, tmp_path_factory):
    """depth_ckpt exported with INT8 calibration on target/train, gated on target/test."""
    out = tmp_path_factory.mktemp("export") / "model.onnx"
    root = synth_root / "depth" / "target"
    result = export(
        depth_ckpt,
        out,
        _opts(int8=True, calib=root / "train", calib_size=24, verify_data=root / "test"),
    )
    return out, result


@pytest.fixture(scope="module")
def mobilenet_depth_ckpt(synth_root, source_ckpt_mobilenet, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "mnv3s-depth.pt"
    return carried_over(source_ckpt_mobilenet, synth_root / "depth/target/train", out, "depth")


def test_onnx_export_takes_raw_maps_and_matches_torch(depth_int8, depth_ckpt, synth_root):
    import onnx

    from socket_edge.models.checkpoint import load_checkpoint
    from socket_edge.runtime import load_runner

    out, result = depth_int8
    doc = read_sidecar(out, verify_hash=True)
    parity = doc["parity"]
    assert parity == result.parity and parity["passed"]
    assert parity["top1_agreement"] == 1.0 and parity["n"] == 20
    assert parity["max_abs_logit_diff"] <= parity["tolerance"]
    assert parity["batch_sizes"] == [1, 8, 32]
    assert doc["precision"] == "fp32" and doc["encoding_in_graph"] is True
    assert doc["export"]["opset"] == 17

    model = onnx.load(str(out))
    assert model.opset_import[0].version == 17
    (inp,) = model.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert (
        inp.name == "input" and dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 64, 64]
    )
    assert model.graph.output[0].name == "logits"
    assert not [n for n in model.graph.node if n.op_type == "BatchNormalization"]

    # Raw depth maps in mm go in; the same logits as the checkpoint come out, at any batch size.
    torch_model, _ = load_checkpoint(depth_ckpt)
    import torch

    x = np.random.default_rng(0).uniform(300, 5000, (5, 1, 64, 64)).astype(np.float32)
    x[:, :, :8] = 0.0  # missing readings
    with torch.inference_mode():
        ref = torch_model(torch.from_numpy(x)).numpy()
    with load_runner(out) as runner:
        got = runner.infer(x)
    assert np.abs(got - ref).max() <= max(1e-4, 2e-6 * np.abs(ref).max())


def test_int8_artifacts_share_one_calibration(depth_int8):
    import onnx

    from socket_edge.calibration.cache import read_cache

    out, result = depth_int8
    paths = int8_paths(out)
    docs = {k: read_sidecar(p, verify_hash=True) for k, p in paths.items()}
    stamps = {d["calibration"]["stamp"] for d in docs.values()}
    assert stamps == {result.int8["stamp"]}
    fp32_sha = read_sidecar(out)["sha256"]
    assert all(d["calibration"]["model_sha256"] == fp32_sha for d in docs.values())
    assert docs["int8-qdq"]["precision"] == "int8-qdq"
    assert docs["int8-cpu"]["precision"] == "int8-cpu"
    assert docs["int8-qdq"]["calibration"]["set"]["size"] == 24
    assert sidecar_path(paths["cache"]).name == "model.calib.cache.json"

    # The cache holds exactly the ranges the ONNX models were quantized with (amax = |range|).
    stored = docs["cache"]["calibration"]["ranges"]
    parsed = read_cache(paths["cache"]).amax()
    assert list(parsed) == list(stored)
    for name, (lo, hi) in stored.items():
        assert parsed[name] == pytest.approx(max(abs(lo), abs(hi)), rel=2e-7)
    # The raw input (millimetres) and the encoder's inner tensors are never quantized.
    assert "input" not in parsed
    assert all(not n.startswith("/encoder/") or n == "/encoder/Div_1_output_0" for n in parsed)

    for key, act_type in (
        ("int8-qdq", onnx.TensorProto.INT8),
        ("int8-cpu", onnx.TensorProto.UINT8),
    ):
        model = onnx.load(str(paths[key]))
        inits = {t.name: t for t in model.graph.initializer}
        qs = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
        assert qs, key
        assert all(n.input[0] != "input" for n in qs)
        encoder_q = [n for n in qs if n.input[0].startswith("/encoder/")]
        assert {n.input[0] for n in encoder_q} <= {"/encoder/Div_1_output_0"}
        for q in qs:  # activations: int8 with zero point 0 (TensorRT) or uint8 (CPU)
            zp = inits[q.input[2]]
            assert zp.data_type == act_type
            if act_type == onnx.TensorProto.INT8:
                assert not onnx.numpy_helper.to_array(zp).any()
        producer = {o: n for n in model.graph.node for o in n.output}
        for conv in (n for n in model.graph.node if n.op_type == "Conv"):
            dq = producer[conv.input[1]]
            assert dq.op_type == "DequantizeLinear"
            scale = inits[dq.input[1]]
            assert len(scale.dims) == 1 and scale.dims[0] > 1  # per-channel weight scales
            if key == "int8-qdq":  # TensorRT: float weight -> Q -> DQ, float bias
                q = producer[dq.input[0]]
                assert q.op_type == "QuantizeLinear"
                assert inits[q.input[0]].data_type == onnx.TensorProto.FLOAT
                assert len(conv.input) < 3 or conv.input[2] in inits
            else:  # ONNX Runtime: int8 weights stored as such
                assert inits[dq.input[0]].data_type == onnx.TensorProto.INT8
        if key == "int8-qdq":  # TensorRT's importer takes no int32 DequantizeLinear
            assert not [
                n
                for n in model.graph.node
                if n.op_type == "DequantizeLinear"
                and n.input[0] in inits
                and inits[n.input[0]].data_type == onnx.TensorProto.INT32
            ]


def test_int8_accuracy_within_budget(depth_int8, synth_root, cli):
    from socket_edge.evaluate import evaluate_artifact

    out, result = depth_int8
    test = synth_root / "depth" / "target" / "test"
    gate = result.int8["gate"]
    assert gate["passed"] and gate["images"]["labelled"] and gate["images"]["n"] == 20
    fp32 = evaluate_artifact(out, test, show_progress=False).top1
    for key in ("int8-qdq", "int8-cpu"):
        top1 = evaluate_artifact(int8_paths(out)[key], test, show_progress=False).top1
        assert 100 * (fp32 - top1) <= 1.0, key
        assert gate["variants"][key]["int8_top1"] == pytest.approx(top1)
    # `socket-edge eval` takes the CPU INT8 model like any ONNX model
    r = cli("eval", str(int8_paths(out)["int8-cpu"]), "--data", str(test), "--json", "-")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n"] == 20


def test_ir_export_from_the_cli(ir_ckpt, synth_root, tmp_path, cli):
    out = tmp_path / "ir" / "model.onnx"
    test = synth_root / "ir" / "target" / "test"
    r = cli(
        "export",
        str(ir_ckpt),
        "--out",
        str(out),
        "--verify-data",
        str(test),
        "--batch",
        "1,4",
        "--json",
        "-",
    )
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}" in r.stderr  # with --json -, stdout holds only the JSON
    doc = read_sidecar(out, verify_hash=True)
    assert doc["modality"] == "ir" and doc["parity"]["passed"]
    assert doc["parity"]["batch_sizes"] == [1, 4] and doc["parity"]["n"] == 20
    report = json.loads(r.stdout)
    assert report["parity"]["top1_agreement"] == 1.0
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.json", "model.onnx"]


def test_mobilenet_parity(mobilenet_depth_ckpt, synth_root, tmp_path):
    out = tmp_path / "m.onnx"
    res = export(
        mobilenet_depth_ckpt, out, _opts(verify_data=synth_root / "depth" / "target" / "test")
    )
    assert res.parity["passed"] and res.parity["top1_agreement"] == 1.0
    assert res.parity["max_abs_logit_diff"] <= res.parity["tolerance"]


def test_without_images_parity_uses_generated_maps(depth_ckpt, tmp_path, capsys):
    from socket_edge.artifact import make_sidecar, write_sidecar
    from socket_edge.models.checkpoint import read_checkpoint

    # an INT8 model left from an earlier export of another model
    stale = tmp_path / "g.int8-cpu.onnx"
    stale.write_bytes(b"old")
    meta = read_checkpoint(depth_ckpt)["meta"]
    write_sidecar(
        stale, make_sidecar(stale, "onnx", "int8-cpu", meta, calibration={"model_sha256": "0" * 64})
    )
    res = export(depth_ckpt, tmp_path / "g.onnx", _opts(batch=(1, 3)))
    assert res.parity["passed"] and "generated" in res.parity["images"]
    assert (
        "g.int8-cpu.onnx: left from an earlier export of another model" in capsys.readouterr().err
    )
    res = export(depth_ckpt, tmp_path / "n.onnx", _opts(verify=False))
    assert res.parity is None and read_sidecar(tmp_path / "n.onnx")["parity"] is None


def test_gate_keeps_sensitive_layers_in_float(depth_ckpt, synth_root, tmp_path, monkeypatch):
    """A stand-in accuracy that only recovers when the second Conv stays in float."""
    import onnx

    from socket_edge.calibration import gate, qdq

    used: list[list[str]] = []
    real_quantize, real_compare = qdq.quantize, gate.compare

    def quantize(fp32, out, ranges, variant, float_nodes):
        used.append(list(float_nodes))
        return real_quantize(fp32, out, ranges, variant, float_nodes)

    def compare(fp32_logits, int8_logits, labels=None):
        c = real_compare(fp32_logits, int8_logits, labels)
        sensitive = "/backbone/layer1/layer1.0/conv1/Conv"
        c.agreement, c.fp32_top1, c.int8_top1 = 1.0, 0.5, 0.5 if sensitive in used[-1] else 0.45
        return c

    from socket_edge.calibration import graph

    real_regions = graph.regions

    def regions(model):  # rank four layers, not all 22: same logic, a quarter of the time
        r = real_regions(model)
        r.weighted_nodes = r.weighted_nodes[:4]
        return r

    monkeypatch.setattr(qdq, "quantize", quantize)
    monkeypatch.setattr(gate, "compare", compare)
    monkeypatch.setattr(graph, "regions", regions)
    root = synth_root / "depth" / "target"
    out = tmp_path / "g" / "model.onnx"
    res = export(
        depth_ckpt,
        out,
        _opts(
            int8=True,
            calib=root / "train",
            calib_size=16,
            verify_data=root / "test",
            max_drop=1.0,
            verify=False,
        ),
    )
    g = res.int8["gate"]
    assert g["float_layers"] == ["/backbone/layer1/layer1.0/conv1/Conv"]
    assert g["initial_drop_points"] == pytest.approx(5.0) and g["drop_points"] == pytest.approx(0.0)
    assert g["sensitivity"][0]["node"] == "/backbone/layer1/layer1.0/conv1/Conv"
    doc = read_sidecar(int8_paths(out)["int8-qdq"])
    assert doc["calibration"]["float_nodes"]["gate"] == g["float_layers"]
    # that Conv reads float weights in both INT8 models; its neighbours read int8 ones
    for key in ("int8-qdq", "int8-cpu"):
        model = onnx.load(str(int8_paths(out)[key]))
        producers = {o: n.op_type for n in model.graph.node for o in n.output}
        convs = {n.name: n for n in model.graph.node if n.op_type == "Conv"}
        assert producers.get(convs["/backbone/layer1/layer1.0/conv1/Conv"].input[1]) is None
        assert (
            producers.get(convs["/backbone/layer1/layer1.0/conv2/Conv"].input[1])
            == "DequantizeLinear"
        )


def test_failed_gate_writes_nothing(depth_ckpt, synth_root, tmp_path, monkeypatch):
    from socket_edge.calibration import graph
    from socket_edge.errors import ArtifactError

    real_regions = graph.regions

    def regions(model):  # two candidates keep the hopeless search short
        r = real_regions(model)
        r.weighted_nodes = r.weighted_nodes[:2]
        return r

    monkeypatch.setattr(graph, "regions", regions)

    root = synth_root / "depth" / "target"
    out = tmp_path / "f" / "model.onnx"
    with pytest.raises(ArtifactError, match="INT8 stays over budget") as err:
        # a negative budget cannot be met: every layer ends up in float and it still fails
        export(
            depth_ckpt,
            out,
            _opts(
                int8=True,
                calib=root / "train",
                calib_size=16,
                verify_data=root / "test",
                max_drop=-50.0,
                verify=False,
            ),
        )
    assert not out.parent.exists()  # the folder it made for --out is gone again
    # the library names settings; the CLI shows them as flags
    assert "raise max_disagreement / max_drop" in str(err.value)
    assert "raise --max-disagreement / --max-drop" in err.value.for_cli()
    assert "another --calib-method" in err.value.for_cli()


def test_failed_parity_writes_nothing(depth_ckpt, tmp_path, monkeypatch):
    from socket_edge.errors import ArtifactError
    from socket_edge.export import parity

    real = parity.parity_check
    monkeypatch.setattr(
        parity, "parity_check", lambda *a, **kw: real(*a, **{**kw, "rtol": 0.0}) | {"passed": False}
    )
    out = tmp_path / "p" / "model.onnx"
    out.parent.mkdir()
    (out.parent / "keep.txt").write_text("x")
    with pytest.raises(ArtifactError, match="parity check failed"):
        export(depth_ckpt, out, _opts())
    assert [p.name for p in out.parent.iterdir()] == ["keep.txt"]


def test_short_calibration_folder_warns_and_uses_what_there_is(
    depth_ckpt, synth_root, tmp_path, capsys
):
    root = synth_root / "depth" / "target"
    out = tmp_path / "s" / "model.onnx"
    res = export(
        depth_ckpt,
        out,
        _opts(int8=True, calib=root / "test", calib_size=512, verify=False, max_drop=100.0),
    )
    err = capsys.readouterr().err
    assert "20 images, fewer than the 512 asked for calibration; using all 20" in err
    assert "no images left for the accuracy gate" in err
    assert res.int8["set"]["size"] == 20
    assert read_sidecar(int8_paths(out)["int8-cpu"])["calibration"]["set"]["requested"] == 512


# --- bad input through the CLI: one line, exit != 0, nothing at --out ----------------------------


def test_not_a_checkpoint(tmp_path, cli):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    out = tmp_path / "o" / "model.onnx"
    r = cli("export", str(bad), "--out", str(out))
    assert_one_line_error(r, "bad.pt", "not a socket-edge checkpoint")
    assert r.returncode == 2 and not out.exists()


def test_empty_calibration_folder(depth_ckpt, tmp_path, cli):
    empty = tmp_path / "calib"
    empty.mkdir()
    out = tmp_path / "o" / "model.onnx"
    r = cli("export", str(depth_ckpt), "--out", str(out), "--int8", "--calib", str(empty))
    assert_one_line_error(r, "calibration folder", "no images found")
    assert not out.exists()
    r = cli("export", str(depth_ckpt), "--out", str(out), "--int8")
    assert_one_line_error(r, "--int8 needs --calib")


def test_corrupt_onnx(tmp_path, cli):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not protobuf")
    r = cli("export", str(bad), "--trt", "--fp16")
    assert_one_line_error(r, "model.onnx", "not a valid ONNX model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    r = cli("export", str(bad), "--out", str(tmp_path / "x.onnx"))
    assert_one_line_error(r, "already an ONNX model", "--trt")


def test_trt_here_fails_before_writing(depth_ckpt, tmp_path, cli):
    from socket_edge.doctor import tensorrt_version

    if tensorrt_version() is not None:
        pytest.skip("TensorRT is installed here")
    out = tmp_path / "o" / "model.onnx"
    r = cli("export", str(depth_ckpt), "--out", str(out), "--trt", "--fp16")
    assert_one_line_error(r, "TensorRT is not installed here")
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_engine_built_elsewhere(depth_int8, synth_root, tmp_path, cli):
    """An engine whose sidecar names another TensorRT and GPU: eval says exactly that."""
    out, _ = depth_int8
    engine = tmp_path / "model.fp16.engine"
    engine.write_bytes(b"serialized engine bytes")
    doc = read_sidecar(out)
    doc.update(
        {
            "artifact": engine.name,
            "kind": "engine",
            "precision": "fp16",
            "sha256": hashlib.sha256(engine.read_bytes()).hexdigest(),
            "tensorrt": {
                "version": "8.5.2.2",
                "compute_capability": "8.7",
                "gpu": "Orin",
                "profile": {"min": 1, "opt": 8, "max": 32},
            },
        }
    )
    sidecar_path(engine).write_text(json.dumps(doc))
    r = cli("eval", str(engine), "--data", str(synth_root / "depth" / "target" / "test"))
    assert_one_line_error(
        r,
        "model.fp16.engine",
        "cannot run this engine",
        "TensorRT 8.5.2.2",
        "compute capability 8.7 (Orin)",
    )


def _fake_disagreement(monkeypatch, rescuer: str | None, n_layers: int = 3):
    """Stand-in gate figures: without labels, 10% of decisions change unless ``rescuer`` stays
    in float; the first ``n_layers`` weighted layers are the candidates."""
    from socket_edge.calibration import gate, graph, qdq

    used: list[list[str]] = []
    real_quantize, real_compare, real_regions = qdq.quantize, gate.compare, graph.regions

    def quantize(fp32, out, ranges, variant, float_nodes):
        used.append(list(float_nodes))
        return real_quantize(fp32, out, ranges, variant, float_nodes)

    def compare(fp32_logits, int8_logits, labels=None):
        c = real_compare(fp32_logits, int8_logits, None)  # as if the gate images had no labels
        c.agreement = 1.0 if rescuer is not None and rescuer in used[-1] else 0.9
        return c

    def regions(model):
        r = real_regions(model)
        r.weighted_nodes = r.weighted_nodes[:n_layers]
        return r

    monkeypatch.setattr(qdq, "quantize", quantize)
    monkeypatch.setattr(gate, "compare", compare)
    monkeypatch.setattr(graph, "regions", regions)


def test_gate_bounds_disagreement_without_labels(depth_ckpt, synth_root, tmp_path, monkeypatch):
    """10% of decisions changed passes a 20-point accuracy budget but not 2% disagreement: the
    gate keeps the layer that restores agreement in float."""
    rescuer = "/backbone/layer1/layer1.0/conv1/Conv"
    _fake_disagreement(monkeypatch, rescuer)
    root = synth_root / "depth" / "target"
    out = tmp_path / "d" / "model.onnx"
    opts = dict(int8=True, calib=root / "train", calib_size=16, verify=False, max_drop=20.0)
    res = export(depth_ckpt, out, _opts(verify_data=root / "test", **opts))
    g = res.int8["gate"]
    assert g["float_layers"] == [rescuer] and g["max_disagreement"] == 2.0
    assert g["initial_disagreement_percent"] == pytest.approx(10.0)
    assert g["disagreement_percent"] == pytest.approx(0.0) and g["drop_points"] is None
    assert read_sidecar(int8_paths(out)["int8-cpu"])["calibration"]["gate"]["passed"]


def test_gate_fails_naming_layers_when_disagreement_cannot_fit(
    depth_ckpt, synth_root, tmp_path, monkeypatch, capsys
):
    from socket_edge.errors import Int8GateError

    _fake_disagreement(monkeypatch, None, n_layers=2)
    root = synth_root / "depth" / "target"
    out = tmp_path / "f" / "model.onnx"
    opts = dict(int8=True, calib=root / "train", calib_size=16, verify=False, max_drop=20.0)
    with pytest.raises(Int8GateError) as e:
        export(depth_ckpt, out, _opts(verify_data=root / "test", max_disagreement=5.0, **opts))
    text = str(e.value)
    assert "disagreement with FP32 10.00% (" in text and "images; budget 5%)" in text
    assert "most sensitive layers: /backbone/conv1/Conv" in text and "nothing written" in text
    assert "\n" not in text and not out.parent.exists()


@pytest.mark.parametrize(
    "flag,value,fragment",
    [
        ("--max-disagreement", "nan", "--max-disagreement must be a finite number >= 0 and <= 100"),
        ("--max-disagreement", "150", "got 150.0"),
        ("--max-drop", "inf", "--max-drop must be a finite number, got inf"),
    ],
)
def test_cli_checks_gate_budgets(depth_ckpt, tmp_path, cli, flag, value, fragment):
    r = cli("export", str(depth_ckpt), "--out", str(tmp_path / "m.onnx"), flag, value)
    assert r.returncode == 2
    assert_one_line_error(r, fragment)
    assert list(tmp_path.iterdir()) == []


def test_int8_logits_stay_float(depth_int8):
    """Quantized logits tie the top classes of low-confidence images (argmax then picks the first):
    both INT8 models end with the float output of the classifier, not a Q/DQ pair."""
    import onnx

    out, _ = depth_int8
    for key in ("int8-qdq", "int8-cpu"):
        model = onnx.load(str(int8_paths(out)[key]))
        producers = {o: n for n in model.graph.node for o in n.output}
        last = producers[model.graph.output[0].name]
        assert last.op_type == "Gemm", (key, last.op_type)
        assert producers[last.input[0]].op_type == "DequantizeLinear"  # its input is quantized
