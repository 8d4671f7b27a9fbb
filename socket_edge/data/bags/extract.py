"""Extraction: a bag topic's frames, or its TI pairs, written in the folder layout (PNG files of
the stored form), and a topic's frames read in canonical units for classify and monitor.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import SocketEdgeError
from .decode import canonical, write_png
from .pairs import Matching
from .reader import Bag
from .sources import BagPairs, BagTopic, frame_key, read_pairs


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
