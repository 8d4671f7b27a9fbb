"""Reading throughput of robot recordings: frames/s of bag decode beside PNG folder reading.

Writes --frames 480x640 depth frames (a smooth scene in mm with sensor noise and 5 % holes, as a
RealSense publishes at 30 Hz) as
  - sensor_msgs/Image 16UC1 in a ROS 2 mcap bag, a ROS 2 sqlite3 bag and a ROS 1 bag,
  - image_transport compressedDepth (16UC1 form: config header + 16-bit PNG) in an mcap bag,
  - the folder `socket-edge data extract` writes from the raw bag (16-bit PNG in mm),
then times reading every frame into the canonical units (float32 mm, (1, H, W)), single thread:
the bag through socket_edge.data.bags (open, deserialise, decode, convert), the folder through
socket_edge.data.readers.read_image. Each figure is the best of --repeat passes (the machine is
shared; the median is given beside it).

    python benchmarks/bag_read.py --frames 60 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("SOCKET_EDGE_PROGRESS", "0")

SECTION = "bag_read"
H, W = 480, 640


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    out = []
    for k in range(n):
        cx, cy = W / 2 + 80 * np.sin(k / 9), H / 2 + 40 * np.cos(k / 11)
        r = np.hypot(xx - cx, yy - cy)
        mm = 900 + 2.5 * yy + 600 * (r < 90) + rng.normal(0, 4, (H, W))
        mm[rng.random((H, W)) < 0.05] = 0
        out.append(np.clip(mm, 0, 65535).astype(np.uint16))
    return out


def write_inputs(tmp: Path, depth: list[np.ndarray]) -> dict[str, Path]:
    from socket_edge.data import bags
    from tests import bagfiles as bf

    stamps = bf.stamps(len(depth))
    raw = [bf.raw(s, a, "16UC1") for s, a in zip(stamps, depth, strict=True)]
    cd = [bf.compressed_depth_16(s, a) for s, a in zip(stamps, depth, strict=True)]
    paths = {
        "16UC1, ROS 2 mcap": bf.write_bag(tmp / "raw-mcap", {"/depth": raw}, "mcap"),
        "16UC1, ROS 2 sqlite3": bf.write_bag(tmp / "raw-db3", {"/depth": raw}, "sqlite3"),
        "16UC1, ROS 1 bag": bf.write_bag(tmp / "raw.bag", {"/depth": raw}, "ros1"),
        "compressedDepth png, ROS 2 mcap": bf.write_bag(tmp / "cd-mcap", {"/depth": cd}, "mcap"),
    }
    folder = tmp / "folder"
    bags.extract(bags.BagTopic(paths["16UC1, ROS 2 mcap"], "/depth"), folder, "depth")
    paths["16-bit PNG folder (data extract)"] = folder
    return paths


def read_bag(path: Path) -> int:
    from socket_edge.data import bags

    n = 0
    for _, x in bags.read_frames(bags.BagTopic(path, "/depth"), "depth"):
        assert x.shape == (1, H, W)
        n += 1
    return n


def read_folder(path: Path) -> int:
    from socket_edge.data.readers import read_image

    n = 0
    for p in sorted(path.glob("*.png")):
        assert read_image(p, "depth").shape == (1, H, W)
        n += 1
    return n


def measure(paths: dict[str, Path], n: int, repeat: int) -> list[dict]:
    rows = []
    for name, path in paths.items():
        reader = (
            read_folder if path.is_dir() and not (path / "metadata.yaml").exists() else read_bag
        )
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            got = reader(path)
            times.append(time.perf_counter() - t)
            assert got == n, (name, got)
        size = (
            sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            if path.is_dir()
            else (path.stat().st_size)
        )
        rows.append({
            "source": name,
            "fps_best": n / min(times),
            "fps_median": n / statistics.median(times),
            "mb_per_frame": size / n / 1e6,
        })  # fmt: skip
        print(f"{name}: {rows[-1]['fps_best']:.1f} frames/s (best of {repeat})", flush=True)
    return rows


def check_same(paths: dict[str, Path]) -> None:
    """Every source gives the folder's arrays (the benchmark reads the same frames)."""
    from socket_edge.data import bags
    from socket_edge.data.readers import read_image

    folder = paths["16-bit PNG folder (data extract)"]
    want = [read_image(p, "depth") for p in sorted(folder.glob("*.png"))[:3]]
    for name, path in paths.items():
        if path == folder:
            continue
        got = [x for _, x in bags.read_frames(bags.BagTopic(path, "/depth"), "depth")][:3]
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True)), name


def markdown(rows: list[dict], n: int, repeat: int) -> str:
    from importlib.metadata import version

    from results import machine_line

    lines = [
        f"### Bag reading throughput (`benchmarks/bag_read.py --frames {n} --repeat {repeat}`)",
        "",
        f"{n} depth frames of {H}x{W} (uint16 mm, noise, 5 % holes) read into canonical units "
        "(float32 mm) on one thread, best of "
        f"{repeat} passes (median beside it); rosbags {version('rosbags')}. "
        "Bag figures include opening the bag and deserialising each message; every source "
        "gives the folder's arrays (checked). The machine was shared with a long benchmark "
        "running in the background, so figures are lower bounds.",
        "",
        "| source | frames/s (best) | frames/s (median) | MB per frame on disk |",
        "| --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['source']} | {r['fps_best']:.1f} | {r['fps_median']:.1f} | "
            f"{r['mb_per_frame']:.3f} |"
        )
    lines += ["", machine_line()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="Print, do not update RESULTS.md.")
    args = ap.parse_args(argv)
    from results import update_section

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_inputs(Path(tmp), frames(args.frames))
        check_same(paths)
        rows = measure(paths, args.frames, args.repeat)
    text = markdown(rows, args.frames, args.repeat)
    print(text)
    if not args.no_write:
        update_section(SECTION, text)


if __name__ == "__main__":
    main()
