"""Fixed-size calibration batches, as TensorRT's calibrator wants them (no GPU needed here).

TensorRT asks for batches of exactly ``get_batch_size()`` images. The remainder that does not
fill a batch is dropped, except when the whole set is smaller than one batch: then the set is
repeated to fill it (repeats change the histogram's counts, not its shape).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np


class CalibrationBatcher:
    """Batches of ``batch_size`` raw maps, C-contiguous float32, from a list of items."""

    def __init__(self, count: int, load: Callable[[list[int]], np.ndarray], batch_size: int):
        if count < 1:
            raise ValueError("a calibration batcher needs at least one image")
        if batch_size < 1:
            raise ValueError("batch size must be positive")
        self.count = count
        self.load = load
        self.batch_size = batch_size

    def index_batches(self) -> list[list[int]]:
        """The image indices of each batch, in order."""
        b = self.batch_size
        if self.count < b:
            return [[i % self.count for i in range(b)]]
        full = self.count // b
        return [list(range(k * b, (k + 1) * b)) for k in range(full)]

    @property
    def num_batches(self) -> int:
        return len(self.index_batches())

    @property
    def images_used(self) -> int:
        return min(self.count, self.num_batches * self.batch_size)

    def __iter__(self) -> Iterator[np.ndarray]:
        for indices in self.index_batches():
            batch = np.ascontiguousarray(self.load(indices), dtype=np.float32)
            if batch.shape[0] != len(indices):
                raise ValueError(
                    f"loader returned {batch.shape[0]} images for {len(indices)} indices"
                )
            yield batch

    @classmethod
    def from_set(cls, calib_set, batch_size: int) -> CalibrationBatcher:
        """Batches over a :class:`~socket_edge.calibration.calibset.CalibrationSet`."""
        files = calib_set.files
        return cls(len(files), lambda idx: calib_set.load([files[i] for i in idx]), batch_size)
