"""Ordered streams of frames, as a robot produces them: runs of one class with random dwell times.

A robot dwells on one object, drives through one room: what it sees comes in runs of one class.
``dwell_runs`` draws the runs (class, frames) of a stream of ``seconds`` at ``rate`` Hz, each
run's length uniform in ``dwell`` seconds and its class drawn uniformly from the classes other
than the previous run's (or, with ``weights``, by them, repeats allowed, so that each class's
share of the time is its weight's share); ``stream_frames`` fills the runs with
scenes of their class, walking a shuffled list of each class's scenes and reshuffling when it is
used up, so that a run repeats a scene only when it is longer than the class's list. numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import SocketEdgeError


def dwell_runs(
    classes: int,
    seconds: float,
    rate: float = 30.0,
    dwell: tuple[float, float] = (1.0, 20.0),
    seed: int = 0,
    weights: Sequence[float] | None = None,
) -> list[tuple[int, int]]:
    """(class, frames) of each run of a stream ``seconds`` long (see module doc)."""
    lo, hi = float(dwell[0]), float(dwell[1])
    if not 0 < lo <= hi:
        raise SocketEdgeError(
            f"dwell must be 0 < low <= high seconds, got {dwell}", settings=("dwell",)
        )
    if not rate > 0 or not seconds > 0:
        raise SocketEdgeError(
            f"a stream needs a positive length and rate, got {seconds} s at {rate} Hz",
            settings=("stream_seconds", "rate"),
        )
    if classes < 1:
        raise SocketEdgeError("a stream needs at least one class")
    w = np.ones(classes) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(w) != classes or (w < 0).any() or w.sum() <= 0:
        raise SocketEdgeError(f"class weights {list(w)} do not fit {classes} classes")
    rng = np.random.default_rng([seed, 7])
    total = max(1, round(seconds * rate))
    runs: list[tuple[int, int]] = []
    done, last = 0, -1
    while done < total:
        p = w.copy()
        if weights is None and last >= 0 and classes > 1:
            p[last] = 0.0
        c = int(rng.choice(classes, p=p / p.sum()))
        frames = min(total - done, max(1, round(rng.uniform(lo, hi) * rate)))
        runs.append((c, frames))
        done, last = done + frames, c
    return runs


def stream_frames(
    pool: Sequence[Sequence[int]], runs: list[tuple[int, int]], seed: int = 0
) -> np.ndarray:
    """The scene of every frame: ``pool[c]`` lists class c's scenes (any ids); runs as from
    dwell_runs. Each class walks its own shuffled list, reshuffled when used up."""
    rng = np.random.default_rng([seed, 11])
    lists = [np.asarray(p) for p in pool]
    cursor = [len(p) for p in lists]  # used up: shuffle on first use
    order: list[np.ndarray] = [np.zeros(0, dtype=int) for _ in lists]
    out = []
    for c, frames in runs:
        if len(lists[c]) == 0:
            raise SocketEdgeError(f"class {c} has no scenes to stream")
        for _ in range(frames):
            if cursor[c] >= len(lists[c]):
                order[c], cursor[c] = rng.permutation(len(lists[c])), 0
            out.append(lists[c][order[c][cursor[c]]])
            cursor[c] += 1
    return np.asarray(out)


def run_labels(runs: list[tuple[int, int]]) -> np.ndarray:
    """The class of every frame of ``runs``."""
    return np.concatenate([np.full(frames, c) for c, frames in runs]) if runs else np.zeros(0, int)
