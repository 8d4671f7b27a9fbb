"""Power samplers for energy per image: tegrastats on a Jetson (board input power), NVML on a
discrete NVIDIA GPU (the GPU board's own power, CPU excluded). Both keep timestamped samples so
that each row's timed window is summarised afterwards."""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from . import tegrastats


class PowerSampler(Protocol):
    source: str
    whole_board: bool  # True: the reading covers every row (CPU runs too); False: GPU rows only

    def start(self) -> Any: ...

    def stop(self) -> None: ...

    def summary(self, t0: float, t1: float) -> dict[str, Any] | None: ...


class TegraPower(tegrastats.TegrastatsSampler):
    source = "tegrastats"
    whole_board = True


class NvmlPower:
    """Polls nvmlDeviceGetPowerUsage (mW) of one GPU in a thread."""

    source = "nvml"
    whole_board = False

    def __init__(self, index: int = 0, interval_ms: int = 100):
        self.index = index
        self.interval_ms = int(interval_ms)
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> NvmlPower:
        import pynvml

        pynvml.nvmlInit()
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)
        pynvml.nvmlDeviceGetPowerUsage(self._handle)  # fails here, not in the thread, if restricted
        self._thread = threading.Thread(target=self._poll, name="nvml-power", daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        import pynvml

        while not self._stop.is_set():
            try:
                mw = float(pynvml.nvmlDeviceGetPowerUsage(self._handle))
            except Exception:  # a transient NVML error loses one sample, not the run
                mw = None
            if mw is not None:
                self.samples.append((time.perf_counter(), mw))
            self._stop.wait(self.interval_ms / 1000.0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
            import pynvml

            pynvml.nvmlShutdown()

    def summary(self, t0: float, t1: float) -> dict[str, Any] | None:
        values = [mw for t, mw in list(self.samples) if t0 <= t <= t1]
        if not values:
            return None
        return {
            "source": "nvml",
            "rail": f"GPU {self.index} board power",
            "samples": len(values),
            "interval_ms": self.interval_ms,
            "mean_mw": sum(values) / len(values),
            "max_mw": max(values),
        }


def open_sampler(interval_ms: int, want_gpu: bool) -> PowerSampler | None:
    """A started sampler for this machine, or None where power cannot be read."""
    if tegrastats.available():
        sampler = TegraPower(interval_ms)
        try:
            sampler.start()
        except OSError:
            return None
        return sampler
    if want_gpu:
        try:
            return NvmlPower(0, interval_ms).start()
        except Exception:  # no pynvml, no driver, or power readings not permitted
            return None
    return None
