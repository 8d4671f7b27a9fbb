"""trtexec's performance summary, parsed from real outputs of TensorRT 8.x (Jetson) and 10.x.

The summaries are trtexec output as users posted it (data, not code):
- TENSORRT_10: NVIDIA/TensorRT issue #4177 (2024-10, TensorRT 10 era), every line timestamped,
  percentiles 90/95/99; the version line in the format of issue #4036 (TensorRT v100200).
- JETSON_8: beyondli/Yolo_on_Jetson issue #4 (2023, a Jetson with JetPack's TensorRT 8): no
  timestamps, only percentile(99%), and some '=' signs missing ("max 6.19507 ms").
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from socket_edge.bench.trtexec import find_trtexec, parse_summary, run_trtexec
from socket_edge.errors import SocketEdgeError

TENSORRT_10 = """\
&&&& RUNNING TensorRT.trtexec [TensorRT v100200] # trtexec --loadEngine=FM_P_D_fp16.engine
[10/03/2024-10:47:59] [I] === Performance summary ===
[10/03/2024-10:47:59] [I] Throughput: 130.298 qps
[10/03/2024-10:47:59] [I] Latency: min = 5.38672 ms, max = 13.3664 ms, mean = 7.60628 ms, median = 7.16092 ms, percentile(90%) = 10.2996 ms, percentile(95%) = 10.8698 ms, percentile(99%) = 12.9675 ms
[10/03/2024-10:47:59] [I] Enqueue Time: min = 2.72876 ms, max = 15.0201 ms, mean = 7.63062 ms, median = 7.86694 ms, percentile(90%) = 10.1792 ms, percentile(95%) = 11.7217 ms, percentile(99%) = 14.1848 ms
[10/03/2024-10:47:59] [I] H2D Latency: min = 0.0065918 ms, max = 0.0698242 ms, mean = 0.0122212 ms, median = 0.00814819 ms, percentile(90%) = 0.0253906 ms, percentile(95%) = 0.0270996 ms, percentile(99%) = 0.0515137 ms
[10/03/2024-10:47:59] [I] GPU Compute Time: min = 5.34595 ms, max = 13.3388 ms, mean = 7.58404 ms, median = 7.14139 ms, percentile(90%) = 10.2881 ms, percentile(95%) = 10.8175 ms, percentile(99%) = 12.9485 ms
[10/03/2024-10:47:59] [I] D2H Latency: min = 0.00390625 ms, max = 0.110596 ms, mean = 0.0100141 ms, median = 0.00439453 ms, percentile(90%) = 0.0254517 ms, percentile(95%) = 0.0319824 ms, percentile(99%) = 0.0994873 ms
[10/03/2024-10:47:59] [I] Total Host Walltime: 3.00082 s
[10/03/2024-10:47:59] [I] Total GPU Compute Time: 2.96536 s
"""

JETSON_8 = """\
=== Performance summary ===
Throughput: 169.352 qps
Latency: min = 5.38959 ms, max 6.19507 ms, mean 5.93288 ms, median 6.02185 ms, percentile(99%) 6.17407 ms
Enqueue Time: min = 0.596436 ms, max = 0.805542 ms, mean = 0.628294 ms, median = 0.625488 ms, percentile(99%) = 0.697754 ms
H2D Latency: min = 0.800781 ms, max = 0.900391 ms, mean = 0.82323 ms, median = 0.817383 ms, percentile(99%) = 0.895874 ms
GPU Compute Time: min = 3.17834 ms, max = 3.88306 ms, mean = 3.63242 ms, median = 3.71753 ms, percentile(99%) 3.87793 ms
D2H Latency: min = 1.30469 ms, max = 1.56445 ms, mean 1.47722 ms, median = 1.48657 ms, percentile(99%) 1.50879 ms
GPU compute time is unstable, with coefficient of variance = 5.55763%.
"""


def test_parses_a_tensorrt_10_summary():
    s = parse_summary(TENSORRT_10)
    assert s["version"] == "10.2.0" and s["throughput_qps"] == pytest.approx(130.298)
    gpu = s["gpu_compute_ms"]
    assert gpu == {
        "min": 5.34595, "max": 13.3388, "mean": 7.58404, "p50": 7.14139,
        "p90": 10.2881, "p95": 10.8175, "p99": 12.9485,
    }  # fmt: skip
    assert s["latency_ms"]["p99"] == 12.9675 and s["h2d_ms"]["p50"] == 0.00814819
    assert s["d2h_ms"]["max"] == 0.110596 and s["enqueue_ms"]["p95"] == 11.7217


def test_parses_a_jetson_tensorrt_8_summary_with_missing_equals_signs():
    s = parse_summary(JETSON_8)
    assert s["version"] is None and s["throughput_qps"] == pytest.approx(169.352)
    assert s["gpu_compute_ms"] == {
        "min": 3.17834, "max": 3.88306, "mean": 3.63242, "p50": 3.71753, "p99": 3.87793,
    }  # fmt: skip
    assert s["latency_ms"]["max"] == 6.19507 and s["latency_ms"]["p99"] == 6.17407
    assert "p90" not in s["latency_ms"]


def test_version_lines_of_tensorrt_8():
    assert parse_summary("[I] TensorRT version: 8.6.3\n" + JETSON_8)["version"] == "8.6.3"
    assert parse_summary("[TensorRT v8502] # trtexec\n" + JETSON_8)["version"] == "8.5.2"


def test_output_without_a_summary_is_an_error():
    with pytest.raises(ValueError, match="no 'GPU Compute Time'"):
        parse_summary("[I] Engine loaded\n[E] Error[1]: out of memory\n")


def test_run_trtexec_calls_it_and_reads_its_summary(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "trtexec"
    fake.parent.mkdir()
    (tmp_path / "summary.txt").write_text(TENSORRT_10)
    fake.write_text(
        f'#!/bin/sh\necho "$@" > "$(dirname "$0")/args"\ncat {tmp_path / "summary.txt"}\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    assert find_trtexec() == str(fake)
    doc = run_trtexec(tmp_path / "m.engine", "input", [8, 1, 480, 640], duration_s=2)
    assert doc["gpu_compute_ms"]["p99"] == 12.9485
    args = (fake.parent / "args").read_text().split()
    assert f"--loadEngine={tmp_path / 'm.engine'}" in args and "--shapes=input:8x1x480x640" in args
    fake.write_text("#!/bin/sh\necho '[E] cannot deserialize engine'\nexit 1\n")
    with pytest.raises(SocketEdgeError, match="trtexec failed on m.engine .exit 1.: .E. cannot"):
        run_trtexec(tmp_path / "m.engine", "input", [1, 1, 64, 64])
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    if find_trtexec() is None:
        with pytest.raises(SocketEdgeError, match="trtexec is not on PATH"):
            run_trtexec(Path("m.engine"), "input", [1, 1, 64, 64])


def test_bench_puts_trtexec_beside_its_own_figures(tmp_path, monkeypatch):
    import time

    import numpy as np
    from PIL import Image

    import socket_edge.runtime as runtime
    from socket_edge.bench import BenchConfig, bench
    from socket_edge.runtime.base import ArtifactInfo, Runner

    class FakeEngine(Runner):
        backend = "tensorrt"

        def load_info(self) -> ArtifactInfo:
            sidecar = {"input": {"name": "input", "shape": ["batch", 1, 64, 64]}}
            return ArtifactInfo(
                self.path, "engine", ["a", "b"], "depth", 64, {}, {}, extra={"sidecar": sidecar}
            )

        def activate_impl(self) -> None:
            pass

        def infer_impl(self, batch):
            time.sleep(0.001)
            return np.tile(np.array([[1.0, 0.0]], np.float32), (len(batch), 1))

    for c in ("a", "b"):
        (tmp_path / "data" / c).mkdir(parents=True)
        Image.fromarray(np.full((64, 64), 1500, np.uint16)).save(tmp_path / "data" / c / "x.png")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"fake")
    monkeypatch.setattr(runtime, "load_runner", lambda path, **o: FakeEngine(path))
    fake = tmp_path / "bin" / "trtexec"
    fake.parent.mkdir()
    (tmp_path / "summary.txt").write_text(TENSORRT_10)
    fake.write_text(f"#!/bin/sh\ncat {tmp_path / 'summary.txt'}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    cfg = BenchConfig(
        batches=[2], warmup_s=0, iterations=3, power=False, trtexec=True, show_progress=False
    )
    (row,) = bench([engine], tmp_path / "data", cfg)["rows"]
    t = row["trtexec"]
    assert row["error"] is None and t["error"] is None
    assert (t["gpu_compute_p50_ms"], t["gpu_compute_p99_ms"]) == (7.14139, 12.9485)
    assert "--shapes=input:2x1x64x64" in t["command"] and t["version"] == "10.2.0"
    cfg.trtexec = False
    assert bench([engine], tmp_path / "data", cfg)["rows"][0]["trtexec"] is None
