"""Atomic writes and content hashes for artifacts (the sha256 of a file, cached by path, size,
mtime and inode in memory and in ``$SOCKET_EDGE_CACHE_DIR/digests.json``)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes files 0600; give the artifact the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Digests, cached by (path, size, mtime, inode)

_DIGESTS: dict[tuple, str] = {}
_LOCK = threading.Lock()
_DISK_LIMIT = 512  # entries kept in the on-disk cache


def cache_dir() -> Path | None:
    """Where the digest cache lives ($SOCKET_EDGE_CACHE_DIR, else the XDG cache); None: off."""
    if os.environ.get("SOCKET_EDGE_DIGEST_CACHE", "1") == "0":
        return None
    root = os.environ.get("SOCKET_EDGE_CACHE_DIR")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "socket-edge"


def _key(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


def digest(path: str | Path) -> str:
    """sha256 of ``path``; recomputed only when its size, mtime or inode changed."""
    path = Path(path)
    key = _key(path)
    with _LOCK:
        if key in _DIGESTS:
            return _DIGESTS[key]
    disk = _read_disk()
    entry = disk.get(key[0])
    if isinstance(entry, list) and len(entry) == 4 and tuple(entry[:3]) == key[1:]:
        value = str(entry[3])
    else:
        value = sha256_file(path)
        if _key(path) == key:  # unchanged while hashing
            disk[key[0]] = [*key[1:], value]
            _write_disk(disk)
    with _LOCK:
        _DIGESTS[key] = value
    return value


def clear_digest_cache(disk: bool = False) -> None:
    """Forget cached digests (in this process; and the on-disk file with ``disk``)."""
    with _LOCK:
        _DIGESTS.clear()
    folder = cache_dir()
    if disk and folder is not None:
        (folder / "digests.json").unlink(missing_ok=True)


def _read_disk() -> dict[str, Any]:
    folder = cache_dir()
    if folder is None:
        return {}
    try:
        data = json.loads((folder / "digests.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_disk(data: dict[str, Any]) -> None:
    folder = cache_dir()
    if folder is None:
        return
    if len(data) > _DISK_LIMIT:
        data = dict(list(data.items())[-_DISK_LIMIT:])
    with contextlib.suppress(OSError):  # a read-only home: the cache is an optimisation only
        write_text(folder / "digests.json", json.dumps(data))


def walk_files(root: Path) -> list[Path]:
    """Every file under ``root``, sorted, hidden entries skipped; folders that are symlinks are
    followed (users link class folders together), each real folder once (no cycles)."""
    seen: set[str] = set()
    files = []
    for top, dirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        files += [Path(top) / n for n in names if not n.startswith(".")]
    return sorted(p for p in files if p.is_file())


def listing_digest(folder: str | Path | None) -> str | None:
    """A digest of a folder's listing (relative paths, sizes, mtimes; hidden entries skipped)."""
    if folder is None:
        return None
    root = Path(folder)
    if not root.is_dir():
        return None
    h = hashlib.sha256()
    for p in walk_files(root):
        rel = p.relative_to(root)
        st = p.stat()
        h.update(f"{rel.as_posix()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
