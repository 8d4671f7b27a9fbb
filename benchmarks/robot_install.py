"""The robot install: size, cold start, torch-free verbs, and raw frames in the graph.

(1) Two virtual environments WITHOUT system site packages: the robot install
    (`pip install -e ".[ort]"`: no torch) and the workstation install (`pip install -e
    ".[workstation]"`). Reported: size on disk of each, whether `import torch` fails in the robot
    one, whether `socket-edge eval`, `bench` and `classify` of the ONNX exports run there, and the
    cold start (process start to the first prediction of `socket_edge.Classifier` on an ONNX
    model, batch 1, median of --repeats runs) in both, side by side.
(2) Raw frames in the graph: each adapted checkpoint is exported twice with `--int8` (plain, and
    with `--frame-size`), the test set is turned into sensor-sized frames, and every artifact
    (FP32, INT8 for ONNX Runtime CPU, INT8 Q/DQ) is scored with host preprocessing (plain model,
    numpy resize of the frame) and in-graph preprocessing (frame model fed the whole frame):
    top-1 of both and their top-1 agreement.

Frames: the built-in test images are 64x64. They are upscaled by nearest-neighbour to the frame
height (64 -> 480: factor 7.5) and padded to the frame width with their edge columns, i.e. a
wider field of view around the same scene; a real sensor frame has more detail, which only the
resize (not this check) would see. Nearest upscaling keeps depth/IR values real (no blending).

    python benchmarks/robot_install.py --data /work/assets/synth \
        --depth-model depth-socket.pt --ir-model ir-socket.pt \
        --robot-venv /tmp/robot-venv --full-venv /tmp/full-venv --create
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("SOCKET_EDGE_PROGRESS", "0")

SECTION = "robot_install"
REPO = Path(__file__).resolve().parents[1]
VARIANTS = (("FP32", ""), ("INT8 ONNX Runtime CPU", ".int8-cpu"), ("INT8 Q/DQ", ".int8"))
COLD = """
import sys, time
import numpy as np
from PIL import Image
from socket_edge import Classifier
model = Classifier(sys.argv[1])
p = model.predict(np.asarray(Image.open(sys.argv[2])))
print(time.time(), "torch" in sys.modules)
"""


def make_frames(src: Path, dst: Path, frame: tuple[int, int]) -> Path:
    """Nearest upscaling of every image to the frame height, edge-padded to the frame width."""
    from PIL import Image

    height, width = frame
    for p in sorted(src.rglob("*.png")):
        a = np.asarray(Image.open(p))
        h, w = a.shape[:2]
        rows = np.floor((np.arange(height) + 0.5) * h / height).astype(int)
        inner = min(width, round(w * height / h))
        cols = np.floor((np.arange(inner) + 0.5) * w / inner).astype(int)
        up = a[rows][:, cols]
        left = (width - inner) // 2
        pad = ((0, 0), (left, width - inner - left)) + ((0, 0),) * (a.ndim - 2)
        q = dst / p.relative_to(src)
        q.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.pad(up, pad, mode="edge")).save(q)
    return dst


def create_venv(path: Path, extra: str) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "-q", "-e"]
    subprocess.run([*pip, f"{REPO}[{extra}]"], check=True)


def size_mib(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            fp = Path(root) / f
            if not fp.is_symlink():
                total += fp.stat().st_size
    return total / 2**20


def cold_start(venv: Path, model: Path, image: Path, repeats: int) -> tuple[float, bool]:
    """Median seconds from process start to the first prediction; whether torch got imported."""
    times, torch_seen = [], False
    for _ in range(repeats):
        t0 = time.time()
        r = subprocess.run(
            [str(venv / "bin" / "python"), "-c", COLD, str(model), str(image)],
            capture_output=True,
            text=True,
            check=True,
        )
        end, torch_flag = r.stdout.split()
        times.append(float(end) - t0)
        torch_seen |= torch_flag == "True"
    return statistics.median(times), torch_seen


def robot_verbs(venv: Path, onnx: Path, frame_onnx: Path, test: Path, frames: Path) -> dict:
    """Exit codes of the inference verbs and of `import torch` in the robot venv."""
    se = [str(venv / "bin" / "socket-edge")]
    image = sorted(frames.rglob("*.png"))[0]
    runs = {
        "import torch": [str(venv / "bin" / "python"), "-c", "import torch"],
        "eval": [*se, "eval", str(onnx), "--data", str(test), "--json", "-"],
        "bench": [*se, "bench", str(onnx), str(onnx.with_name(onnx.stem + ".int8-cpu.onnx")),
                  "--data", str(test), "--duration-s", "2", "--warmup-s", "0.5", "--json", "-"],
        "classify": [*se, "classify", str(frame_onnx), str(image), "--json", "-"],
        "eval (raw frames)": [*se, "eval", str(frame_onnx), "--data", str(frames), "--json", "-"],
    }  # fmt: skip
    env = {**os.environ, "SOCKET_EDGE_PROGRESS": "0"}
    env.pop("PYTHONPATH", None)
    out = {}
    for name, cmd in runs.items():
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        out[name] = {"rc": r.returncode, "error": r.stderr.strip().splitlines()[-1:] or None}
    return out


def frames_accuracy(
    model: Path, modality: str, data: Path, work: Path, frame, calib_size: int, budget: float
):
    from socket_edge.evaluate import evaluate_artifact
    from socket_edge.export.pipeline import ExportOptions, export

    train, test = data / modality / "target" / "train", data / modality / "target" / "test"
    common = dict(int8=True, calib=train, calib_size=calib_size, holdout=calib_size // 2,
                  max_disagreement=budget, show_progress=False)  # fmt: skip
    plain, framed = work / "plain" / f"{modality}.onnx", work / "frame" / f"{modality}.onnx"
    if not plain.exists():
        export(model, plain, ExportOptions(**common))
    if not framed.exists():
        export(model, framed, ExportOptions(**common, frame_size=frame))
    frames = work / "frames" / modality
    if not frames.exists():
        make_frames(test, frames, frame)
    rows = []
    for label, suffix in VARIANTS:
        p, f = (
            plain.with_name(f"{modality}{suffix}.onnx"),
            framed.with_name(f"{modality}{suffix}.onnx"),
        )
        small = evaluate_artifact(p, test, show_progress=False)
        host = evaluate_artifact(p, frames, show_progress=False)
        graph = evaluate_artifact(f, frames, show_progress=False)
        rows.append({
            "modality": modality, "artifact": label, "top1_64px": small.top1,
            "top1_host": host.top1, "top1_graph": graph.top1, "n": graph.n,
            "agreement": float((host.predictions == graph.predictions).mean()),
        })  # fmt: skip
    return rows, plain, framed, frames


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--depth-model", type=Path, required=True)
    ap.add_argument("--ir-model", type=Path)
    ap.add_argument("--robot-venv", type=Path, required=True)
    ap.add_argument("--full-venv", type=Path, required=True)
    ap.add_argument("--create", action="store_true", help="create the two venvs first")
    ap.add_argument("--frame-size", default="480x640")
    ap.add_argument("--calib-size", type=int, default=256)
    ap.add_argument(
        "--max-disagreement", type=float, default=2.0, help="export's INT8 budget, percent"
    )
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--results", type=Path, default=None)
    ap.add_argument("--model-note", default="")
    args = ap.parse_args(argv)
    from results import RESULTS, machine_line, update_section

    from socket_edge.export.frame import parse_frame_size

    frame = parse_frame_size(args.frame_size)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="robot-install-"))
    if args.create:
        create_venv(args.robot_venv, "ort")
        create_venv(args.full_venv, "workstation")
    rows, depth = [], None
    for modality, model in (("depth", args.depth_model), ("ir", args.ir_model)):
        if model is None:
            continue
        r, plain, framed, frames = frames_accuracy(
            model, modality, args.data, work, frame, args.calib_size, args.max_disagreement
        )
        rows += r
        if modality == "depth":
            depth = (plain, framed, frames)
    assert depth is not None
    plain, framed, frames = depth
    test = args.data / "depth" / "target" / "test"
    verbs = robot_verbs(args.robot_venv, plain, framed, test, frames)
    image = sorted(frames.rglob("*.png"))[0]
    small = sorted(test.rglob("*.png"))[0]
    sizes = {k: size_mib(v) for k, v in (("robot", args.robot_venv), ("full", args.full_venv))}
    cold = {
        name: cold_start(venv, plain, small, args.repeats)
        for name, venv in (("robot", args.robot_venv), ("full", args.full_venv))
    }
    cold_frame = {
        name: cold_start(venv, framed, image, args.repeats)
        for name, venv in (("robot", args.robot_venv), ("full", args.full_venv))
    }
    torch_versions = {}
    for name, venv in (("robot", args.robot_venv), ("full", args.full_venv)):
        r = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch; print(torch.__version__)"],
                           capture_output=True, text=True)  # fmt: skip
        torch_versions[name] = r.stdout.strip() if r.returncode == 0 else None
    load = os.getloadavg()[0]
    lines = [
        f"Machine: {machine_line()}; load average {load:.1f} at the end. "
        f"Venvs without system site packages; Python {sys.version.split()[0]}. "
        + (args.model_note or ""),
        "",
        "| install | command | size on disk | torch | cold start, depth.onnx 64x64 | "
        f"cold start, raw-frame depth.onnx {frame[0]}x{frame[1]} |",
        "| --- | --- | ---: | --- | ---: | ---: |",
    ]
    for name, cmd in (
        ("robot", 'pip install -e ".[ort]"'),
        ("full", 'pip install -e ".[workstation]"'),
    ):
        lines.append(
            f"| {name} | `{cmd}` | {sizes[name]:.0f} MiB | {torch_versions[name] or 'absent'} | "
            f"{cold[name][0] * 1000:.0f} ms | {cold_frame[name][0] * 1000:.0f} ms |"
        )
    lines += [
        "",
        f"Cold start: process start to the first `Classifier(...).predict(frame)` result (ONNX "
        f"Runtime CPU, batch 1), median of {args.repeats} runs each, the two installs measured "
        "one after the other on the same files. torch imported during it: "
        + ", ".join(f"{k} {'yes' if v[1] else 'no'}" for k, v in cold.items())
        + ".",
        "",
        "In the robot venv: "
        + "; ".join(f"`{k}` exit {v['rc']}" for k, v in verbs.items())
        + " (`import torch` must fail; the verbs must exit 0).",
        "",
        f"Raw frames: the test sets as {frame[0]}x{frame[1]} frames (see the script's docstring); "
        "host = plain model after the numpy resize, graph = `export --frame-size` model fed the "
        "whole frame.",
        "",
        "| modality | artifact | top-1 64x64 images | top-1 frames, host | top-1 frames, in graph | "
        "agreement host vs graph | n |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['modality']} | {r['artifact']} | {100 * r['top1_64px']:.1f}% | "
            f"{100 * r['top1_host']:.1f}% | {100 * r['top1_graph']:.1f}% | "
            f"{100 * r['agreement']:.2f}% | {r['n']} |"
        )
    doc = {"sizes_mib": sizes, "cold_start_s": cold, "cold_start_frame_s": cold_frame,
           "verbs": verbs, "frames": rows, "torch": torch_versions}  # fmt: skip
    (work / "robot_install.json").write_text(json.dumps(doc, indent=2))
    update_section(SECTION, "## Robot install and raw frames (benchmarks/robot_install.py)\n\n"
                   + "\n".join(lines), args.results or RESULTS)  # fmt: skip
    print("\n".join(lines))
    return doc


if __name__ == "__main__":
    main()
