"""Opening a recording: ROS 1 ``.bag``, ROS 2 ``.db3`` / ``.mcap`` (or a ROS 2 bag folder with
its ``metadata.yaml``), read with ``rosbags`` (the ``ros`` extra, imported on first use), its
topics listed, its frames read in bag order and sampled (:class:`Sampling`).

Frames are named by their position among the topic's messages (``000012``), so that the sorted
order of an extracted folder is the bag's order. Sampling keeps every N-th frame and/or frames at
least ``stride`` seconds apart (by header stamp).
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import BagError, SocketEdgeError
from .decode import IMAGE_TYPES, decode

BAG_SUFFIXES = (".bag", ".db3", ".mcap")


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
