"""Real robot recordings for the tests and benchmarks/bag_read.py, written with rosbags' own
writers: ROS 2 (sqlite3 or mcap) and ROS 1, sensor_msgs/Image and CompressedImage messages
encoded here as camera drivers and image_transport publish them."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PERIOD_NS = 33_333_333  # 30 Hz
T0_NS = 1_700_000_000_000_000_000


@dataclass
class Msg:
    """One message to write: header stamp (ns), type ('Image' or 'CompressedImage'), fields."""

    stamp: int
    kind: str
    fields: dict


def png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def raw(stamp: int, arr: np.ndarray, encoding: str, pad: int = 0, big: bool = False) -> Msg:
    """sensor_msgs/Image of ``arr`` (H, W) or (H, W, C), rows padded by ``pad`` bytes."""
    a = np.ascontiguousarray(arr)
    if big:
        a = a.astype(a.dtype.newbyteorder(">"))
    h, w = a.shape[:2]
    rows = a.reshape(h, -1).view(np.uint8)
    row = rows.shape[1]
    data = np.zeros((h, row + pad), np.uint8)
    data[:, :row] = rows
    return Msg(stamp, "Image", {"height": h, "width": w, "encoding": encoding,
                                "is_bigendian": int(big), "step": row + pad,
                                "data": data.reshape(-1)})  # fmt: skip


def compressed(stamp: int, data: bytes, fmt: str) -> Msg:
    return Msg(stamp, "CompressedImage", {"format": fmt, "data": np.frombuffer(data, np.uint8)})


def compressed_depth_16(stamp: int, mm: np.ndarray) -> Msg:
    """image_transport compressedDepth of a 16UC1 image: config header, then the PNG."""
    head = struct.pack("<iff", -1, 0.0, 0.0)
    return compressed(stamp, head + png_bytes(mm.astype(np.uint16)), "16UC1; compressedDepth png")


def compressed_depth_32(stamp: int, metres: np.ndarray, quant: float = 100.0,
                        depth_max: float = 10.0) -> Msg:  # fmt: skip
    """compressedDepth of a 32FC1 image: quantised inverse depth (the plugin's defaults)."""
    a = np.float32(quant * (quant + 1.0))
    b = np.float32(1.0 - a / np.float32(depth_max))
    m = metres.astype(np.float32)
    ok = np.isfinite(m) & (m > 0) & (m < depth_max)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(ok, a / m + b, 0).astype(np.float32)
    head = struct.pack("<iff", 0, float(a), float(b))
    return compressed(stamp, head + png_bytes(inv.astype(np.uint16)), "32FC1; compressedDepth png")


def inverse_depth_mm(metres: np.ndarray, quant: float = 100.0, depth_max: float = 10.0):
    """What a reader must get back (mm, uint16) from compressed_depth_32 of ``metres``."""
    a = np.float32(quant * (quant + 1.0))
    b = np.float32(1.0 - a / np.float32(depth_max))
    m = metres.astype(np.float32)
    ok = np.isfinite(m) & (m > 0) & (m < depth_max)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(ok, a / m + b, 0).astype(np.float32).astype(np.uint16)
        back = np.where(v > 0, a / (v.astype(np.float32) - b), np.nan).astype(np.float32)
        mm = np.rint(back.astype(np.float64) * 1000.0)
        good = np.isfinite(mm) & (mm > 0) & (mm <= 65535)
    return np.where(good, mm, 0).astype(np.uint16)


def stamps(n: int, jitter_ms: float = 3.0, seed: int = 0, offset_ns: int = 0) -> list[int]:
    """``n`` header stamps at 30 Hz with uniform jitter of +-``jitter_ms``."""
    rng = np.random.default_rng(seed)
    jitter = rng.uniform(-jitter_ms, jitter_ms, n) * 1e6
    return [T0_NS + offset_ns + k * PERIOD_NS + int(j) for k, j in enumerate(jitter)]


def write_bag(path: Path, topics: dict[str, Iterable[Msg]], kind: str = "mcap",
              other: dict[str, int] | None = None) -> Path:  # fmt: skip
    """Write ``topics`` (name -> messages) as a ROS 2 mcap / sqlite3 bag folder or a ROS 1 bag;
    ``other`` adds std_msgs/String topics (name -> count). Returns the path to read."""
    from rosbags.typesys import Stores, get_typestore

    ros1 = kind == "ros1"
    ts = get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_HUMBLE)
    Header = ts.types["std_msgs/msg/Header"]
    Time = ts.types["builtin_interfaces/msg/Time"]
    String = ts.types["std_msgs/msg/String"]
    serialize = ts.serialize_ros1 if ros1 else ts.serialize_cdr
    entries = []
    for topic, msgs in topics.items():
        for m in msgs:
            entries.append((m.stamp, topic, m))
    entries.sort(key=lambda e: e[0])
    types = {
        topic: f"sensor_msgs/msg/{next(iter(m.kind for _, t, m in entries if t == topic))}"
        for topic in topics
    }

    def header(stamp: int):
        t = Time(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000)
        if ros1:
            return Header(seq=0, stamp=t, frame_id="camera")
        return Header(stamp=t, frame_id="camera")

    if ros1:
        from rosbags.rosbag1 import Writer

        writer = Writer(path)
        add = lambda topic, t: writer.add_connection(topic, t, typestore=ts)  # noqa: E731
    else:
        from rosbags.rosbag2 import StoragePlugin, Writer

        plugin = StoragePlugin.MCAP if kind == "mcap" else StoragePlugin.SQLITE3
        writer = Writer(path, version=9, storage_plugin=plugin)
        add = lambda topic, t: writer.add_connection(topic, t, typestore=ts)  # noqa: E731
    with writer:
        conns = {topic: add(topic, t) for topic, t in types.items()}
        extra = {name: add(name, "std_msgs/msg/String") for name in (other or {})}
        for stamp, topic, m in entries:
            cls = ts.types[types[topic]]
            msg = cls(header=header(m.stamp), **m.fields)
            writer.write(conns[topic], stamp + 2_000_000, serialize(msg, types[topic]))
        for name, count in (other or {}).items():
            for k in range(count):
                data = serialize(String(data=f"status {k}"), "std_msgs/msg/String")
                writer.write(extra[name], T0_NS + k * PERIOD_NS, data)
    if ros1:
        return path
    found = sorted(path.glob("*.mcap" if kind == "mcap" else "*.db3"))
    assert found, list(path.iterdir())
    return path


def rendered(n: int, size: int = 64, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """``n`` synthetic frames per modality: depth uint16 mm with holes, IR uint16 counts,
    RGB uint8, as a camera would deliver one scene moving."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out: dict[str, list[np.ndarray]] = {"depth": [], "ir": [], "rgb": [], "metres": []}
    for k in range(n):
        cx, cy = size / 2 + 8 * np.sin(k / 5), size / 2 + 6 * np.cos(k / 7)
        r = np.hypot(xx - cx, yy - cy)
        depth = (1500 + 20 * r + 400 * (r < size / 5)).astype(np.float32)
        metres = depth / 1000.0 + rng.normal(0, 0.0004, depth.shape).astype(np.float32)
        metres[rng.random(depth.shape) < 0.05] = np.nan
        metres[0, :3] = np.inf
        mm = np.rint(np.nan_to_num(metres, nan=0, posinf=0) * 1000).astype(np.uint16)
        ir = (8192 + 100 * (r < size / 5) + rng.integers(0, 60, r.shape)).astype(np.uint16)
        rgb = np.stack(
            [(r * 3) % 256, (xx * 4) % 256, rng.integers(0, 256, r.shape)], axis=-1
        ).astype(np.uint8)
        out["depth"].append(mm)
        out["metres"].append(metres)
        out["ir"].append(ir)
        out["rgb"].append(rgb)
    return out
