"""`socket-edge bench` end to end: rows, accuracy and agreement, error rows, energy, outputs."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from socket_edge.bench import BenchConfig, bench
from socket_edge.bench.report import plot, to_markdown
from socket_edge.errors import SocketEdgeError
from socket_edge.runtime.base import ArtifactInfo, Runner

FAST = dict(warmup_s=0.0, iterations=3, show_progress=False, power=False)
LATENCY_KEYS = {"min", "mean", "p50", "p90", "p99", "max"}


@pytest.fixture(scope="module")
def depth_onnx(depth_ckpt, tmp_path_factory) -> Path:
    """The depth checkpoint as FP32 ONNX with its sidecar (made here, not by `export`)."""
    import warnings

    import torch

    from socket_edge.artifact import make_sidecar, write_sidecar
    from socket_edge.models.checkpoint import load_checkpoint

    model, meta = load_checkpoint(depth_ckpt)
    path = tmp_path_factory.mktemp("onnx") / "depth.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice
        torch.onnx.export(
            model,
            torch.zeros(1, 1, 64, 64),
            str(path),
            input_names=["input"],
            output_names=["logits"],
            opset_version=17,
            dynamo=False,
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    write_sidecar(path, make_sidecar(path, "onnx", "fp32", meta))
    return path


@pytest.fixture()
def test_dir(synth_root) -> Path:
    return synth_root / "depth" / "target" / "test"


def test_rows_hold_latency_accuracy_and_agreement(depth_ckpt, depth_onnx, test_dir):
    from socket_edge.evaluate import evaluate_artifact

    doc = bench([depth_ckpt, depth_onnx], test_dir, BenchConfig(batches=[1, 3], **FAST))
    assert doc["errors"] == 0
    assert [(r["name"], r["batch"]) for r in doc["rows"]] == [
        ("depth-source-only.pt", 1),
        ("depth-source-only.pt", 3),
        ("depth.onnx", 1),
        ("depth.onnx", 3),
    ]
    expected = evaluate_artifact(depth_ckpt, test_dir, show_progress=False)
    for row in doc["rows"]:
        lat = row["latency_ms"]
        assert set(lat) >= LATENCY_KEYS
        assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert row["throughput_ips"] == pytest.approx(row["batch"] * 1000 / lat["mean"])
        assert row["iterations"] == 3
        assert row["top1"] == pytest.approx(expected.top1)
        assert row["per_class"] == pytest.approx(expected.per_class)
        assert row["n_images"] == expected.n == 20
        assert row["peak_rss_mb"] > 10
        assert row["timing"]["copies"] == "n/a (CPU)"
    assert [r["backend"] for r in doc["rows"]] == ["torch", "torch", "onnxruntime", "onnxruntime"]
    assert all(r["precision"] == "fp32" for r in doc["rows"])
    assert doc["rows"][0]["agreement"] == 1.0  # the reference against itself
    # FP32 ONNX from the same weights predicts the same classes as the checkpoint.
    assert doc["rows"][2]["agreement"] >= 0.95
    assert doc["settings"]["reference"] == "depth-source-only.pt"
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["cpu"]
    assert doc["machine"]["onnxruntime"] and doc["machine"]["torch"]
    json.dumps(doc)  # the whole report is JSON-ready


def test_bad_artifacts_get_one_error_row_each_and_the_rest_still_run(
    depth_onnx, source_ckpt, test_dir, tmp_path
):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not an onnx model" * 10)
    shutil.copy(depth_onnx.with_suffix(".json"), garbage.with_suffix(".json"))
    no_sidecar = tmp_path / "bare.onnx"
    shutil.copy(depth_onnx, no_sidecar)
    missing = tmp_path / "missing.onnx"
    artifacts = [missing, garbage, no_sidecar, depth_onnx, source_ckpt]
    doc = bench(artifacts, test_dir, BenchConfig(batches=[1, 2], **FAST))
    by_name: dict[str, list[dict]] = {}
    for row in doc["rows"]:
        by_name.setdefault(row["name"], []).append(row)
    errors = {name: rows[0]["error"] for name, rows in by_name.items() if rows[0]["error"]}
    assert set(errors) == {"missing.onnx", "garbage.onnx", "bare.onnx", "src-resnet18.pt"}
    for name, rows in by_name.items():
        if name in errors:
            assert len(rows) == 1 and rows[0]["batch"] is None  # one row, not one per batch
    assert errors["missing.onnx"] == f"{missing}: no such file"
    # Failed rows keep the schema: every key present, unmeasured ones None.
    missing_row = by_name["missing.onnx"][0]
    assert missing_row["latency_ms"] is None and missing_row["top1"] is None
    assert missing_row["agreement"] is None and missing_row["throughput_ips"] is None
    assert "not a valid ONNX model" in errors["garbage.onnx"]  # found before ONNX Runtime
    assert "no sidecar" in errors["bare.onnx"]
    # An RGB model fed depth images: the data does not fit the model.
    assert "8-bit RGB image is expected" in errors["src-resnet18.pt"]
    assert all("\n" not in e and name in e for name, e in errors.items())
    good = by_name["depth.onnx"]
    assert [r["batch"] for r in good] == [1, 2] and all(r["error"] is None for r in good)
    # The first artifact failed, so the first that ran is the reference.
    assert good[0]["agreement"] == 1.0
    assert doc["settings"]["reference"] == "depth.onnx"
    assert any("agreement is measured against depth.onnx" in w for w in doc["warnings"])
    assert doc["errors"] == 4


def test_data_with_foreign_classes_is_a_clear_row_error(depth_onnx, test_dir, tmp_path):
    data = tmp_path / "fruit"
    (data / "banana").mkdir(parents=True)
    for src in sorted((test_dir / "cube").iterdir())[:2]:
        shutil.copy(src, data / "banana" / src.name)
    doc = bench([depth_onnx], data, BenchConfig(**FAST))
    (row,) = doc["rows"]
    assert "class folders ['banana'] are not among the model's classes" in row["error"]
    assert row["error"].startswith(str(depth_onnx))


def test_latency_only_run_keeps_accuracy_keys(depth_onnx, test_dir):
    doc = bench([depth_onnx], test_dir, BenchConfig(accuracy=False, **FAST))
    (row,) = doc["rows"]
    assert row["error"] is None and row["latency_ms"]["p50"] > 0
    assert row["top1"] is None and row["agreement"] is None and row["per_class"] is None


def test_unlabelled_data_gives_agreement_without_top1(depth_ckpt, depth_onnx, test_dir, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for src in sorted(test_dir.rglob("*.png"))[:5]:
        shutil.copy(src, flat / f"{src.parent.name}_{src.name}")
    doc = bench([depth_ckpt, depth_onnx], flat, BenchConfig(**FAST))
    assert doc["errors"] == 0
    for row in doc["rows"]:
        assert row["top1"] is None and row["labelled"] is False and row["n_images"] == 5
    assert doc["rows"][1]["agreement"] >= 0.8


class FakeEngine(Runner):
    """Stands in for a TensorRT engine runner that takes no cuda_graph / include_copies options."""

    backend = "tensorrt"
    classes: list[str] = []

    def __init__(self, path, device=None, verify=True):
        super().__init__(path)

    def load_info(self) -> ArtifactInfo:
        return ArtifactInfo(
            self.path, "engine", list(self.classes), "depth", 64, {}, {}, precision="int8"
        )

    def activate_impl(self) -> None:
        pass

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        time.sleep(0.002)
        logits = np.zeros((len(batch), len(self.classes)), dtype=np.float32)
        logits[:, 0] = 1.0
        return logits

    def describe(self) -> dict:
        return {**super().describe(), "device": "cuda:0"}


ORIN_LINE = (
    "04-21-2023 10:12:31 RAM 2448/7620MB (lfb 1x4MB) SWAP 0/3810MB (cached 0MB) "
    "CPU [1%@729,0%@729,0%@729,0%@729,off,off] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305] "
    "CPU@46.343C GPU@44.031C VDD_IN 5292mW/5292mW VDD_CPU_GPU_CV 771mW/771mW VDD_SOC 1505mW/1505mW"
)


def fake_tegrastats(line: str, period_s: float) -> list[str]:
    """A command printing one tegrastats line over and over, as `tegrastats --interval` does."""
    import sys

    script = (
        f"import time\nwhile True:\n    print({line!r}, flush=True)\n    time.sleep({period_s})\n"
    )
    return [sys.executable, "-u", "-c", script]


def test_engine_options_and_energy_from_tegrastats(depth_ckpt, test_dir, tmp_path, monkeypatch):
    import socket_edge.runtime as runtime
    from socket_edge.bench.power import TegraPower
    from socket_edge.models.checkpoint import read_checkpoint

    FakeEngine.classes = read_checkpoint(depth_ckpt)["meta"]["classes"]
    engine = tmp_path / "model.int8.engine"
    engine.write_bytes(b"fake")
    real = runtime.load_runner

    def load_runner(path, **options):
        if str(path).endswith(".engine"):
            return FakeEngine(path, **options)
        return real(path, **options)

    monkeypatch.setattr(runtime, "load_runner", load_runner)
    sampler = TegraPower(20, command=fake_tegrastats(ORIN_LINE, 0.01)).start()
    try:
        time.sleep(0.2)  # let the fake tegrastats start printing
        cfg = BenchConfig(
            batches=[2],
            warmup_s=0.0,
            duration_s=0.4,
            min_iterations=5,
            include_copies=False,
            cuda_graph=True,
            show_progress=False,
        )
        doc = bench([engine], test_dir, cfg, sampler=sampler)
    finally:
        sampler.stop()
    (row,) = doc["rows"]
    assert row["error"] is None and row["backend"] == "tensorrt" and row["precision"] == "int8"
    assert sorted(row["options_unsupported"]) == ["cuda_graph", "include_copies"]
    assert row["timing"]["gpu"] is True
    assert row["timing"]["gpu_sync"] == "runner synchronises before returning"
    assert row["timing"]["copies"] == "included (this runner cannot exclude them)"
    assert row["timing"]["cuda_graph"] == "unsupported"
    power = row["power"]
    assert power["mean_mw"] == pytest.approx(5292) and power["rail"] == "VDD_IN"
    assert power["samples"] >= 3
    per_image_ms = row["latency_ms"]["mean"] / 2
    assert row["energy_mj_per_image"] == pytest.approx(5292 * per_image_ms / 1000)
    assert row["images_per_joule"] * row["energy_mj_per_image"] == pytest.approx(1000)
    assert row["top1"] == pytest.approx(0.1)  # always class 0: 2 of 20 images
    assert doc["settings"]["power_source"] == "tegrastats"
    assert "board input power" in doc["settings"]["power_note"]


def test_markdown_and_plot(depth_ckpt, depth_onnx, test_dir, tmp_path, monkeypatch):
    import sys

    doc = bench(
        [depth_ckpt, depth_onnx, tmp_path / "nope.pt"], test_dir, BenchConfig(batches=[1], **FAST)
    )
    md = to_markdown(doc)
    assert "| artifact | backend | precision | device | batch | p50 ms |" in md
    assert md.count("\n| depth") == 2
    assert f"error: {tmp_path / 'nope.pt'}: no such file" in md
    assert "Machine: CPU" in md
    png = tmp_path / "plot.png"
    plot(doc, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SocketEdgeError, match="needs matplotlib"):
        plot(doc, tmp_path / "again.png")


def test_cli_writes_json_markdown_and_plot_and_fails_on_a_bad_row(
    cli, depth_ckpt, depth_onnx, test_dir, tmp_path
):
    out = tmp_path / "out"
    res = cli(
        "bench",
        str(depth_ckpt),
        str(depth_onnx),
        str(tmp_path / "missing.engine"),
        "--data",
        str(test_dir),
        "--batch",
        "1,2",
        "--warmup-s",
        "0",
        "--iterations",
        "3",
        "--json",
        str(out / "b.json"),
        "--md",
        str(out / "b.md"),
        "--plot",
        str(out / "b.png"),
    )
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert f"error: {tmp_path / 'missing.engine'}: no such file" in res.stderr
    doc = json.loads((out / "b.json").read_text())
    assert len(doc["rows"]) == 5 and doc["errors"] == 1
    for row in doc["rows"][:4]:
        for key in (
            "artifact",
            "backend",
            "precision",
            "batch",
            "latency_ms",
            "throughput_ips",
            "top1",
            "agreement",
        ):
            assert key in row
        assert set(row["latency_ms"]) >= LATENCY_KEYS
    assert {"machine", "settings", "rows"} <= set(doc)
    assert "p50 ms" in (out / "b.md").read_text()
    assert (out / "b.png").stat().st_size > 1000
    assert "depth.onnx" in res.stdout  # the table


def test_cli_rejects_bad_options(cli, depth_onnx, test_dir, tmp_path):
    res = cli("bench", str(depth_onnx), "--data", str(test_dir), "--batch", "0")
    assert res.returncode == 2
    assert res.stderr.strip() == "error: --batch takes positive integers, got '0'"
    res = cli("bench", str(depth_onnx), "--data", str(tmp_path / "nowhere"))
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: {tmp_path / 'nowhere'}: no such data folder"
    res = cli("bench", "--help")
    assert res.returncode == 0
    assert "exit code is 2 if any row failed" in " ".join(res.stdout.split())
