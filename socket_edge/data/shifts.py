"""Deployment shifts of the built-in benchmark: what a robot may meet after the model shipped.

Each shift is a named, documented change to how `socket-edge synth` renders the target
modalities (``--shift NAME``); with no shift the renderer is untouched (same seed, same bytes).

- ``depth-sensor``: a cheaper depth camera: 3x the axial noise, a range that ends at 1.75-3.0 m
  instead of 3.5-6.0 m (the back wall mostly drops out), 3-8 % speckle dropout instead of 0-3 %.
- ``mount``: the camera moved 0.5 m higher on the robot and tilted 8 degrees further down than
  the object's direction (objects seen more from above, higher in the frame).
- ``thermal``: another thermal camera on a warmer day: counts = 9000 + 70 x (T - 20 C) instead of
  8192 + 100 x (T - 20 C), and the room 8 K warmer while objects keep their absolute temperature
  (hot objects stand out less, some fall below the room).
- ``prior``: the class prior changes: one class (the first, or ``prior_class``) makes up half of
  the target images; the images themselves are rendered as without a shift.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SocketEdgeError

SHIFTS = ("depth-sensor", "mount", "thermal", "prior")


@dataclass(frozen=True)
class Shift:
    """Rendering changes; the defaults are the unshifted benchmark."""

    depth_noise: float = 1.0  # multiplies the axial noise
    depth_range: float = 1.0  # multiplies the far range limit
    depth_dropout: tuple[float, float] = (0.0, 0.03)  # speckle dropout share, uniform
    cam_raise: float = 0.0  # metres added to the camera height
    cam_tilt: float = 0.0  # radians of extra downward pitch
    ir_gain: float = 100.0  # counts per kelvin
    ir_offset: float = 8192.0  # counts at 20 C
    room_warming: float = 0.0  # kelvin added to the room (objects keep their temperature)
    prior_share: float = 0.0  # share of target images of one class (0: uniform)
    prior_class: str | None = None


def make_shift(names: list[str] | tuple[str, ...], prior_class: str | None = None) -> Shift:
    """One Shift combining the named shifts (see the module docstring)."""
    kw: dict = {}
    for name in names:
        if name == "depth-sensor":
            kw.update(depth_noise=3.0, depth_range=0.5, depth_dropout=(0.03, 0.08))
        elif name == "mount":
            kw.update(cam_raise=0.5, cam_tilt=0.14)
        elif name == "thermal":
            kw.update(ir_gain=70.0, ir_offset=9000.0, room_warming=8.0)
        elif name == "prior":
            kw.update(prior_share=0.5, prior_class=prior_class)
        else:
            raise SocketEdgeError(f"unknown shift {name!r} (choose from {', '.join(SHIFTS)})")
    if prior_class is not None and "prior" not in names:
        raise SocketEdgeError(
            "prior_class goes with shift prior", settings=("prior_class", "shift")
        )
    return Shift(**kw)


def class_counts(shift: Shift, classes: list[str], per_class: int) -> dict[str, int]:
    """Target images per class: ``per_class`` each, or one class at ``prior_share`` of all."""
    if shift.prior_share <= 0:
        return {c: per_class for c in classes}
    frequent = shift.prior_class or classes[0]
    if frequent not in classes:
        raise SocketEdgeError(
            f"prior_class {frequent!r} is not a class ({', '.join(classes)})",
            settings=("prior_class",),
        )
    others = len(classes) - 1
    # share = n_f / (n_f + others * per_class)  ->  n_f = share * others * per_class / (1 - share)
    n_f = round(shift.prior_share * others * per_class / (1 - shift.prior_share))
    return {c: (n_f if c == frequent else per_class) for c in classes}
