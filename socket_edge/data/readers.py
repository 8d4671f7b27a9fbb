"""Readers for RGB, depth and IR/NIR images, each returning a float32 array shaped (C, H, W).

Canonical units, shared by every stage (training, calibration, export, bench):

- rgb:   3 channels, 8-bit files scaled to [0, 1].
- depth: 1 channel, millimetres, 0 = no reading. 16-bit PNG/TIFF in mm, or .npy: float in metres
         (converted to mm) or unsigned integers in mm.
- ir:    1 channel. 8-bit files scaled by 1/255, 16-bit by 1/65535 (so [0, 1]); .npy float as is
         (any unit: the default encoder normalises each image), .npy uint8/uint16 scaled as files.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from ..errors import DataError

# Far above any depth/IR/RGB sensor (a 4K frame is 8.3 MP), far below what bombs memory.
DEFAULT_MAX_MEGAPIXELS = 50.0
MAX_PIXELS_ENV = "SOCKET_EDGE_MAX_MEGAPIXELS"
_max_pixels: int | None = None  # set_max_pixels() overrides the environment
_PIL_LOCK = threading.Lock()

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy")

_EIGHT_BIT_MODES = {"L", "P", "RGB", "RGBA", "LA", "CMYK", "YCbCr", "1"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}


def is_image_file(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    )


def read_image(path: str | Path, modality: str) -> np.ndarray:
    """Read one image of ``modality`` ('rgb', 'depth' or 'ir') into canonical units."""
    path = Path(path)
    if modality == "rgb":
        return read_rgb(path)
    if modality == "depth":
        return read_depth(path)
    if modality == "ir":
        return read_ir(path)
    raise DataError(f"unknown modality {modality!r} (expected rgb, depth or ir)", path)


def read_rgb(path: str | Path) -> np.ndarray:
    path = Path(path)
    if path.suffix.lower() == ".npy":
        arr = _load_npy(path)
        if arr.ndim == 3 and arr.shape[-1] == 3:
            arr = arr.transpose(2, 0, 1)
        if arr.ndim != 3 or arr.shape[0] != 3:
            raise DataError(f"RGB .npy must be HxWx3 or 3xHxW, got shape {arr.shape}", path)
        if arr.dtype == np.uint8:
            return arr.astype(np.float32) / 255.0
        return _finite(arr.astype(np.float32), path)
    im = _open(path)
    if im.mode in _SIXTEEN_BIT_MODES or im.mode in {"I", "F"}:
        raise DataError(
            f"{_describe_mode(im.mode)} image where an 8-bit RGB image is expected (wrong modality?)",
            path,
        )
    arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def read_depth(path: str | Path) -> np.ndarray:
    path = Path(path)
    if path.suffix.lower() == ".npy":
        arr = _single_channel(_load_npy(path), path, "depth")
        if np.issubdtype(arr.dtype, np.floating):
            with np.errstate(over="ignore", invalid="ignore"):
                mm = arr.astype(np.float32) * 1000.0  # metres -> mm
            mm = _finite(mm, path)
        elif arr.dtype in (np.uint16, np.uint32, np.int32, np.int64):
            mm = arr.astype(np.float32)
        else:
            raise DataError(
                f"depth .npy of dtype {arr.dtype}: expected float metres or uint16 millimetres",
                path,
            )
        if (mm < 0).any():
            raise DataError("negative depth values (0 marks a missing reading)", path)
        return mm[None]
    im = _open(path)
    if im.mode not in _SIXTEEN_BIT_MODES and im.mode != "I":
        raise DataError(
            f"{_describe_mode(im.mode)} image where 16-bit depth in millimetres is expected "
            "(8-bit depth loses range; export 16-bit PNG, 0 = no reading)",
            path,
        )
    arr = np.asarray(im).astype(np.float32)
    if arr.ndim != 2:
        raise DataError(f"depth image has shape {arr.shape}, expected one channel", path)
    if (arr < 0).any():
        raise DataError("negative depth values (0 marks a missing reading)", path)
    return arr[None]


def read_ir(path: str | Path) -> np.ndarray:
    path = Path(path)
    if path.suffix.lower() == ".npy":
        arr = _single_channel(_load_npy(path), path, "IR")
        if arr.dtype == np.uint8:
            return (arr.astype(np.float32) / 255.0)[None]
        if arr.dtype == np.uint16:
            return (arr.astype(np.float32) / 65535.0)[None]
        if not np.issubdtype(arr.dtype, np.floating):
            raise DataError(f"IR .npy of dtype {arr.dtype}: expected float, uint8 or uint16", path)
        return _finite(arr.astype(np.float32), path)[None]
    im = _open(path)
    if im.mode in _SIXTEEN_BIT_MODES:
        return (np.asarray(im).astype(np.float32) / 65535.0)[None]
    if im.mode == "L":
        return (np.asarray(im).astype(np.float32) / 255.0)[None]
    if im.mode in {"RGB", "RGBA", "P"}:
        rgb = np.asarray(im.convert("RGB"))
        if not (
            np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])
        ):
            raise DataError(
                "colour image where single-channel IR is expected (wrong modality?)", path
            )
        return (rgb[..., 0].astype(np.float32) / 255.0)[None]
    raise DataError(
        f"{_describe_mode(im.mode)} image: IR must be 8- or 16-bit single channel", path
    )


def max_pixels() -> int:
    """The largest image (in pixels) any reader decodes: set_max_pixels(), else
    $SOCKET_EDGE_MAX_MEGAPIXELS, else 50 MP."""
    if _max_pixels is not None:
        return _max_pixels
    text = os.environ.get(MAX_PIXELS_ENV)
    if text:
        try:
            mp = float(text)
        except ValueError:
            raise DataError(
                f"${MAX_PIXELS_ENV} must be a number of megapixels, got {text!r}"
            ) from None
        if not mp > 0 or mp == float("inf"):
            raise DataError(f"${MAX_PIXELS_ENV} must be a positive number, got {text!r}")
        return int(mp * 1e6)
    return int(DEFAULT_MAX_MEGAPIXELS * 1e6)


def set_max_pixels(pixels: int | None) -> None:
    """Change the pixel limit of the readers (None: back to the environment / default)."""
    global _max_pixels
    if pixels is not None and pixels <= 0:
        raise ValueError("the pixel limit must be positive")
    _max_pixels = None if pixels is None else int(pixels)


def _check_pixels(width: int, height: int, path: Path) -> None:
    limit = max_pixels()
    if width * height > limit:
        raise DataError(
            f"{width}x{height} image ({width * height / 1e6:.0f} MP) is over the "
            f"{limit / 1e6:g} MP limit; not decoding it (raise ${MAX_PIXELS_ENV} if it is real)",
            path,
        )


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    if not path.exists():
        raise DataError("no such file", path)
    if path.stat().st_size == 0:
        raise DataError("empty file (0 bytes)", path)
    limit = max_pixels()
    try:
        with _PIL_LOCK:  # our check (naming the size) before PIL's, which knows no file name
            Image.MAX_IMAGE_PIXELS = None
            try:
                im = Image.open(path)  # reads the header only
            finally:
                Image.MAX_IMAGE_PIXELS = limit  # PIL's own check, for anything read later
        _check_pixels(im.width, im.height, path)
        im.load()
    except Image.DecompressionBombError:
        raise DataError(
            f"image is over the {limit / 1e6:g} MP limit (a decompression bomb?); not decoding it "
            f"(raise ${MAX_PIXELS_ENV} if it is real)",
            path,
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"not a readable image, corrupt or truncated ({exc})", path) from None
    if im.width == 0 or im.height == 0:
        raise DataError("image has no pixels", path)
    return im


def _load_npy(path: Path) -> np.ndarray:
    if not path.exists():
        raise DataError("no such file", path)
    if path.stat().st_size == 0:
        raise DataError("empty file (0 bytes)", path)
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode="r")  # the header, mapped lazily
        if not isinstance(arr, np.ndarray):  # np.load also opens .npz archives
            raise DataError("not a .npy array (an .npz archive or another format)", path)
        if arr.dtype.fields is not None or arr.dtype.kind not in "biuf":
            raise DataError(f"array of dtype {arr.dtype}: expected numbers", path)
        if arr.ndim >= 2:
            hw = arr.shape
            if arr.ndim == 3:  # channels first or last
                hw = hw[1:] if hw[0] in (1, 3) else hw[:-1]
            _check_pixels(int(hw[-1]), int(np.prod(hw[:-1])), path)
        arr = np.array(arr)
    except DataError:
        raise
    except Exception as exc:  # a corrupt header raises ValueError, SyntaxError, TokenError...
        why = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise DataError(f"not a readable .npy array ({why})", path) from None
    if arr.size == 0:
        raise DataError("array has no pixels", path)
    return arr


def _single_channel(arr: np.ndarray, path: Path, what: str) -> np.ndarray:
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr.reshape(arr.shape[1:] if arr.shape[0] == 1 else arr.shape[:-1])
    if arr.ndim != 2:
        raise DataError(f"{what} .npy must be HxW (one channel), got shape {arr.shape}", path)
    return arr


def _finite(arr: np.ndarray, path: Path) -> np.ndarray:
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise DataError(f"{bad} NaN/inf values (use 0 for a missing depth reading)", path)
    return arr


def _describe_mode(mode: str) -> str:
    if mode in _SIXTEEN_BIT_MODES:
        return "16-bit"
    if mode in _EIGHT_BIT_MODES:
        return "8-bit" if mode in {"L", "P", "1"} else f"8-bit {mode}"
    if mode == "I":
        return "32-bit integer"
    if mode == "F":
        return "32-bit float"
    return f"mode {mode}"
