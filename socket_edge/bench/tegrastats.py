"""Jetson `tegrastats` lines: a parser for every board generation and a background sampler.

Line formats (NVIDIA's tegrastats documentation; fields appear only where the board has them)::

    [MM-DD-YYYY HH:MM:SS]                        timestamp (JetPack 5 and later)
    RAM X/YMB (lfb NxZMB)  SWAP X/YMB (cached ZMB)  IRAM X/YkB(lfb ZkB)
    CPU [X%@MHz,X%@MHz,off,...]   or   CPU [X%,X%,...]@MHz
    EMC_FREQ X%[@MHz]   GR3D_FREQ X%[@MHz | @[MHz,MHz]]   APE MHz  VIC_FREQ [X%@]MHz  ...
    NAME@T.TC ...                                temperatures (-256C: sensor off)
    RAIL cur/avg  (mW, with a 'mW' unit from JetPack 5 on, bare numbers before)

Power rails differ by board: VDD_IN (module input: Orin NX/Nano, Xavier NX, TX2), POM_5V_IN
(Nano, TX1); AGX Xavier (GPU, CPU, SOC, CV, VDDRQ, SYS5V) and AGX Orin (VDD_GPU_SOC,
VDD_CPU_CV, VIN_SYS_5V0, VDDQ_VDD2_1V8AO) report no input rail, so their total is the rail sum.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# The board's total input rail, best first.
INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "VIN")

_STAMP = re.compile(r"^\s*(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s+")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB(?: \(lfb (\d+)x(\d+)MB\))?")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB(?: \(cached (\d+)MB\))?")
_IRAM = re.compile(r"\bIRAM (\d+)/(\d+)kB ?(?:\(lfb (\d+)kB\))?")
_CPU = re.compile(r"\bCPU \[([^\]]*)\](?:@(\d+))?")
_CORE = re.compile(r"^(\d+)%(?:@(\d+))?$")
_ENGINE = re.compile(
    r"\b(EMC_FREQ|GR3D_FREQ|GR3D2_FREQ|VIC_FREQ|NVENC_FREQ|NVDEC_FREQ|"
    r"NVJPG_FREQ|NVJPG1_FREQ|OFA_FREQ|NVDLA\d_FREQ|APE|MTS fg|MTS bg) "
    r"(?:(\d+)%)?(?:@?\[([\d,]+)\]|@?(\d+))?"
)
_TEMP = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")


@dataclass
class TegraSample:
    """One tegrastats line, parsed. Powers in mW, memory in MB, frequencies in MHz, temps in C."""

    stamp: str | None = None
    ram_used_mb: int | None = None
    ram_total_mb: int | None = None
    swap_used_mb: int | None = None
    swap_total_mb: int | None = None
    cpu_load: list[int | None] = field(default_factory=list)  # None = core off
    cpu_mhz: list[int | None] = field(default_factory=list)
    engines: dict[str, dict[str, Any]] = field(default_factory=dict)  # GR3D_FREQ -> {load, mhz}
    temps: dict[str, float] = field(default_factory=dict)
    rails: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (current, average)

    @property
    def gpu_load(self) -> int | None:
        gr3d = self.engines.get("GR3D_FREQ")
        return None if gr3d is None else gr3d.get("load")

    def input_power(self) -> tuple[float, str] | None:
        """(current board input power in mW, where it came from), or None without power rails."""
        for name in INPUT_RAILS:
            if name in self.rails:
                return float(self.rails[name][0]), name
        if not self.rails:
            return None
        return float(sum(cur for cur, _ in self.rails.values())), "sum of " + "+".join(self.rails)


def parse_line(line: str) -> TegraSample | None:
    """Parse one tegrastats line; None for a line that is not tegrastats output."""
    text = line.strip()
    if not text:
        return None
    s = TegraSample()
    m = _STAMP.match(text)
    if m:
        s.stamp = m.group(1)
        text = text[m.end() :]
    # Memory fields first, then cut them out so their X/Y pairs are never read as power rails.
    if m := _RAM.search(text):
        s.ram_used_mb, s.ram_total_mb = int(m.group(1)), int(m.group(2))
    if m := _SWAP.search(text):
        s.swap_used_mb, s.swap_total_mb = int(m.group(1)), int(m.group(2))
    text = _IRAM.sub(" ", _SWAP.sub(" ", _RAM.sub(" ", text)))
    if m := _CPU.search(text):
        shared_mhz = int(m.group(2)) if m.group(2) else None
        for item in m.group(1).split(","):
            item = item.strip()
            core = _CORE.match(item)
            if core:
                s.cpu_load.append(int(core.group(1)))
                s.cpu_mhz.append(int(core.group(2)) if core.group(2) else shared_mhz)
            else:  # 'off' (core powered down) or empty
                s.cpu_load.append(None)
                s.cpu_mhz.append(None)
        text = text[: m.start()] + " " + text[m.end() :]
    for m in _ENGINE.finditer(text):
        entry: dict[str, Any] = {}
        if m.group(2) is not None:
            entry["load"] = int(m.group(2))
        if m.group(3):
            entry["mhz"] = [int(v) for v in m.group(3).split(",") if v]
        elif m.group(4):
            entry["mhz"] = int(m.group(4))
        s.engines[m.group(1)] = entry
    text = _ENGINE.sub(" ", text)
    for m in _TEMP.finditer(text):
        value = float(m.group(2))
        if value > -200:  # -256C marks a sensor that is off
            s.temps[m.group(1)] = value
    text = _TEMP.sub(" ", text)
    for m in _RAIL.finditer(text):
        s.rails[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    if s.ram_used_mb is None and not s.rails and not s.cpu_load:
        return None
    return s


def available() -> bool:
    return shutil.which("tegrastats") is not None


class TegrastatsSampler:
    """Runs ``tegrastats --interval MS`` in the background; samples are kept with their arrival
    time (time.perf_counter), so any window of the run can be summarised afterwards."""

    def __init__(self, interval_ms: int = 100, command: Sequence[str] | None = None):
        self.interval_ms = int(interval_ms)
        self.command = (
            list(command) if command else ["tegrastats", "--interval", str(self.interval_ms)]
        )
        self.samples: list[tuple[float, TegraSample]] = []
        self.lines = 0
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> TegrastatsSampler:
        self._proc = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1
        )
        self._thread = threading.Thread(target=self._read, name="tegrastats", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            now = time.perf_counter()
            sample = parse_line(line)
            with self._lock:
                self.lines += 1
                if sample is not None:
                    self.samples.append((now, sample))

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._proc = None

    def __enter__(self) -> TegrastatsSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def window(self, t0: float, t1: float) -> list[TegraSample]:
        with self._lock:
            return [s for t, s in self.samples if t0 <= t <= t1]

    def summary(self, t0: float, t1: float) -> dict[str, Any] | None:
        return summarize(self.window(t0, t1), source="tegrastats", interval_ms=self.interval_ms)


def summarize(
    samples: Sequence[TegraSample], source: str = "tegrastats", interval_ms: int | None = None
) -> dict[str, Any] | None:
    """Mean and peak board power, GPU load, RAM and temperatures over ``samples``."""
    powers = [p for p in (s.input_power() for s in samples) if p is not None]
    if not powers:
        return None
    values = [p for p, _ in powers]
    loads = [s.gpu_load for s in samples if s.gpu_load is not None]
    ram = [s.ram_used_mb for s in samples if s.ram_used_mb is not None]
    temps: dict[str, float] = {}
    for s in samples:
        for name, value in s.temps.items():
            temps[name] = max(value, temps.get(name, value))
    return {
        "source": source,
        "rail": powers[-1][1],
        "samples": len(values),
        "interval_ms": interval_ms,
        "mean_mw": sum(values) / len(values),
        "max_mw": max(values),
        "gpu_load_mean_pct": sum(loads) / len(loads) if loads else None,
        "ram_max_mb": max(ram) if ram else None,
        "temp_max_c": temps or None,
    }
