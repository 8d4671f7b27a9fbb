"""Image I/O of the converters: reading source images, resizing, writing PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.transforms import nearest_indices
from ..errors import DataError
from ..files import atomic_path

# --- reading source images ---------------------------------------------------------------------


def open_image(path: Path, layout: str):
    """Open an image with PIL, or raise a DataError that names the file."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise DataError(f"missing file (expected by the {layout} layout)", path)
    try:
        im = Image.open(path)
        im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"not a readable image, corrupt or truncated ({exc})", path) from None
    return im


def read_rgb8(path: Path, layout: str) -> np.ndarray:
    im = open_image(path, layout)
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        raise DataError(
            f"{im.mode} image where the {layout} layout has an 8-bit colour image", path
        )
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def read_uint16(path: Path, layout: str, what: str) -> np.ndarray:
    """A 16-bit single-channel PNG as uint16 (PIL opens these as 'I;16' or 'I')."""
    im = open_image(path, layout)
    if im.mode not in ("I;16", "I;16B", "I;16L", "I"):
        raise DataError(f"{im.mode} image where the {layout} layout has a 16-bit {what} PNG", path)
    arr = np.asarray(im)
    if arr.ndim != 2:
        raise DataError(f"{what} image has shape {arr.shape}, expected one channel", path)
    if arr.dtype != np.uint16:
        if arr.min() < 0 or arr.max() > 65535:
            raise DataError(f"{what} values outside 0..65535", path)
        arr = arr.astype(np.uint16)
    return arr


# --- resizing ----------------------------------------------------------------------------------


def _target_size(shape: tuple[int, ...], short_side: int | None) -> tuple[int, int]:
    h, w = shape[0], shape[1]
    if not short_side or min(h, w) <= short_side:
        return h, w
    scale = short_side / min(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_rgb(arr: np.ndarray, short_side: int | None) -> np.ndarray:
    h, w = _target_size(arr.shape, short_side)
    if (h, w) == arr.shape[:2]:
        return arr
    from PIL import Image

    return np.asarray(Image.fromarray(arr).resize((w, h), Image.Resampling.BOX))


def resize_nearest(arr: np.ndarray, short_side: int | None) -> np.ndarray:
    """Nearest-neighbour: depth must not blend valid readings with 0 (= missing). The indices
    are inference's (``data.transforms.nearest_indices``: torch's nearest-exact)."""
    h, w = _target_size(arr.shape, short_side)
    if (h, w) == arr.shape[:2]:
        return arr
    rows, cols = nearest_indices(arr.shape[0], h), nearest_indices(arr.shape[1], w)
    return arr[rows[:, None], cols[None, :]]


def resize_gray(arr: np.ndarray, short_side: int | None) -> np.ndarray:
    """Area-averaged resize of an 8- or 16-bit single-channel image, keeping its dtype."""
    h, w = _target_size(arr.shape, short_side)
    if (h, w) == arr.shape[:2]:
        return arr
    from PIL import Image

    out = Image.fromarray(arr.astype(np.float32)).resize((w, h), Image.Resampling.BOX)
    info = np.iinfo(arr.dtype)
    return np.clip(np.rint(np.asarray(out)), info.min, info.max).astype(arr.dtype)


# --- writing -----------------------------------------------------------------------------------


def save_png(path: Path, arr: np.ndarray) -> None:
    """Write an 8-bit RGB, 8-bit grey or 16-bit grey PNG atomically."""
    from PIL import Image

    if arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"cannot write dtype {arr.dtype} as PNG")
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(arr)).save(tmp, format="PNG")


def prepare_target(arr: np.ndarray, modality: str, short_side: int | None) -> np.ndarray:
    if modality == "depth":
        return resize_nearest(arr, short_side)
    return resize_gray(arr, short_side)
