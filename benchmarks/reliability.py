"""Reliability: SIGKILL trials, bad inputs, the cost of verification, fuzzing, --help time.

Writes the ``reliability`` section of benchmarks/RESULTS.md:

- kill trials: `socket-edge adapt` and `socket-edge export` killed with SIGKILL at random
  moments (tiny built-in data); after each kill the output must be absent or complete and
  verified; after the last, a completed run must leave no stray files (and, for adapt, end with
  the weights of an uninterrupted run).
- bad inputs: every case of tests/test_reliability.py (corrupt, mismatched or hostile files and
  settings), run through the CLI, with its exit code and message.
- the cost of verification in bench: opening an artifact (sidecar checks + ONNX Runtime session)
  with verification off, on with a cold digest cache, and on with a warm one (p50 of repeats),
  and bench's p50 latency with and without, in the same run.
- fuzzing: per parser, the examples hypothesis ran (from tests/test_fuzz.py, when present).
- `socket-edge --help` wall time (median of 5).

    python benchmarks/reliability.py [--trials 20] [--model /work/assets/depth.onnx]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import machine_line, update_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "socket_edge.cli.main"]
ENV = {**os.environ, "SOCKET_EDGE_PROGRESS": "0"}


def run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, env=ENV, capture_output=True, text=True, timeout=900, **kw)


def kill_after(args: list[str], seconds: float) -> int | None:
    proc = subprocess.Popen(
        CLI + args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        proc.wait(timeout=seconds)
        return proc.returncode
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return None


# ---------------------------------------------------------------------------------------------
# Tiny data and models


def tiny_setup(work: Path) -> dict[str, Path]:
    from socket_edge.adapt import AdaptConfig, adapt
    from socket_edge.data.synth import SynthConfig, synth
    from socket_edge.supervised import TrainConfig, train_supervised

    data = work / "synth"
    synth(data, SynthConfig(size=64, per_class=8, seed=0), workers=1, show_progress=False)
    src = work / "src.pt"
    cfg = TrainConfig(epochs=1, batch_size=16, seed=0, device="cpu")
    train_supervised(data / "source_rgb/train", src, cfg, show_progress=False)
    depth = work / "depth.pt"
    adapt(src, data / "depth/target/train", depth, "depth",
          config=AdaptConfig(method="source-only", device="cpu"), show_progress=False)  # fmt: skip
    # A smaller tree for the kill trials (a whole adapt run in a minute on a busy CPU): two
    # target images per class and eight pairs.
    mini = work / "mini"
    for cls in sorted((data / "depth/target/train").iterdir()):
        (mini / "target" / cls.name).mkdir(parents=True)
        for f in sorted(cls.iterdir())[:2]:
            shutil.copy(f, mini / "target" / cls.name / f.name)
    for side in ("rgb", "depth"):
        (mini / "paired" / side).mkdir(parents=True)
        for f in sorted((data / "depth/paired" / side).iterdir())[:8]:
            shutil.copy(f, mini / "paired" / side / f.name)
    return {"data": data, "src": src, "depth": depth, "mini": mini}


# ---------------------------------------------------------------------------------------------
# Kill trials


def adapt_args(t: dict[str, Path], out: Path) -> list[str]:
    d = t["mini"]
    return [
        "adapt", "--source", str(t["src"]), "--target", str(d / "target"),
        "--paired", str(d / "paired"), "--modality", "depth", "--epochs", "3",
        "--batch-size", "4", "--seed", "3", "--device", "cpu", "--out", str(out),
    ]  # fmt: skip


def adapt_trials(t: dict[str, Path], work: Path, trials: int, rng: random.Random) -> dict:
    import torch

    from socket_edge.errors import SocketEdgeError
    from socket_edge.models.checkpoint import load_checkpoint, read_checkpoint

    full = work / "adapt-full" / "depth.pt"
    t0 = time.perf_counter()
    assert run(adapt_args(t, full)).returncode == 0
    whole = time.perf_counter() - t0
    out = work / "adapt-killed" / "depth.pt"
    valid = killed = 0
    for _ in range(trials):
        code = kill_after(adapt_args(t, out) + ["--resume"], rng.uniform(0.2, whole))
        ok = True
        try:
            for p in (out, out.with_name("depth.state.pt")):
                if p.exists():
                    read_checkpoint(p)
        except SocketEdgeError:
            ok = False
        valid += ok
        if code is None:
            killed += 1
        elif code == 0:
            out.unlink()
    r = run(adapt_args(t, out) + ["--resume"])
    a, _ = load_checkpoint(full)
    b, _ = load_checkpoint(out)
    same = r.returncode == 0 and all(
        torch.allclose(x.float(), y.float(), atol=1e-6, rtol=0)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    stray = sorted(set(p.name for p in out.parent.iterdir()) - {"depth.pt", "depth.log.jsonl"})
    return {
        "trials": trials, "killed": killed, "valid": valid, "run_s": whole,
        "final": "same weights as uninterrupted (1e-6)" if same else "DIFFERENT weights",
        "stray": stray,
    }  # fmt: skip


def export_trials(t: dict[str, Path], work: Path, trials: int, rng: random.Random) -> dict:
    import torch

    from socket_edge.artifact import sidecar_path, verify_artifact
    from socket_edge.errors import SocketEdgeError

    obj = torch.load(t["depth"], weights_only=True)
    key = next(k for k in obj["state_dict"] if k.startswith("bottleneck") and "weight" in k)
    obj["state_dict"][key] = obj["state_dict"][key] * 1.01
    other = work / "depth-b.pt"
    torch.save(obj, other)
    out = work / "export-set" / "model.onnx"
    args = ["--out", str(out), "--no-verify"]
    t0 = time.perf_counter()
    assert run(["export", str(t["depth"]), *args]).returncode == 0
    whole = time.perf_counter() - t0
    valid = killed = 0
    for i in range(trials):
        src = other if i % 2 == 0 else t["depth"]
        code = kill_after(["export", str(src), *args], rng.uniform(0.3, whole * 1.1))
        killed += code is None
        try:
            verify_artifact(out)
            valid += sidecar_path(out).exists()
        except SocketEdgeError:
            pass
    r = run(["export", str(t["depth"]), *args])
    stray = sorted(set(p.name for p in out.parent.iterdir()) - {"model.onnx", "model.json"})
    return {
        "trials": trials, "killed": killed, "valid": valid, "run_s": whole,
        "final": "complete, verified" if r.returncode == 0 else f"exit {r.returncode}",
        "stray": stray,
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Bad inputs


def _png_header(path: Path, w: int, h: int) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(b"\0" * (1 + 2 * w)) for _ in range(h)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))  # fmt: skip


def bad_inputs(t: dict[str, Path], work: Path) -> list[tuple[str, int, str]]:
    import onnx
    import torch

    from socket_edge.artifact import digest, read_sidecar, sidecar_path, write_sidecar
    from socket_edge.outputs import exclusive

    rows: list[tuple[str, int, str]] = []
    test = t["data"] / "depth/target/test"
    base = work / "bad"
    base.mkdir()

    def record(case: str, r: subprocess.CompletedProcess, want: str = "error:") -> None:
        line = next((ln for ln in r.stderr.splitlines() if ln.startswith(want)), "")
        line = line.replace(str(work), "…")
        rows.append((case, r.returncode, line))

    def fresh(name: str) -> Path:
        out = base / name / "model.onnx"
        r = run(["export", str(t["depth"]), "--out", str(out), "--no-verify"])
        assert r.returncode == 0, r.stderr
        return out

    m = fresh("reversed")
    doc = read_sidecar(m)
    doc["classes"] = doc["classes"][::-1]
    sidecar_path(m).write_text(json.dumps(doc))
    record("sidecar classes reversed (eval)", run(["eval", str(m), "--data", str(test)]))

    m = fresh("sha")
    proto = onnx.load(str(m))
    proto.doc_string = "edited"
    onnx.save(proto, str(m))
    record("model.onnx changed after export (eval)", run(["eval", str(m), "--data", str(test)]))

    m = fresh("mixed")
    proto = onnx.load(str(m))
    proto.doc_string = "new model.onnx beside the old model.json"
    onnx.save(proto, str(m))
    record("new model.onnx beside old model.json (bench)",
           run(["bench", str(m), "--data", str(test), "--iterations", "1", "--warmup-s", "0"]))  # fmt: skip

    m = fresh("int8")
    int8 = m.with_name("model.int8-cpu.onnx")
    shutil.copy(m, int8)
    doc = read_sidecar(m)
    doc.update(artifact=int8.name, precision="int8-cpu", sha256=digest(int8),
               calibration={"model_sha256": "0" * 64, "fp32_artifact": m.name})  # fmt: skip
    write_sidecar(int8, doc)
    record("bench model.onnx + int8-cpu.onnx of an older model",
           run(["bench", str(m), str(int8), "--data", str(test), "--iterations", "1",
                "--warmup-s", "0", "--no-power"]))  # fmt: skip

    secret = base / "secret.bin"
    secret.write_bytes(b"\0" * 4096)
    for case, location in (("../", "../secret.bin"), ("absolute path", str(secret)),
                           ("symlink out", "link.bin")):  # fmt: skip
        m = fresh("ext-" + {"../": "dotdot"}.get(case, case.split()[0]))
        if location == "link.bin":
            (m.parent / "link.bin").symlink_to(secret)
        proto = onnx.load(str(m))
        tensor = max(proto.graph.initializer, key=lambda x: len(x.raw_data))
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        e = tensor.external_data.add()
        e.key, e.value = "location", location
        onnx.save(proto, str(m))
        record(f"external data via {case} (eval --no-verify)",
               run(["eval", str(m), "--data", str(test), "--no-verify"]))  # fmt: skip

    for case, (w, h) in (("20000x20000 PNG", (20000, 20000)), ("10000x10000 PNG", (10000, 10000))):
        data = base / f"png{w}"
        shutil.copytree(test, data)
        cls = sorted(p for p in data.iterdir() if p.is_dir())[0]
        if w == 20000:
            png = cls / "huge.png"
            _png_header_only(png, w, h)
        else:
            png = cls / "bomb.png"
            _png_header(png, w, h)
        size = png.stat().st_size
        record(f"{case} ({size / 1000:.0f} kB) in eval data",
               run(["eval", str(t["depth"]), "--data", str(data)]))  # fmt: skip

    rgb = base / "rgb"
    shutil.copytree(t["data"] / "source_rgb/train", rgb)
    (rgb / "zz_empty").mkdir()
    record("empty class folder (train-source)",
           run(["train-source", str(rgb), "--out", str(base / "s.pt"), "--epochs", "1"]))  # fmt: skip
    part = base / "part"
    shutil.copytree(test, part)
    shutil.rmtree(sorted(p for p in part.iterdir() if p.is_dir())[0])
    record("class with no images (eval: warning)",
           run(["eval", str(t["depth"]), "--data", str(part), "--json", "-"]), "warning:")  # fmt: skip

    out = base / "w" / "depth.pt"
    with exclusive(out, "adapt"):
        record("second adapt on the same --out",
               run(["adapt", "--source", str(t["src"]), "--target", str(t["data"] / "depth/target/train"),
                    "--modality", "depth", "--method", "source-only", "--out", str(out)]))  # fmt: skip
    ra = base / "r" / "ir.pt"
    args = ["adapt", "--target", str(t["data"] / "ir/target/train"), "--modality", "ir", "--method",
            "shot", "--epochs", "3", "--batch-size", "8", "--device", "cpu", "--out", str(ra)]  # fmt: skip
    # a run killed once its first epoch's state file exists
    proc = subprocess.Popen(CLI + [*args, "--source", str(t["src"])], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    state = ra.with_name("ir.state.pt")
    while proc.poll() is None and not state.exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    obj = torch.load(t["src"], weights_only=True)
    obj["meta"]["created"] = "another run"
    other = base / "other-src.pt"
    torch.save(obj, other)
    record("adapt --resume with a different --source",
           run([*args, "--resume", "--source", str(other)]))  # fmt: skip
    log = base / "log" / "depth.log.jsonl"
    log.parent.mkdir()
    log.write_text('{"epoch": 1, "loss": 0.5}\n{"epoch": 2, "lo')
    record("half-written last log line (adapt: warning)",
           run(["adapt", "--source", str(t["src"]), "--target", str(t["data"] / "depth/target/train"),
                "--modality", "depth", "--method", "source-only", "--out",
                str(log.with_name("depth.pt"))]), "warning:")  # fmt: skip
    return rows


def _png_header_only(path: Path, w: int, h: int) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The cost of verification


def verification_cost(model: Path, data: Path, repeats: int) -> dict:
    from socket_edge import artifact
    from socket_edge.bench import BenchConfig, bench
    from socket_edge.runtime import load_runner

    def open_once(verify: bool, cold: bool) -> float:
        if cold:
            artifact.clear_digest_cache(disk=True)
        t0 = time.perf_counter()
        with load_runner(model, verify=verify):
            pass
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {"off": [], "cold": [], "warm": []}
    open_once(True, False)  # warm the file system cache and imports
    for _ in range(repeats):
        times["off"].append(open_once(False, False))
        times["cold"].append(open_once(True, True))
        times["warm"].append(open_once(True, False))
    cfg = dict(batches=[1], warmup_s=0.5, iterations=200, accuracy=False, power=False,
               show_progress=False)  # fmt: skip
    on = bench([model], data, BenchConfig(verify=True, **cfg))["rows"][0]
    off = bench([model], data, BenchConfig(verify=False, **cfg))["rows"][0]
    return {
        "model": model,
        "size_mb": model.stat().st_size / 1e6,
        "repeats": repeats,
        "open_ms": {k: 1000 * statistics.median(v) for k, v in times.items()},
        "p50_on": on["latency_ms"]["p50"] if on.get("latency_ms") else None,
        "p50_off": off["latency_ms"]["p50"] if off.get("latency_ms") else None,
        "errors": [r.get("error") for r in (on, off) if r.get("error")],
    }


# ---------------------------------------------------------------------------------------------
# Fuzzing (tests/test_fuzz.py, when present) and --help


def fuzz_stats() -> list[tuple[str, str]] | None:
    """Examples hypothesis ran per test of tests/test_fuzz.py (counted by the tests themselves)."""
    path = ROOT / "tests" / "test_fuzz.py"
    if not path.exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        counts_file = Path(tmp) / "counts.json"
        r = subprocess.run(
            [sys.executable, "-m", "pytest", str(path), "-q", "-p", "no:cacheprovider",
             "-p", "no:warnings"],
            capture_output=True, text=True, cwd=ROOT, timeout=3600,
            env={**ENV, "SOCKET_EDGE_FUZZ_COUNTS": str(counts_file)},
        )  # fmt: skip
        counts = json.loads(counts_file.read_text()) if counts_file.exists() else {}
    out = [(name, f"{n} examples") for name, n in sorted(counts.items())]
    summary = (r.stdout.strip().splitlines() or ["?"])[-1]
    out.append(("(pytest)", summary))
    return out


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _name(model: Path) -> str:
    text = str(model)
    return "model.onnx of a tiny export (resnet18, 64 px)" if "reliability-" in text else text


def help_time(n: int = 5) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([*CLI, "--help"], env=ENV, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--model", type=Path, default=Path("/work/assets/depth.onnx"))
    ap.add_argument("--data", type=Path, default=Path("/work/assets/synth/depth/target/test"))
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--skip-kills", action="store_true")
    args = ap.parse_args()
    rng = random.Random(13)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        work = Path(tmp)
        os.environ["SOCKET_EDGE_CACHE_DIR"] = ENV["SOCKET_EDGE_CACHE_DIR"] = str(work / "cache")
        t = tiny_setup(work)
        kills = {}
        if not args.skip_kills:
            kills["adapt"] = adapt_trials(t, work, args.trials, rng)
            kills["export"] = export_trials(t, work, args.trials, rng)
        rows = bad_inputs(t, work)
        model, data = args.model, args.data
        if not (model.exists() and data.is_dir() and Path("/work/assets/READY").exists()):
            model = work / "export-set" / "model.onnx"
            if not model.exists():
                run(["export", str(t["depth"]), "--out", str(model), "--no-verify"])
            data = t["data"] / "depth/target/test"
        cost = verification_cost(model, data, args.repeats)
        fuzz = fuzz_stats()
        help_s = help_time()
    load1 = os.getloadavg()[0]

    lines = [
        "## Reliability",
        "",
        f"Machine: {machine_line()}; load average {load0:.1f} "
        f"at the start, {load1:.1f} at the end (shared machine). Written by "
        "`python benchmarks/reliability.py`.",
        "",
    ]
    if kills:
        lines += [
            "### SIGKILL at random moments (tiny built-in data)",
            "",
            "| command | trials | killed mid-run | valid state after the kill | uninterrupted run "
            "| after the next complete run | stray files |",
            "| --- | ---: | ---: | ---: | ---: | --- | --- |",
        ]
        for name, k in kills.items():
            lines.append(
                f"| `socket-edge {name}` | {k['trials']} | {k['killed']} | {k['valid']} of "
                f"{k['trials']} | {k['run_s']:.1f} s | {k['final']} | "
                f"{', '.join(k['stray']) or 'none'} |"
            )
        lines += [
            "",
            "Kill moments: uniform over the length of an uninterrupted run (seeded). adapt: "
            "2 target images per class, 8 pairs, `--epochs 3 --batch-size 4 --resume` each time, then compared tensor by tensor with an "
            "uninterrupted run; export: alternately two checkpoints to one `--out`, the set "
            "checked with `verify_artifact` after each kill. tests/test_crash.py also kills "
            "export at each rename of its commit.",
            "",
        ]
    lines += [
        "### Bad inputs, through the CLI",
        "",
        "| case | exit | message |",
        "| --- | ---: | --- |",
    ]
    for case, code, msg in rows:
        lines.append(f"| {case} | {code} | `{msg[:230]}` |")
    c = cost
    lines += [
        "",
        "### The cost of verification in bench",
        "",
        f"`{_name(c['model'])}` ({c['size_mb']:.1f} MB), p50 of {c['repeats']} repeats of opening it "
        "(sidecar checks + ONNX Runtime session), and bench's p50 latency at batch 1 "
        "(200 iterations) with and without verification, in the same run:",
        "",
        "| | open (load + verify), ms | bench p50 latency, ms |",
        "| --- | ---: | ---: |",
        f"| `--no-verify` | {c['open_ms']['off']:.1f} | {_ms(c['p50_off'])} |",
        f"| verified, digest cache cold | {c['open_ms']['cold']:.1f} | |",
        f"| verified, digest cached (size + mtime) | {c['open_ms']['warm']:.1f} | "
        f"{_ms(c['p50_on'])} |",
        "",
        "Verification happens once when an artifact is opened, never inside the timed loop: "
        "the latency columns differ by the machine's noise only.",
        "",
        "### Fuzzing",
        "",
    ]
    if fuzz is None:
        lines.append("tests/test_fuzz.py is not in this tree yet; rerun after it is merged.")
    else:
        lines += ["| parser test | hypothesis examples |", "| --- | --- |"]
        lines += [f"| {name} | {what} |" for name, what in fuzz]
    lines += [
        "",
        f"`socket-edge --help`: {help_s * 1000:.0f} ms (median of 5 runs, same machine).",
    ]
    md = "\n".join(lines)
    update_section("reliability", md)
    print(md)


if __name__ == "__main__":
    main()
