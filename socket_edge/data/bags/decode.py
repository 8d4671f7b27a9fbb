"""Decoding a bag's image messages: message -> stored form -> canonical units.

Each message is first decoded to its *stored form*, the array ``data extract`` writes as a PNG
(depth: uint16 millimetres, 0 = missing; IR: uint8 or uint16 counts; RGB: uint8 H x W x 3), and
:func:`canonical` then applies the readers' own conversion (``readers.py``). So a bag and the
folder extracted from it give the same arrays, bit for bit.

Encodings (REP 118 and the camera drivers): ``16UC1`` / ``mono16`` depth in mm, ``32FC1`` depth
in metres (NaN, inf and <= 0 = missing; rounded to whole mm, as a 16-bit PNG stores it),
``mono16`` / ``16UC1`` / ``mono8`` / ``8UC1`` IR, ``rgb8`` / ``bgr8`` / ``rgba8`` / ``bgra8`` (and
``mono8`` replicated) RGB; ``step`` (row padding) and ``is_bigendian`` are honoured.
``sensor_msgs/CompressedImage``: PNG / JPEG, and image_transport's ``compressedDepth`` (a 12-byte
config header: int32 format, float32 depthQuantA, depthQuantB; then a 16-bit PNG of the depth in
mm (16UC1), or of the quantised inverse depth (32FC1): depth = A / (v - B), v = 0 missing).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import BagError
from ..readers import _check_pixels

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
