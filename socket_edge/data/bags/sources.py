"""What to read from a bag, and the datasets over it: one image topic (:class:`BagTopic`, frames
as the folder datasets' unlabelled or labelled items) or two topics' stamp-matched TI pairs
(:class:`BagPairs`, items as PairedFolder's); :func:`source` / :func:`pairs_source` turn a path
given on the command line into one of them (or the folder itself).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...console import info
from ...errors import BagError, SocketEdgeError
from ...files import digest, listing_digest
from ..datasets import Pair, _ImageDataset, _PairedImages
from .decode import canonical
from .pairs import Matching, default_tolerance, match_stamps
from .reader import Bag, Frame, Sampling, is_bag

# ---------------------------------------------------------------------------------------------
# What to read


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
# Pairs


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


class PairedBag(_BagDataset, _PairedImages):
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
