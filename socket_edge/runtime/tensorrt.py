"""Runner for TensorRT engines (Polygraphy's TrtRunner), and the engine/machine compatibility check.

An engine only runs with the TensorRT version and the GPU (compute capability) it was built
for; its sidecar records both and the runner checks them before deserializing, naming exactly
what differs. Buffers, shapes and the named-tensor vs bindings APIs of TensorRT 8.5 .. 10 are
Polygraphy's (``polygraphy.backend.trt.TrtRunner``, CUDA through its ctypes wrapper of
libcudart: neither cuda-python, pycuda nor torch is needed).
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactError
from .base import ArtifactInfo, Runner

REBUILD_HINT = "rebuild it on this machine (export MODEL.onnx with trt)"


# ---------------------------------------------------------------------------------------------
# What this machine has


def quiet_polygraphy() -> None:
    """Polygraphy's logger down to warnings: socket-edge prints its own progress."""
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.WARNING


def gpu_info(device: int = 0) -> dict[str, str] | None:
    """{'name', 'compute_capability'} of CUDA GPU ``device`` (through libcudart), or None."""
    try:
        from polygraphy import cuda

        rt = cuda.wrapper().handle
    except Exception:  # no Polygraphy, or no CUDA runtime library: no usable GPU
        return None
    count = ctypes.c_int(0)
    if rt.cudaGetDeviceCount(ctypes.byref(count)) != 0 or device >= count.value:
        return None
    cc = []
    for attribute in (75, 76):  # cudaDevAttrComputeCapabilityMajor / Minor
        value = ctypes.c_int(0)
        if rt.cudaDeviceGetAttribute(ctypes.byref(value), attribute, device) != 0:
            return None
        cc.append(value.value)
    props = ctypes.create_string_buffer(8192)  # cudaDeviceProp starts with char name[256]
    get = getattr(rt, "cudaGetDeviceProperties_v2", None) or rt.cudaGetDeviceProperties
    name = (
        props.raw[:256].split(b"\0")[0].decode(errors="replace") if get(props, device) == 0 else "?"
    )
    return {"name": name or "?", "compute_capability": f"{cc[0]}.{cc[1]}"}


def engine_problems(
    built: dict[str, Any], trt_version: str | None, gpu: dict[str, str] | None
) -> list[str]:
    """What keeps an engine built as ``built`` (sidecar 'tensorrt') from running here."""
    problems = []
    want_version = str(built.get("version", "?"))
    if trt_version is None:
        problems.append(f"it needs TensorRT {want_version}, and this machine has no TensorRT")
    elif _version3(trt_version) != _version3(want_version):
        problems.append(
            f"it was built with TensorRT {want_version}, this machine has TensorRT {trt_version}"
        )
    want_cc = str(built.get("compute_capability", "?"))
    want_gpu = built.get("gpu")
    for_gpu = f"compute capability {want_cc}" + (f" ({want_gpu})" if want_gpu else "")
    if gpu is None:
        problems.append(f"it needs a CUDA GPU of {for_gpu}, and this machine has none")
    elif gpu["compute_capability"] != want_cc:
        problems.append(
            f"it was built for a GPU of {for_gpu}, this GPU is {gpu['name']} of compute "
            f"capability {gpu['compute_capability']}"
        )
    return problems


def check_engine(
    doc: dict[str, Any], path: str | Path, trt_version: str | None, gpu: dict[str, str] | None
) -> None:
    """Raise a one-line ArtifactError if the engine of sidecar ``doc`` cannot run here."""
    built = doc.get("tensorrt")
    if not isinstance(built, dict) or "version" not in built:
        raise ArtifactError(
            "sidecar lacks the 'tensorrt' build record (version, compute "
            "capability); rebuild the engine (export with trt)",
            path,
            settings=("trt",),
        )
    problems = engine_problems(built, trt_version, gpu)
    if problems:
        raise ArtifactError(
            "cannot run this engine: " + "; ".join(problems) + f"; {REBUILD_HINT}",
            path,
            settings=("trt",),
        )


def _version3(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:3])


# ---------------------------------------------------------------------------------------------
# The runner


class TensorRTRunner(Runner):
    """Runs a serialized TensorRT engine (.engine/.plan) with its sidecar, through Polygraphy."""

    backend = "tensorrt"
    options = frozenset({"device", "threads"})

    def __init__(
        self,
        path: str | Path,
        device: str | None = "cuda",
        threads: int | None = None,
        verify: bool = True,
    ):
        self.verify = verify
        self.device_name = device or "cuda"
        self.runner: Any = None
        super().__init__(path)

    def load_info(self) -> ArtifactInfo:
        from ..artifact import artifact_info

        return artifact_info(self.path, "engine", verify=self.verify)

    @property
    def max_batch(self) -> int:
        profile = (self.info.extra["sidecar"].get("tensorrt") or {}).get("profile") or {}
        return int(profile.get("max", 1))

    def activate_impl(self) -> None:
        from ..doctor import tensorrt_version

        doc = self.info.extra["sidecar"]
        device = int(self.device_name.split(":")[1]) if ":" in self.device_name else 0
        check_engine(doc, self.path, tensorrt_version(), gpu_info(device))
        from polygraphy.backend.trt import EngineFromBytes, TrtRunner

        quiet_polygraphy()
        runner = TrtRunner(EngineFromBytes(self.path.read_bytes()))
        try:
            runner.activate()
        except Exception as exc:  # PolygraphyException: corrupt file or built elsewhere
            raise ArtifactError(
                f"TensorRT could not load the engine ({str(exc).strip()[:160]}); {REBUILD_HINT}",
                self.path,
                settings=("trt",),
            ) from None
        self.runner = runner
        self.input_name = str((doc.get("input") or {}).get("name", "input"))
        self.output_name = str((doc.get("output") or {}).get("name", "logits"))

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        step = self.max_batch
        if len(batch) > step:
            return np.concatenate(
                [self.infer_impl(batch[i : i + step]) for i in range(0, len(batch), step)]
            )
        outputs = self.runner.infer({self.input_name: batch})
        # Polygraphy reuses its host output buffers on the next call: copy.
        return np.array(outputs[self.output_name], dtype=np.float32, copy=True)

    def deactivate_impl(self) -> None:
        if self.runner is not None:
            self.runner.deactivate()
        self.runner = None

    def describe(self) -> dict:
        built = self.info.extra["sidecar"].get("tensorrt") or {}
        return {
            **super().describe(),
            "device": self.device_name,
            "tensorrt": built.get("version"),
            "runner": "polygraphy TrtRunner",
        }
