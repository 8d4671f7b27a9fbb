"""Official train/test lists: text files, MATLAB .mat (scipy-free v5 reader or HDF5 via h5py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .common import SPLITS

# --- split files (official train/test lists) ---------------------------------------------------


def read_split_file(path: str | Path, mat_keys: tuple[str, str], what: str) -> dict[str, str]:
    """Official split -> {id: 'train'|'test'}.

    ``path`` is a MATLAB file with the two variables ``mat_keys`` (train, test), read with h5py
    (v7.3) or scipy (older versions), or a text file of lines ``train ID`` / ``test ID``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such split file (expected {what})", path)
    if path.suffix.lower() == ".mat":
        lists = read_mat_lists(path, mat_keys, what)
        out = {str(i): "train" for i in lists[0]}
        out.update({str(i): "test" for i in lists[1]})
        return out
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        kind, _, ident = line.partition(" ")
        if kind not in SPLITS or not ident.strip():
            raise DataError(f"line {n}: expected 'train ID' or 'test ID', got {line!r}", path)
        out[ident.strip()] = kind
    if not out:
        raise DataError("split file lists no frames", path)
    return out


def require_h5py():
    """h5py (an optional dependency: the 'convert' extra), or a DataError saying how to get it."""
    try:
        import h5py
    except ImportError:
        raise DataError(
            "reading MATLAB v7.3 (.mat) files needs h5py: pip install 'socket-edge[convert]' "
            "(or pip install h5py)"
        ) from None
    return h5py


def read_mat_lists(path: Path, keys: tuple[str, ...], what: str) -> list[list]:
    """The named variables of a MATLAB file as flat lists of str / int."""
    h5py = require_h5py()
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            missing = [k for k in keys if k not in f]
            if missing:
                raise DataError(
                    f"not {what}: no variable {', '.join(missing)} "
                    f"(has {', '.join(sorted(f.keys()))})",
                    path,
                )
            return [_h5_values(f, f[k]) for k in keys]
    try:
        import scipy.io
    except ImportError:
        raise DataError(
            "this MATLAB file predates v7.3 and needs scipy to read (pip install scipy); "
            "or give the split as text lines 'train ID' / 'test ID'",
            path,
        ) from None
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several types for bad files
        raise DataError(f"not a readable MATLAB file ({exc})", path) from None
    missing = [k for k in keys if k not in mat]
    if missing:
        raise DataError(f"not {what}: no variable {', '.join(missing)}", path)
    return [_flatten(mat[k]) for k in keys]


def _flatten(obj: Any) -> list:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "US":
            return [str(x) for x in obj.ravel()]
        if obj.dtype.kind in "iuf":
            return [int(x) for x in obj.ravel()]
        return [v for x in obj.ravel() for v in _flatten(x)]
    return [obj]


def _h5_values(f, ds) -> list:
    """A MATLAB v7.3 numeric array or cell array of strings as a flat list."""
    h5py = require_h5py()
    data = ds[()]
    if ds.dtype == h5py.ref_dtype or data.dtype == object:
        return [h5_string(f[ref]) for ref in np.asarray(data).ravel()]
    if ds.attrs.get("MATLAB_class", b"") in (b"char", "char"):
        return [h5_string(ds)]
    return [int(x) for x in np.asarray(data).ravel()]


def h5_string(ds) -> str:
    """A MATLAB char array stored in HDF5 (uint16 codes) as a str."""
    codes = np.asarray(ds[()]).ravel()
    return "".join(chr(int(c)) for c in codes if int(c) != 0)
