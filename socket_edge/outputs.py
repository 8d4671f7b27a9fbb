"""Outputs that are safe against kills and races: one writer per output, all-or-nothing sets,
and cleanup of what killed runs left (the checks that a resume state was made from the same inputs
and settings are ``training.check_resume``).

**One writer.** ``adapt``, ``train-source`` and ``export`` hold an exclusive advisory lock
(``filelock``: flock on POSIX) on ``.<out>.lock`` beside their ``--out`` for the whole run (the
file is deleted on release); the holder's pid, host and command line sit in
``.<out>.lock.info``. A second run fails at once naming the first. The kernel drops the lock
when its holder dies, so a killed run never blocks (the next run removes its two files).

**All-or-nothing export sets.** An export writes every file of its set into a staging folder
``.socket-edge-export.<out>.<random>/`` beside ``--out``. It commits by first writing a manifest
``COMMIT.json`` (atomically: temp file + rename) that lists the moves, then renaming the files
into place, artifacts before sidecars, then deleting the folder. So a kill

- before the manifest exists leaves the old set untouched (the staging folder is deleted by the
  next run: a rollback);
- after it leaves a committed journal: the next export of the same output (or an engine build
  from a model named in it) first finishes the renames (a roll-forward) and so sees the new
  complete set. Readers never write: one that verifies an artifact named in a committed journal
  waits while the export that wrote it is still moving files (its lock's process is alive),
  and otherwise refuses the artifact, naming the export to rerun (``pending_commit``).

Why a journal and not only "sidecar last": several files (FP32, two INT8 models, a cache, their
sidecars) cannot be swapped by one rename, and a plain rename order leaves a mix after a kill.
The readers' hash and lineage checks (socket_edge.artifact) remain the second line: a set mixed
by any other means (a copy, an edit) is refused, never accepted.

**Cleanup.** The next run of the same output removes its staging folders and the temp files of
its atomic writes (``.<name>.<random>.tmp`` for the names of its own set), and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .console import info, main_process, warn
from .errors import SocketEdgeError
from .files import write_text

STAGING_PREFIX = ".socket-edge-export."
MANIFEST = "COMMIT.json"
WAIT_FOR_COMMIT_S = 30.0


# ---------------------------------------------------------------------------------------------
# One writer per output


def lock_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(f".{out.name}.lock")


def lock_info_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(f".{out.name}.lock.info")


def holder(out: str | Path) -> str:
    """Who holds the lock on ``out``, in words (from the lock's info file)."""
    try:
        doc = json.loads(lock_info_path(out).read_text(encoding="utf-8"))
        return (
            f"pid {doc['pid']} on {doc['host']} since {doc['started']}: {str(doc['command'])[:160]}"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its details yet"


@contextlib.contextmanager
def exclusive(out: str | Path, what: str = "run") -> Iterator[None]:
    """Hold the exclusive writer lock of ``out`` for the block; fail at once if it is taken.

    Under torchrun only rank 0 writes outputs, so only rank 0 locks.
    """
    if not main_process():
        yield
        return
    from filelock import Timeout

    out = Path(out)
    created = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        lock = _acquire(lock_path(out), 0)
    except Timeout:
        raise SocketEdgeError(
            f"another {what} is writing it ({holder(out)}); wait for it to finish or stop it",
            out,
        ) from None
    try:
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(sys.argv) or what,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_text(lock_info_path(out), json.dumps(record) + "\n")
        yield
    finally:
        with contextlib.suppress(OSError):
            lock_info_path(out).unlink()
        _release(lock)
        for folder in created:  # a run that wrote nothing leaves no folder behind
            with contextlib.suppress(OSError):
                folder.rmdir()


def _acquire(path: Path, timeout: float):
    """A held FileLock on ``path``. The lock file is deleted on release (no litter beside the
    outputs), so a lock taken on a file that was deleted meanwhile is retaken on the new one."""
    from filelock import FileLock, Timeout

    for _ in range(10):
        lock = FileLock(str(path), timeout=timeout)
        lock.acquire()  # raises Timeout
        fd = getattr(getattr(lock, "_context", None), "lock_file_fd", None)
        try:
            same = fd is None or os.fstat(fd).st_ino == os.stat(path).st_ino
        except OSError:
            same = False
        if same:
            return lock
        lock.release()
    raise Timeout(str(path))


def _release(lock) -> None:
    fd = getattr(getattr(lock, "_context", None), "lock_file_fd", None)
    if fd is not None:  # unlink while holding it: waiters then retake a fresh file
        with contextlib.suppress(OSError):
            os.unlink(lock.lock_file)
    lock.release()


# ---------------------------------------------------------------------------------------------
# Leftovers of killed runs


def remove_temp_files(folder: str | Path, names: Iterable[str]) -> list[Path]:
    """Temp files of atomic writes to ``names`` in ``folder`` (``.<name>.<random>.tmp``): a
    killed run left them, never renamed, so never complete. Returns what was removed."""
    folder = Path(folder)
    removed = []
    for name in names:
        for stale in folder.glob(f".{name}.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
                removed.append(stale)
    return removed


def staging_prefix(out: str | Path) -> str:
    return f"{STAGING_PREFIX}{Path(out).name}."


def clean_export_leftovers(out: str | Path, names: Iterable[str] = ()) -> None:
    """Before an export of ``out`` (holding its lock): finish a killed run's committed set, delete
    its uncommitted staging folders, and remove temp files of ``names``."""
    out = Path(out)
    if not out.parent.is_dir():
        return
    for folder in sorted(out.parent.glob(staging_prefix(out) + "*")):
        if not folder.is_dir() or folder.is_symlink():
            continue
        manifest = _read_manifest(folder)
        if manifest is not None:
            done = _apply(folder, manifest)
            info(f"finished an interrupted export of {out} ({done} file(s) moved into place)")
        shutil.rmtree(folder, ignore_errors=True)
    remove_temp_files(out.parent, names)


def _journals_naming(artifact: Path) -> list[tuple[Path, Path]]:
    """(staging folder, the output it exports) of each committed journal that moves a file to
    ``artifact``. Reads only."""
    try:
        folders = [p for p in artifact.parent.glob(STAGING_PREFIX + "*") if p.is_dir()]
    except OSError:
        return []
    found = []
    for folder in folders:
        manifest = _read_manifest(folder)
        if manifest is None or artifact.name not in {t for _, t in manifest["moves"]}:
            continue
        out = Path(str(manifest.get("out", artifact.name))).name
        found.append((folder, artifact.with_name(out)))
    return found


def _writer_running(out: Path) -> bool:
    """Whether the process named in ``out``'s lock info may still be running (one on another
    host is taken to be). Reads only."""
    try:
        doc = json.loads(lock_info_path(out).read_text(encoding="utf-8"))
        pid, host = int(doc["pid"]), str(doc["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return False  # no live writer leaves no info (it writes it before any staging)
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # alive, someone else's
    return True


def pending_commit(artifact: str | Path, wait_s: float = WAIT_FOR_COMMIT_S) -> Path | None:
    """The output whose export committed a set naming ``artifact`` but has not moved it all into
    place, or None. Reads only: while that export is still running, waits for it (up to
    ``wait_s``); a killed one's journal is reported at once (its next export finishes it)."""
    artifact = Path(artifact)
    deadline = time.monotonic() + wait_s
    while True:
        journals = _journals_naming(artifact)
        if not journals:
            return None
        _, out = journals[0]
        if not _writer_running(out) or time.monotonic() > deadline:
            return out
        time.sleep(0.05)


def finish_interrupted_export(artifact: str | Path) -> None:
    """If a killed export left a committed journal naming ``artifact``, finish it (a roll-forward),
    unless a live writer holds the lock (then wait for it, briefly). For commands that write
    beside ``artifact`` (an engine build); readers call ``pending_commit`` instead."""
    from filelock import Timeout

    artifact = Path(artifact)
    for folder, out in _journals_naming(artifact):
        try:
            lock = _acquire(lock_path(out), WAIT_FOR_COMMIT_S)
        except (Timeout, OSError):
            return  # read-only folder or a stuck writer: verification judges what is there
        try:
            manifest = _read_manifest(folder)  # the writer may have finished meanwhile
            if manifest is not None:
                _apply(folder, manifest)
                shutil.rmtree(folder, ignore_errors=True)
                warn(f"finished an interrupted export of {out} before reading {artifact.name}")
        except OSError:
            pass
        finally:
            _release(lock)


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    moves = doc.get("moves") if isinstance(doc, dict) else None
    if not isinstance(moves, list) or not all(
        isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m) for m in moves
    ):
        return None
    # names only: a manifest never moves anything out of its own folder pair
    doc["moves"] = [[Path(a).name, Path(b).name] for a, b in moves]
    return doc


def _apply(folder: Path, manifest: dict[str, Any]) -> int:
    """Do the manifest's renames that are still to do (idempotent); how many were done."""
    done = 0
    for tmp_name, target_name in manifest["moves"]:
        tmp = folder / tmp_name
        if tmp.exists():
            os.replace(tmp, folder.parent / target_name)
            done += 1
    return done


class Staging:
    """The files of one export set, written in a staging folder and committed all together."""

    def __init__(self, out: Path):
        out = Path(out)
        self.out = out
        folder = out.parent
        self.created = None if folder.exists() else folder
        folder.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=staging_prefix(out), dir=folder))
        self.targets: dict[Path, Path] = {}
        self.committed = False
        self.journaled = False

    def path(self, target: Path) -> Path:
        tmp = self.dir / target.name
        self.targets[target] = tmp
        return tmp

    def scratch(self, name: str) -> Path:
        return self.dir / f"scratch-{name}"

    def commit(self) -> list[Path]:
        """Journal the moves, then make them: artifacts first, sidecars (.json) last."""
        order = sorted(self.targets.items(), key=lambda kv: kv[0].suffix == ".json")
        manifest = {
            "out": self.out.name,
            "moves": [[tmp.name, target.name] for target, tmp in order],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_text(self.dir / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        self.journaled = True
        for target, tmp in order:
            os.replace(tmp, target)
        self.committed = True
        shutil.rmtree(self.dir, ignore_errors=True)
        return [target for target, _ in order]

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.journaled and not self.committed:
            return  # a failed commit stays journalled: the next run finishes it
        shutil.rmtree(self.dir, ignore_errors=True)
        if not self.committed and self.created is not None:
            with contextlib.suppress(OSError):
                self.created.rmdir()  # only if empty: a failed export leaves no trace


__all__ = [
    "Staging",
    "clean_export_leftovers",
    "exclusive",
    "finish_interrupted_export",
    "pending_commit",
    "remove_temp_files",
]


def single_writer(what: str, arg: str = "out"):
    """Decorator: the function holds the writer lock of its ``arg`` parameter while it runs."""
    import functools
    import inspect

    def decorate(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            out = signature.bind(*args, **kwargs).arguments[arg]
            with exclusive(out, what):
                return fn(*args, **kwargs)

        return wrapper

    return decorate
