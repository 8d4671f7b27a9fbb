"""Robot recordings as a data source: ROS 1 ``.bag``, ROS 2 ``.db3`` / ``.mcap`` (or a ROS 2 bag
folder with its ``metadata.yaml``), read with ``rosbags`` (the ``ros`` extra; no ROS install, no
torch).

What a bag topic yields lands in exactly the units the folder path gives for the same image
(``readers.py``): each message is first decoded to its *stored form*, the array ``data extract``
writes as a PNG (depth: uint16 millimetres, 0 = missing; IR: uint8 or uint16 counts; RGB: uint8
H x W x 3), and :func:`canonical` then applies the readers' own conversion. So a bag and the
folder extracted from it give the same arrays, bit for bit.

Encodings (REP 118 and the camera drivers): ``16UC1`` / ``mono16`` depth in mm, ``32FC1`` depth
in metres (NaN, inf and <= 0 = missing; rounded to whole mm, as a 16-bit PNG stores it),
``mono16`` / ``16UC1`` / ``mono8`` / ``8UC1`` IR, ``rgb8`` / ``bgr8`` / ``rgba8`` / ``bgra8`` (and
``mono8`` replicated) RGB; ``step`` (row padding) and ``is_bigendian`` are honoured.
``sensor_msgs/CompressedImage``: PNG / JPEG, and image_transport's ``compressedDepth`` (a 12-byte
config header: int32 format, float32 depthQuantA, depthQuantB; then a 16-bit PNG of the depth in
mm (16UC1), or of the quantised inverse depth (32FC1): depth = A / (v - B), v = 0 missing).

Frames are named by their position among the topic's messages (``000012``), so that the sorted
order of an extracted folder is the bag's order. Sampling (:class:`Sampling`) keeps every N-th
frame and/or frames at least ``stride`` seconds apart (by header stamp). TI pairs are matched on
``header.stamp``: each target frame with its nearest RGB frame, one to one, mutual nearest only,
within a tolerance (default half the target topic's median frame interval); frames without a
partner are counted and reported, never guessed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..console import info
from ..errors import BagError, SocketEdgeError
from ..files import digest, listing_digest
from .datasets import Pair, _ImageDataset
from .readers import _check_pixels

BAG_SUFFIXES = (".bag", ".db3", ".mcap")
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED)

# encoding -> (dtype, channels) of sensor_msgs/Image data (REP 118; OpenCV type names).
RAW_ENCODINGS: dict[str, tuple[str, int]] = {
    "16UC1": ("u2", 1),
    "mono16": ("u2", 1),
    "32FC1": ("f4", 1),
    "mono8": ("u1", 1),
    "8UC1": ("u1", 1),
    "rgb8": ("u1", 3),
    "bgr8": ("u1", 3),
    "8UC3": ("u1", 3),  # OpenCV's default order: BGR
    "rgba8": ("u1", 4),
    "bgra8": ("u1", 4),
}
# What each modality takes, raw.
ACCEPTS = {
    "depth": ("16UC1", "mono16", "32FC1"),
    "ir": ("mono16", "16UC1", "mono8", "8UC1"),
    "rgb": ("rgb8", "bgr8", "8UC3", "rgba8", "bgra8", "mono8", "8UC1"),
}
COMPRESSED_DEPTH_HEADER = struct.Struct("<iff")  # format enum, depthQuantA, depthQuantB
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_bag(path: str | Path) -> bool:
    """A ROS 1 / ROS 2 recording (by suffix, or a ROS 2 bag folder with metadata.yaml)."""
    p = Path(path)
    if p.suffix.lower() in BAG_SUFFIXES:
        return True
    return p.is_dir() and (p / "metadata.yaml").is_file()


# ---------------------------------------------------------------------------------------------
# What to read


@dataclass(frozen=True)
class Sampling:
    """Which frames of a topic to keep: every ``every``-th, and none closer than ``stride``
    seconds (by header stamp) to the last one kept. The default keeps all."""

    every: int = 1
    stride: float = 0.0

    def __post_init__(self) -> None:
        if int(self.every) != self.every or self.every < 1:
            raise SocketEdgeError(f"every must be a positive integer, got {self.every}",
                                  settings=("every",))  # fmt: skip
        if not self.stride >= 0 or self.stride == float("inf"):
            raise SocketEdgeError(f"stride must be >= 0 seconds, got {self.stride}",
                                  settings=("stride",))  # fmt: skip

    def select(self, stamps: list[int]) -> list[int]:
        """Positions (into ``stamps``, in order) of the frames kept."""
        kept: list[int] = []
        last: int | None = None
        gap = int(round(self.stride * 1e9))
        for k, t in enumerate(stamps):
            if k % self.every:
                continue
            if last is not None and gap and t - last < gap:
                continue
            kept.append(k)
            last = t
        return kept

    def describe(self) -> str:
        parts = []
        if self.every > 1:
            parts.append(f"1 frame in {self.every}")
        if self.stride > 0:
            parts.append(f"at least {self.stride:g} s apart")
        return ", ".join(parts) or "all"


@dataclass(frozen=True)
class BagTopic:
    """One image topic of a bag, as a source of unlabelled frames."""

    path: Path
    topic: str
    sampling: Sampling = field(default_factory=Sampling)

    def __str__(self) -> str:
        return f"{self.path} {self.topic}"

    def digest(self) -> str:
        """What a resume state was made from: the bag's content, the topic and the sampling."""
        return _source_digest(self.path, self.topic, self.sampling)

    def unlabelled(self, modality: str, image_size: int, augment: bool = False,
                   pad: int | None = None, frame_size: tuple[int, int] | None = None
                   ) -> UnlabelledBag:  # fmt: skip
        return UnlabelledBag(self, modality, image_size, augment, pad, frame_size)


@dataclass(frozen=True)
class BagPairs:
    """Task-irrelevant pairs from two topics of one bag, matched on header.stamp."""

    path: Path
    rgb_topic: str
    target_topic: str
    tolerance: float | None = None  # seconds; None: half the target topic's median interval
    sampling: Sampling = field(default_factory=Sampling)

    def __post_init__(self) -> None:
        if self.tolerance is not None and not (0 < self.tolerance < float("inf")):
            raise SocketEdgeError(f"tolerance must be a positive number of seconds, got "
                                  f"{self.tolerance}", settings=("tolerance",))  # fmt: skip

    def __str__(self) -> str:
        return f"{self.path} {self.rgb_topic},{self.target_topic}"

    def digest(self) -> str:
        return _source_digest(
            self.path, f"{self.rgb_topic},{self.target_topic},{self.tolerance}", self.sampling
        )

    def paired(self, modality: str, image_size: int, augment: bool = False) -> PairedBag:
        return PairedBag(self, modality, image_size, augment)


def _source_digest(path: Path, what: str, sampling: Sampling) -> str:
    return hashlib.sha256(
        f"{digest(path) if path.is_file() else _folder_digest(path)}|{what}|"
        f"{sampling.every}|{sampling.stride}".encode()
    ).hexdigest()


def _folder_digest(path: Path) -> str:
    return listing_digest(path) or ""


def source(path: str | Path, topic: str | None, sampling: Sampling | None = None,
           flag: str = "topic") -> Path | BagTopic:  # fmt: skip
    """``path`` as a frame source: a :class:`BagTopic` when it is a bag (then ``topic`` is
    needed), else the folder or file itself (then ``topic`` must not be given)."""
    path = Path(path)
    if is_bag(path):
        if topic is None:
            with Bag(path) as bag:
                raise BagError(
                    f"a bag: {flag} names the image topic to read ({bag.describe_topics()})",
                    path,
                    settings=(flag,),
                )
        return BagTopic(path, topic, sampling or Sampling())
    if topic is not None:
        raise SocketEdgeError(
            f"{flag} is for bags (.bag, .db3, .mcap), and this is not one", path, settings=(flag,)
        )
    return path


def check_sampled(sampling: Sampling | None, *sources: object) -> None:
    """every / stride sample bags only: an error when they were given and no source is one."""
    if sampling is None or sampling == Sampling():
        return
    if not any(isinstance(s, (BagTopic, BagPairs)) for s in sources):
        raise SocketEdgeError(
            "every and stride sample the frames of a bag (.bag, .db3, .mcap), and none was given",
            settings=("every", "stride"),
        )


def pairs_source(path: str | Path, topics: str | None, modality: str,
                 tolerance: float | None = None, sampling: Sampling | None = None
                 ) -> Path | BagPairs:  # fmt: skip
    """``path`` as a source of TI pairs: :class:`BagPairs` for a bag and 'RGB_TOPIC,TOPIC',
    else the paired folder."""
    path = Path(path)
    if is_bag(path):
        names = [t.strip() for t in (topics or "").split(",") if t.strip()]
        if len(names) != 2:
            with Bag(path) as bag:
                raise BagError(
                    f"a bag: pair_topics takes RGB_TOPIC,TARGET_TOPIC ({bag.describe_topics()})",
                    path,
                    settings=("pair_topics",),
                )
        return BagPairs(path, names[0], names[1], tolerance, sampling or Sampling())
    for name, value in (("pair_topics", topics), ("tolerance", tolerance)):
        if value is not None:
            raise SocketEdgeError(
                f"{name} is for bags (.bag, .db3, .mcap), and this is not one",
                path,
                settings=(name,),
            )
    return path


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class TopicInfo:
    topic: str
    msgtype: str
    count: int


@dataclass
class Frame:
    """One decoded message: its position among the topic's messages, header stamp (ns) and the
    stored-form array."""

    index: int
    stamp: int
    array: np.ndarray

    @property
    def stem(self) -> str:
        return f"{self.index:06d}"


@dataclass
class Header:
    """A message without its pixels: position, stamp, bag time."""

    index: int
    stamp: int
    time: int


def _rosbags():
    try:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"No module named {exc.name!r}", name="rosbags"
        ) from None  # extras.missing_module_hint names the `ros` extra
    return AnyReader, Stores, get_typestore


def _reader_errors() -> tuple[type[BaseException], ...]:
    import sqlite3

    from rosbags.highlevel import AnyReaderError

    errors: list[type[BaseException]] = [
        AnyReaderError, sqlite3.DatabaseError, struct.error, EOFError, OSError, ValueError,
        KeyError, IndexError, AssertionError, UnicodeDecodeError,
    ]  # fmt: skip
    for mod, name in (
        ("rosbags.rosbag1", "ReaderError"),
        ("rosbags.rosbag2", "ReaderError"),
        ("rosbags.serde", "SerdeError"),
        ("rosbags.typesys", "TypesysError"),
    ):
        with contextlib.suppress(ImportError, AttributeError):
            errors.append(getattr(__import__(mod, fromlist=[name]), name))
    return tuple(errors)


class Bag:
    """An open recording. ``with Bag(path) as bag: bag.frames(topic, 'depth')``.

    Every problem is a :class:`BagError` naming the bag (and the topic)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise BagError("no such bag (file or ROS 2 bag folder)", self.path)
        self._reader: Any = None
        self.count = 0

    def __enter__(self) -> Bag:
        AnyReader, Stores, get_typestore = _rosbags()
        store = Stores.ROS1_NOETIC if self.path.suffix.lower() == ".bag" else Stores.ROS2_HUMBLE
        try:
            with self._errors(None):
                self._reader = AnyReader([self.path], default_typestore=get_typestore(store))
                self._reader.open()
        except BagError:
            self._reader = None
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._reader is not None:
            with contextlib.suppress(Exception):
                self._reader.close()
            self._reader = None

    @contextlib.contextmanager
    def _errors(self, topic: str | None) -> Iterator[None]:
        where = f"topic {topic}: " if topic else ""
        try:
            yield
        except SocketEdgeError:
            raise
        except _reader_errors() as exc:
            why = " ".join(str(exc).split())[:160] or type(exc).__name__
            raise BagError(
                f"{where}not a readable bag, corrupt or truncated ({why})", self.path
            ) from None

    def topics(self) -> list[TopicInfo]:
        """Every topic: name, message type and message count."""
        with self._errors(None):
            return [
                TopicInfo(name, t.msgtype or "?", int(t.msgcount))
                for name, t in sorted(self._reader.topics.items())
            ]

    def image_topics(self) -> list[TopicInfo]:
        return [t for t in self.topics() if t.msgtype in IMAGE_TYPES]

    def describe_topics(self) -> str:
        found = self.image_topics()
        if not found:
            return "it has no image topics"
        listed = ", ".join(f"{t.topic} ({t.msgtype.rsplit('/', 1)[-1]}, {t.count})" for t in found)
        return f"its image topics: {listed}"

    def _connections(self, topic: str) -> list[Any]:
        with self._errors(topic):
            conns = [c for c in self._reader.connections if c.topic == topic]
        if not conns:
            raise BagError(f"no topic {topic} ({self.describe_topics()})", self.path)
        types = {c.msgtype for c in conns}
        if not types <= set(IMAGE_TYPES):
            raise BagError(
                f"topic {topic} holds {', '.join(sorted(types))}, not sensor_msgs/Image or "
                f"CompressedImage ({self.describe_topics()})",
                self.path,
            )
        return conns

    def _messages(self, topic: str) -> Iterator[tuple[int, int, Any, str]]:
        """(index, bag time, message, type) of every message of ``topic``, in bag order."""
        conns = self._connections(topic)
        self.count = 0  # messages of the topic read so far
        with self._errors(topic):
            for k, (conn, t, raw) in enumerate(self._reader.messages(connections=conns)):
                self.count = k + 1
                yield k, int(t), self._reader.deserialize(raw, conn.msgtype), conn.msgtype

    def headers(self, topic: str) -> list[Header]:
        """Position, header stamp and bag time of every message of ``topic``."""
        out = [Header(k, _stamp(msg, t), t) for k, t, msg, _ in self._messages(topic)]
        if not out:
            raise BagError(f"topic {topic} has no messages", self.path)
        return out

    def frames(self, topic: str, modality: str, sampling: Sampling | None = None,
               keep: set[int] | None = None) -> Iterator[Frame]:  # fmt: skip
        """Decoded frames of ``topic`` (stored form), sampled; ``keep``: only these positions."""
        sampling = sampling or Sampling()
        last: int | None = None
        gap = int(round(sampling.stride * 1e9))
        any_message = False
        for k, t, msg, msgtype in self._messages(topic):
            any_message = True
            if keep is not None:
                if k not in keep:
                    continue
            else:
                stamp = _stamp(msg, t)
                if k % sampling.every or (last is not None and gap and stamp - last < gap):
                    continue
                last = stamp
            where = f"topic {topic}, message {k}"
            yield Frame(k, _stamp(msg, t), decode(msg, msgtype, modality, where, self.path))
        if not any_message:
            raise BagError(f"topic {topic} has no messages", self.path)


def _stamp(msg: Any, time: int) -> int:
    """header.stamp in ns; the bag's receive time where a driver left the stamp at zero."""
    s = msg.header.stamp
    ns = int(s.sec) * 1_000_000_000 + int(getattr(s, "nanosec", getattr(s, "nsec", 0)))
    return ns or time


# ---------------------------------------------------------------------------------------------
# Decoding: message -> stored form -> canonical units


def decode(msg: Any, msgtype: str, modality: str, where: str = "message",
           path: str | Path | None = None) -> np.ndarray:  # fmt: skip
    """One Image / CompressedImage message as the array its folder file would store: depth uint16
    mm (H, W); IR uint8/uint16 (H, W); RGB uint8 (H, W, 3)."""
    try:
        if msgtype == COMPRESSED:
            return _decode_compressed(msg, modality)
        return _decode_raw(msg, modality)
    except _Bad as exc:
        raise BagError(f"{where}: {exc}", path) from None


class _Bad(Exception):
    pass


def _decode_raw(msg: Any, modality: str) -> np.ndarray:
    enc = str(msg.encoding)
    if enc not in RAW_ENCODINGS:
        raise _Bad(f"unsupported encoding {enc!r} (socket-edge reads {', '.join(RAW_ENCODINGS)})")
    if enc not in ACCEPTS[modality]:
        raise _Bad(f"encoding {enc!r} is not {modality} (expected {', '.join(ACCEPTS[modality])})")
    kind, channels = RAW_ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, dtype=np.uint8).reshape(-1)
    row = w * channels * int(kind[1])
    if h <= 0 or w <= 0:
        raise _Bad(f"image of {w}x{h} pixels has none")
    _check_pixels(w, h, Path("message"))
    if step < row or data.size != step * h:
        raise _Bad(
            f"{w}x{h} {enc} with step {step} needs {h} rows of {max(step, row)} bytes (step >= "
            f"{row}) = {h * max(step, row)} bytes, the message holds {data.size}"
        )
    order = ">" if int(msg.is_bigendian) else "<"
    rows = data.reshape(h, step)[:, :row]
    arr = np.ascontiguousarray(rows).view(np.dtype(order + kind)).reshape(h, w, channels)
    arr = arr.astype(np.dtype(kind).newbyteorder("="))
    if modality == "depth":
        return _depth_mm(arr[..., 0]) if kind == "f4" else arr[..., 0]
    if modality == "ir":
        return arr[..., 0]
    if channels == 1:
        return np.repeat(arr, 3, axis=2)
    if enc in ("bgr8", "8UC3", "bgra8"):
        return np.ascontiguousarray(arr[..., 2::-1])
    return np.ascontiguousarray(arr[..., :3])


def _depth_mm(metres: np.ndarray) -> np.ndarray:
    """float metres -> uint16 mm as a 16-bit PNG stores it: rounded; NaN, inf, <= 0 and beyond
    65.535 m are missing (0)."""
    m = np.asarray(metres, dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        mm = np.rint(m.astype(np.float64) * 1000.0)
        ok = np.isfinite(mm) & (mm > 0) & (mm <= 65535)
    return np.where(ok, mm, 0).astype(np.uint16)


def _decode_compressed(msg: Any, modality: str) -> np.ndarray:
    fmt = str(msg.format)
    data = np.asarray(msg.data, dtype=np.uint8).tobytes()
    if "compresseddepth" in fmt.lower().replace(" ", ""):
        return _decode_compressed_depth(fmt, data, modality)
    im = _pil(data, fmt)
    mode = im.mode
    if modality == "depth":
        if mode not in ("I;16", "I;16B", "I;16L", "I"):
            raise _Bad(
                f"{fmt!r} holds a {mode} image where 16-bit depth in mm is expected (JPEG and "
                "8-bit PNG lose depth range; record depth raw, as png or as compressedDepth)"
            )
        return np.asarray(im).astype(np.uint16)
    if modality == "ir":
        if mode in ("I;16", "I;16B", "I;16L", "I"):
            return np.asarray(im).astype(np.uint16)
        if mode == "L":
            return np.asarray(im).astype(np.uint8)
        rgb = np.asarray(im.convert("RGB"))
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and
                np.array_equal(rgb[..., 0], rgb[..., 2])):  # fmt: skip
            raise _Bad(f"{fmt!r} holds a colour image where single-channel IR is expected")
        return np.ascontiguousarray(rgb[..., 0])
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        raise _Bad(f"{fmt!r} holds a {mode} image where 8-bit RGB is expected (wrong topic?)")
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _pil(data: bytes, fmt: str):
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise _Bad(f"{fmt!r} message holds no data")
    try:
        im = Image.open(io.BytesIO(data))
        _check_pixels(im.width, im.height, Path("message"))
        im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _Bad(f"{fmt!r} data is not a readable image ({exc})") from None
    return im


def _decode_compressed_depth(fmt: str, data: bytes, modality: str) -> np.ndarray:
    if modality != "depth":
        raise _Bad(f"{fmt!r} is depth, not {modality}")
    kind = fmt.split(";")[0].strip()
    if "rvl" in fmt.lower():
        raise _Bad(f"unsupported encoding {fmt!r} (socket-edge reads compressedDepth png)")
    if kind not in ("16UC1", "32FC1"):
        raise _Bad(f"unsupported encoding {fmt!r} (compressedDepth of 16UC1 or 32FC1)")
    head = COMPRESSED_DEPTH_HEADER.size
    if len(data) < head + len(PNG_SIGNATURE) or data[head : head + 8] != PNG_SIGNATURE:
        raise _Bad(f"{fmt!r} data is not a compressedDepth config header followed by a PNG")
    _, quant_a, quant_b = COMPRESSED_DEPTH_HEADER.unpack(data[:head])
    im = _pil(data[head:], fmt)
    if im.mode not in ("I;16", "I;16B", "I;16L", "I"):
        raise _Bad(f"{fmt!r} holds a {im.mode} PNG, not 16-bit")
    values = np.asarray(im).astype(np.uint16)
    if kind == "16UC1":
        return values
    # The 32FC1 form stores quantised inverse depth: v = A / depth + B; 0 = no reading.
    v = values.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        metres = np.where(
            values > 0, np.float32(quant_a) / (v - np.float32(quant_b)), np.float32(np.nan)
        ).astype(np.float32)
    return _depth_mm(metres)


def canonical(stored: np.ndarray, modality: str) -> np.ndarray:
    """A stored-form array in the readers' canonical units (C, H, W) float32: depth mm, IR
    uint8 / 255 or uint16 / 65535, RGB / 255 (what ``read_image`` gives for its PNG)."""
    if modality == "rgb":
        arr = stored.astype(np.float32) / 255.0
        return np.ascontiguousarray(arr.transpose(2, 0, 1))
    if modality == "ir":
        scale = 255.0 if stored.dtype == np.uint8 else 65535.0
        return (stored.astype(np.float32) / scale)[None]
    return stored.astype(np.float32)[None]


def write_png(path: Path, stored: np.ndarray) -> None:
    """A stored-form array as the PNG the folder layout holds (16-bit for uint16)."""
    from PIL import Image

    Image.fromarray(stored).save(path, format="PNG")


# ---------------------------------------------------------------------------------------------
# Pairs


@dataclass
class Matching:
    """Stamp matching of two topics: (rgb position, target position) pairs and the leftovers."""

    pairs: list[tuple[int, int]]
    unmatched_rgb: int
    unmatched_target: int
    tolerance_ns: int

    def describe(self) -> str:
        return (
            f"{len(self.pairs)} pairs within {self.tolerance_ns / 1e6:g} ms; unmatched: "
            f"{self.unmatched_rgb} RGB, {self.unmatched_target} target frames"
        )


def default_tolerance(stamps: list[int]) -> int:
    """Half the median interval between consecutive stamps (ns): a frame can then only pair with
    a partner closer to it than to the partner's neighbours."""
    s = np.sort(np.asarray(stamps, dtype=np.int64))
    if s.size < 2:
        return 50_000_000  # one frame: 50 ms
    d = np.diff(s)
    d = d[d > 0]
    return int(np.median(d) // 2) if d.size else 50_000_000


def match_stamps(rgb: list[int], target: list[int], tolerance_ns: int) -> Matching:
    """One-to-one pairs of mutually nearest stamps within ``tolerance_ns`` (positions into the
    two lists, in target order)."""
    a = np.asarray(rgb, dtype=np.int64)
    b = np.asarray(target, dtype=np.int64)
    pairs: list[tuple[int, int]] = []
    if a.size and b.size:
        order_a, order_b = np.argsort(a, kind="stable"), np.argsort(b, kind="stable")
        sa, sb = a[order_a], b[order_b]
        near_a = _nearest(sa, sb)  # for each target (sorted), nearest rgb (sorted)
        near_b = _nearest(sb, sa)
        for j, i in enumerate(near_a):
            if near_b[i] == j and abs(int(sa[i]) - int(sb[j])) <= tolerance_ns:
                pairs.append((int(order_a[i]), int(order_b[j])))
    pairs.sort(key=lambda p: p[1])
    return Matching(pairs, int(a.size) - len(pairs), int(b.size) - len(pairs), int(tolerance_ns))


def _nearest(sorted_ref: np.ndarray, query: np.ndarray) -> np.ndarray:
    """For each of ``query``, the position of the nearest value in ``sorted_ref`` (ties: the
    earlier)."""
    k = np.searchsorted(sorted_ref, query)
    lo = np.clip(k - 1, 0, sorted_ref.size - 1)
    hi = np.clip(k, 0, sorted_ref.size - 1)
    return np.where(np.abs(query - sorted_ref[lo]) <= np.abs(sorted_ref[hi] - query), lo, hi)


def read_pairs(
    bag: Bag, pairs: BagPairs, modality: str
) -> tuple[Matching, list[tuple[Frame, Frame]]]:
    """Match the two topics on header stamps, sample the pairs, decode them."""
    rgb_h, tgt_h = bag.headers(pairs.rgb_topic), bag.headers(pairs.target_topic)
    tol = (
        int(round(pairs.tolerance * 1e9))
        if pairs.tolerance is not None
        else default_tolerance([h.stamp for h in tgt_h])
    )
    matching = match_stamps([h.stamp for h in rgb_h], [h.stamp for h in tgt_h], tol)
    if not matching.pairs:
        raise BagError(
            f"topics {pairs.rgb_topic} and {pairs.target_topic}: no frames within tolerance "
            f"({tol / 1e6:g} ms) of each other ({len(rgb_h)} and {len(tgt_h)} frames; are both "
            "cameras stamped on one clock?)",
            bag.path,
            settings=("tolerance",),
        )
    kept = pairs.sampling.select([tgt_h[j].stamp for _, j in matching.pairs])
    chosen = [matching.pairs[k] for k in kept]
    rgb_frames = {
        f.index: f for f in bag.frames(pairs.rgb_topic, "rgb", keep={i for i, _ in chosen})
    }
    tgt_frames = {
        f.index: f for f in bag.frames(pairs.target_topic, modality, keep={j for _, j in chosen})
    }
    return matching, [(rgb_frames[i], tgt_frames[j]) for i, j in chosen]


# ---------------------------------------------------------------------------------------------
# Datasets (the folder datasets' loading, caching and augmentation, over decoded frames)


class _BagDataset(_ImageDataset):
    """Frames decoded once, resized and held in memory (no size limit: a bag is not re-read)."""

    cache_bytes = None

    def _hold(self, key: str, stored: np.ndarray, modality: str) -> None:
        self._pending[key] = canonical(stored, modality)
        try:
            self.load(key, modality)  # type: ignore[arg-type]
        finally:
            self._pending.pop(key, None)

    def read(self, path: Any, modality: str) -> np.ndarray:
        return self._pending[path]


def frame_key(path: Path, topic: str, index: int) -> str:
    """How a bag frame is named in messages and reports: BAG:TOPIC#000012."""
    return f"{path}:{topic}#{index:06d}"


class UnlabelledBag(_BagDataset):
    """The sampled frames of one bag topic; items are (image, index), as UnlabelledFolder's."""

    def __init__(self, src: BagTopic, modality: str, image_size: int, augment: bool = False,
                 pad: int | None = None, frame_size: tuple[int, int] | None = None):  # fmt: skip
        super().__init__(modality, image_size, augment, pad, frame_size)
        self._pending: dict[str, np.ndarray] = {}
        self.root = src.path
        self.source = src
        self.files: list[str] = []
        self.stamps: list[int] = []
        self.total = 0
        self.sizes: set[tuple[int, int]] = set()
        with Bag(src.path) as bag:
            for frame in bag.frames(src.topic, modality, src.sampling):
                key = frame_key(src.path, src.topic, frame.index)
                self.files.append(key)
                self.stamps.append(frame.stamp)
                self.sizes.add(tuple(frame.array.shape[:2]))
                self._hold(key, frame.array, modality)
            self.total = bag.count
        info(
            f"{src.path}: {len(self.files)} of {self.total} frames of {src.topic} "
            f"(sampling: {src.sampling.describe()})"
        )

    def __len__(self) -> int:
        return len(self.files)

    def sensor_frame_size(self) -> list[int] | None:
        """(H, W) of the topic's frames as decoded, if they all share it (else None)."""
        return list(next(iter(self.sizes))) if len(self.sizes) == 1 else None

    def __getitem__(self, index: int):
        return self.augmented(self.load(self.files[index]), index), index  # type: ignore[arg-type]


class LabelledBag(UnlabelledBag):
    """A recording of one class (e.g. the robot in front of one object): items (image, label),
    as LabelledFolder's, every frame labelled ``label``."""

    def __init__(self, src: BagTopic, label: str | None, classes: list[str], modality: str,
                 image_size: int, frame_size: tuple[int, int] | None = None):  # fmt: skip
        if label is None or label not in classes:
            got = "no label" if label is None else f"label {label!r}"
            raise SocketEdgeError(
                f"{got}: a bag's frames carry no labels; label names the class the recording "
                f"shows, one of {', '.join(classes)}",
                src.path,
                settings=("label",),
            )
        super().__init__(src, modality, image_size, frame_size=frame_size)
        self.classes = list(classes)
        self.label = self.classes.index(label)

    def __getitem__(self, index: int):
        return self.load(self.files[index]), self.label  # type: ignore[arg-type]


class PairedBag(_BagDataset):
    """Task-irrelevant pairs of two bag topics matched on stamps; items as PairedFolder's."""

    def __init__(self, src: BagPairs, modality: str, image_size: int, augment: bool = False,
                 pad: int | None = None):  # fmt: skip
        super().__init__(modality, image_size, augment, pad)
        self._pending: dict[str, np.ndarray] = {}
        self.root = src.path
        self.source = src
        self.pairs: list[Pair] = []
        with Bag(src.path) as bag:
            self.matching, frames = read_pairs(bag, src, modality)
        for rgb, tgt in frames:
            rk = frame_key(src.path, src.rgb_topic, rgb.index)
            tk = frame_key(src.path, src.target_topic, tgt.index)
            self._hold(rk, rgb.array, "rgb")
            self._hold(tk, tgt.array, modality)
            self.pairs.append(Pair(tgt.stem, rk, tk))  # type: ignore[arg-type]
        info(
            f"{src.path}: {self.matching.describe()}; using {len(self.pairs)} pairs "
            f"(sampling: {src.sampling.describe()})"
        )

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int):
        from .transforms import apply_crop_flip, draw_crop_flip

        pair = self.pairs[index]
        rgb, tgt = self.load(pair.rgb, "rgb"), self.load(pair.target)
        if self.augment:
            p = draw_crop_flip(self.rng(index), self.pad)
            rgb = apply_crop_flip(rgb, p, self.pad, "rgb")
            tgt = apply_crop_flip(tgt, p, self.pad, self.modality)
        return rgb, tgt, index


# ---------------------------------------------------------------------------------------------
# Extraction


@dataclass
class Extracted:
    """What ``extract`` wrote: the folder, the frames per sub-folder, the pair matching."""

    out: Path
    frames: int
    total: int
    matching: Matching | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"out": str(self.out), "frames": self.frames, "messages": self.total}
        if self.matching is not None:
            d |= {
                "pairs": len(self.matching.pairs),
                "unmatched_rgb": self.matching.unmatched_rgb,
                "unmatched_target": self.matching.unmatched_target,
                "tolerance_ms": self.matching.tolerance_ns / 1e6,
            }
        return d


def extract(src: BagTopic | BagPairs, out: str | Path, modality: str) -> Extracted:
    """Write the frames of a bag topic (``OUT/<stem>.png``) or its TI pairs
    (``OUT/rgb/<stem>.png`` + ``OUT/<modality>/<stem>.png``) in the folder layout. All or
    nothing: frames go to a staging folder beside OUT, renamed onto OUT when every one was read.
    OUT must not exist, or be an empty folder."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SocketEdgeError("exists and is not an empty folder; not writing into it", out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        with Bag(src.path) as bag:
            if isinstance(src, BagPairs):
                (stage / "rgb").mkdir()
                (stage / modality).mkdir()
                matching, frames = read_pairs(bag, src, modality)
                for rgb, tgt in frames:
                    write_png(stage / "rgb" / f"{tgt.stem}.png", rgb.array)
                    write_png(stage / modality / f"{tgt.stem}.png", tgt.array)
                result = Extracted(out, len(frames), len(matching.pairs), matching)
            else:
                n = 0
                for frame in bag.frames(src.topic, modality, src.sampling):
                    write_png(stage / f"{frame.stem}.png", frame.array)
                    n += 1
                result = Extracted(out, n, bag.count)
        if out.exists():
            out.rmdir()
        stage.rename(out)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return result


def read_frames(src: BagTopic, modality: str) -> Iterator[tuple[str, np.ndarray]]:
    """(name, canonical (C, H, W) float32) of the sampled frames of a bag topic, in bag order:
    what classify and monitor feed a model."""
    with Bag(src.path) as bag:
        for frame in bag.frames(src.topic, modality, src.sampling):
            yield frame_key(src.path, src.topic, frame.index), canonical(frame.array, modality)
