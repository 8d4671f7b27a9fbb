"""Robot recordings as a data source: ROS 1 ``.bag``, ROS 2 ``.db3`` / ``.mcap`` (or a ROS 2 bag
folder with its ``metadata.yaml``), read with ``rosbags`` (the ``ros`` extra; no ROS install, no
torch).

What a bag topic yields lands in exactly the units the folder path gives for the same image
(``readers.py``): each message is first decoded to its *stored form*, the array ``data extract``
writes as a PNG (depth: uint16 millimetres, 0 = missing; IR: uint8 or uint16 counts; RGB: uint8
H x W x 3), and :func:`canonical` then applies the readers' own conversion. So a bag and the
folder extracted from it give the same arrays, bit for bit.

One module a job, each importing only those before it:

- ``decode.py``: the image encodings, message -> stored form (:func:`decode`) -> canonical units
  (:func:`canonical`), :func:`write_png`;
- ``reader.py``: :func:`is_bag`, :class:`Sampling`, and :class:`Bag`, an open recording: its
  topics, headers and decoded frames (rosbags imported on first use);
- ``pairs.py``: matching two topics on header stamps (:func:`match_stamps`);
- ``sources.py``: what to read (:class:`BagTopic`, :class:`BagPairs`, :func:`source`,
  :func:`pairs_source`, :func:`check_sampled`), the pairs read from a bag (:func:`read_pairs`),
  and the datasets over them (:class:`UnlabelledBag`, :class:`LabelledBag`, :class:`PairedBag`);
- ``extract.py``: :func:`extract` to the folder layout, :func:`read_frames` for classify and
  monitor.
"""

from __future__ import annotations

from .decode import (
    ACCEPTS,
    COMPRESSED,
    COMPRESSED_DEPTH_HEADER,
    IMAGE,
    IMAGE_TYPES,
    PNG_SIGNATURE,
    RAW_ENCODINGS,
    _depth_mm,
    canonical,
    decode,
    write_png,
)
from .extract import Extracted, extract, read_frames
from .pairs import Matching, default_tolerance, match_stamps
from .reader import BAG_SUFFIXES, Bag, Frame, Header, Sampling, TopicInfo, is_bag
from .sources import (
    BagPairs,
    BagTopic,
    LabelledBag,
    PairedBag,
    UnlabelledBag,
    check_sampled,
    frame_key,
    pairs_source,
    read_pairs,
    source,
)

__all__ = [
    "ACCEPTS",
    "BAG_SUFFIXES",
    "COMPRESSED",
    "COMPRESSED_DEPTH_HEADER",
    "IMAGE",
    "IMAGE_TYPES",
    "PNG_SIGNATURE",
    "RAW_ENCODINGS",
    "Bag",
    "BagPairs",
    "BagTopic",
    "Extracted",
    "Frame",
    "Header",
    "LabelledBag",
    "Matching",
    "PairedBag",
    "Sampling",
    "TopicInfo",
    "UnlabelledBag",
    "_depth_mm",
    "canonical",
    "check_sampled",
    "decode",
    "default_tolerance",
    "extract",
    "frame_key",
    "is_bag",
    "match_stamps",
    "pairs_source",
    "read_frames",
    "read_pairs",
    "source",
    "write_png",
]
