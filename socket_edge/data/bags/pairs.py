"""Pairing two topics on ``header.stamp``: each target frame with its nearest RGB frame, one to
one, mutual nearest only, within a tolerance (default half the target topic's median frame
interval); frames without a partner are counted and reported, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Matching:
    """Stamp matching of two topics: (rgb position, target position) pairs and the leftovers."""

    pairs: list[tuple[int, int]]
    unmatched_rgb: int
    unmatched_target: int
    tolerance_ns: int

    def describe(self) -> str:
        return (
            f"{len(self.pairs)} pairs within {self.tolerance_ns / 1e6:g} ms; unmatched: "
            f"{self.unmatched_rgb} RGB, {self.unmatched_target} target frames"
        )


def default_tolerance(stamps: list[int]) -> int:
    """Half the median interval between consecutive stamps (ns): a frame can then only pair with
    a partner closer to it than to the partner's neighbours."""
    s = np.sort(np.asarray(stamps, dtype=np.int64))
    if s.size < 2:
        return 50_000_000  # one frame: 50 ms
    d = np.diff(s)
    d = d[d > 0]
    return int(np.median(d) // 2) if d.size else 50_000_000


def match_stamps(rgb: list[int], target: list[int], tolerance_ns: int) -> Matching:
    """One-to-one pairs of mutually nearest stamps within ``tolerance_ns`` (positions into the
    two lists, in target order)."""
    a = np.asarray(rgb, dtype=np.int64)
    b = np.asarray(target, dtype=np.int64)
    pairs: list[tuple[int, int]] = []
    if a.size and b.size:
        order_a, order_b = np.argsort(a, kind="stable"), np.argsort(b, kind="stable")
        sa, sb = a[order_a], b[order_b]
        near_a = _nearest(sa, sb)  # for each target (sorted), nearest rgb (sorted)
        near_b = _nearest(sb, sa)
        for j, i in enumerate(near_a):
            if near_b[i] == j and abs(int(sa[i]) - int(sb[j])) <= tolerance_ns:
                pairs.append((int(order_a[i]), int(order_b[j])))
    pairs.sort(key=lambda p: p[1])
    return Matching(pairs, int(a.size) - len(pairs), int(b.size) - len(pairs), int(tolerance_ns))


def _nearest(sorted_ref: np.ndarray, query: np.ndarray) -> np.ndarray:
    """For each of ``query``, the position of the nearest value in ``sorted_ref`` (ties: the
    earlier)."""
    k = np.searchsorted(sorted_ref, query)
    lo = np.clip(k - 1, 0, sorted_ref.size - 1)
    hi = np.clip(k, 0, sorted_ref.size - 1)
    return np.where(np.abs(query - sorted_ref[lo]) <= np.abs(sorted_ref[hi] - query), lo, hi)
