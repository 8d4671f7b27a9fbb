"""Runner for TensorRT engines, device buffers, and the engine/machine compatibility check.

An engine only runs with the TensorRT version and the GPU (compute capability) it was built
for; its sidecar records both and the runner checks them before deserializing, naming exactly
what differs. Execution uses the named-tensor API (TensorRT 8.5+: ``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``) with a fallback to 8.x bindings. Device memory comes
from cuda-python (``cuda.bindings``, what NVIDIA's samples use since TensorRT 10.14), pycuda, or
torch's CUDA allocator, whichever is installed (in that order).
"""

from __future__ import annotations

import importlib
import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactError
from .base import ArtifactInfo, Runner

REBUILD_HINT = "rebuild it on this machine: socket-edge export MODEL.onnx --trt ..."


# ---------------------------------------------------------------------------------------------
# What this machine has


def gpu_info(device: int = 0) -> dict[str, str] | None:
    """{'name', 'compute_capability'} of CUDA GPU ``device``, or None without one."""
    try:
        import torch

        if torch.cuda.is_available() and device < torch.cuda.device_count():
            major, minor = torch.cuda.get_device_capability(device)
            return {
                "name": torch.cuda.get_device_name(device),
                "compute_capability": f"{major}.{minor}",
            }
    except ImportError:
        pass
    try:
        cudart = _cudart()
    except ImportError:
        return None
    err, props = cudart.cudaGetDeviceProperties(device)
    if int(err) != 0:
        return None
    name = (
        props.name.decode(errors="replace").strip("\x00 ")
        if isinstance(props.name, bytes)
        else str(props.name)
    )
    return {"name": name, "compute_capability": f"{props.major}.{props.minor}"}


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
            "capability); rebuild the engine with socket-edge export --trt",
            path,
        )
    problems = engine_problems(built, trt_version, gpu)
    if problems:
        raise ArtifactError(
            "cannot run this engine: " + "; ".join(problems) + f"; {REBUILD_HINT}", path
        )


def _version3(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:3])


# ---------------------------------------------------------------------------------------------
# Device memory


def _cudart() -> Any:
    try:
        return importlib.import_module("cuda.bindings.runtime")  # cuda-python >= 12.6
    except ImportError:
        return importlib.import_module("cuda.cudart")  # older cuda-python


class DeviceMemory(ABC):
    """Allocations, copies and one stream, through one of the CUDA Python bindings."""

    name = "?"

    @abstractmethod
    def alloc(self, nbytes: int) -> Any: ...

    @abstractmethod
    def ptr(self, buf: Any) -> int: ...

    @abstractmethod
    def to_device(self, buf: Any, host: np.ndarray) -> None: ...

    @abstractmethod
    def to_host(self, host: np.ndarray, buf: Any) -> None: ...

    @abstractmethod
    def stream_handle(self) -> int: ...

    @abstractmethod
    def synchronize(self) -> None: ...

    @abstractmethod
    def free(self, buf: Any) -> None: ...


class CudaPythonMemory(DeviceMemory):
    name = "cuda-python"

    def __init__(self) -> None:
        self.rt = _cudart()
        self.stream = self._check(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    def _check(self, result: Any, what: str) -> Any:
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise ArtifactError(f"CUDA error in {what}: {err}")
        return rest[0] if rest else None

    def alloc(self, nbytes: int) -> int:
        return int(self._check(self.rt.cudaMalloc(max(nbytes, 1)), "cudaMalloc"))

    def ptr(self, buf: int) -> int:
        return int(buf)

    def to_device(self, buf: int, host: np.ndarray) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(
            self.rt.cudaMemcpyAsync(buf, host.ctypes.data, host.nbytes, kind, self.stream),
            "cudaMemcpyAsync",
        )

    def to_host(self, host: np.ndarray, buf: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(
            self.rt.cudaMemcpyAsync(host.ctypes.data, buf, host.nbytes, kind, self.stream),
            "cudaMemcpyAsync",
        )

    def stream_handle(self) -> int:
        return int(self.stream)

    def synchronize(self) -> None:
        self._check(self.rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")

    def free(self, buf: int) -> None:
        self._check(self.rt.cudaFree(buf), "cudaFree")


class PyCudaMemory(DeviceMemory):
    name = "pycuda"

    def __init__(self) -> None:
        import pycuda.autoinit  # noqa: F401  (creates the context)
        import pycuda.driver as cuda

        self.cuda = cuda
        self.stream = cuda.Stream()

    def alloc(self, nbytes: int) -> Any:
        return self.cuda.mem_alloc(max(nbytes, 1))

    def ptr(self, buf: Any) -> int:
        return int(buf)

    def to_device(self, buf: Any, host: np.ndarray) -> None:
        self.cuda.memcpy_htod_async(buf, host, self.stream)

    def to_host(self, host: np.ndarray, buf: Any) -> None:
        self.cuda.memcpy_dtoh_async(host, buf, self.stream)

    def stream_handle(self) -> int:
        return int(self.stream.handle)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def free(self, buf: Any) -> None:
        buf.free()


class TorchMemory(DeviceMemory):
    name = "torch"

    def __init__(self, device: int = 0) -> None:
        import torch

        self.torch = torch
        self.device = torch.device("cuda", device)
        self.stream = torch.cuda.Stream(self.device)

    def alloc(self, nbytes: int) -> Any:
        return self.torch.empty(max(nbytes, 1), dtype=self.torch.uint8, device=self.device)

    def ptr(self, buf: Any) -> int:
        return int(buf.data_ptr())

    def to_device(self, buf: Any, host: np.ndarray) -> None:
        src = self.torch.from_numpy(np.ascontiguousarray(host).reshape(-1).view(np.uint8))
        with self.torch.cuda.stream(self.stream):
            buf[: src.numel()].copy_(src)

    def to_host(self, host: np.ndarray, buf: Any) -> None:
        with self.torch.cuda.stream(self.stream):
            data = buf[: host.nbytes].cpu().numpy()
        host.reshape(-1).view(np.uint8)[:] = data

    def stream_handle(self) -> int:
        return int(self.stream.cuda_stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def free(self, buf: Any) -> None:
        del buf


BACKENDS: dict[str, type[DeviceMemory]] = {
    "cuda-python": CudaPythonMemory,
    "pycuda": PyCudaMemory,
    "torch": TorchMemory,
}
_MODULES = {"cuda-python": "cuda", "pycuda": "pycuda", "torch": "torch"}


def available_memory_backends() -> list[str]:
    return [name for name, mod in _MODULES.items() if importlib.util.find_spec(mod) is not None]


def device_memory(prefer: str | None = None) -> DeviceMemory:
    """The first CUDA binding that works here (or ``prefer``)."""
    names = [prefer] if prefer else list(BACKENDS)
    errors = []
    for name in names:
        if name not in BACKENDS:
            raise ArtifactError(
                f"unknown CUDA buffer backend {name!r} (choose from {', '.join(BACKENDS)})"
            )
        if importlib.util.find_spec(_MODULES[name]) is None:
            errors.append(f"{name}: not installed")
            continue
        try:
            return BACKENDS[name]()
        except Exception as exc:  # each binding fails in its own way without a GPU
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
    raise ArtifactError(
        "no usable CUDA buffers for TensorRT ("
        + "; ".join(errors)
        + "); install cuda-python (pip install cuda-python) or pycuda"
    )


# ---------------------------------------------------------------------------------------------
# The runner


class TensorRTRunner(Runner):
    """Runs a serialized TensorRT engine (.engine/.plan) with its sidecar."""

    backend = "tensorrt"
    options = frozenset({"device", "threads", "buffers"})

    def __init__(
        self,
        path: str | Path,
        device: str | None = "cuda",
        threads: int | None = None,
        buffers: str | None = None,
    ):
        self.device_name = device or "cuda"
        self.buffers_backend = buffers
        self.runtime: Any = None
        self.engine: Any = None
        self.context: Any = None
        self.memory: DeviceMemory | None = None
        self._buffers: dict[str, Any] = {}
        super().__init__(path)

    def load_info(self) -> ArtifactInfo:
        from ..export.sidecar import sidecar_info

        if not self.path.exists():
            raise ArtifactError("no such file", self.path)
        return sidecar_info(self.path, "engine")

    @property
    def max_batch(self) -> int:
        profile = (self.info.extra["sidecar"].get("tensorrt") or {}).get("profile") or {}
        return int(profile.get("max", 1))

    def activate_impl(self) -> None:
        from ..doctor import tensorrt_version

        doc = self.info.extra["sidecar"]
        device = int(self.device_name.split(":")[1]) if ":" in self.device_name else 0
        check_engine(doc, self.path, tensorrt_version(), gpu_info(device))
        import tensorrt as trt

        self.memory = device_memory(self.buffers_backend)
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise ArtifactError(
                "TensorRT could not deserialize the engine (corrupt file, or "
                f"built elsewhere); {REBUILD_HINT}",
                self.path,
            )
        self.engine, self.runtime = engine, runtime
        self.context = engine.create_execution_context()
        self.named_api = hasattr(engine, "num_io_tensors")
        self.io = self._io_tensors(trt)
        for name, (_, dtype, shape) in self.io.items():
            nbytes = int(np.prod([self.max_batch, *shape[1:]])) * np.dtype(dtype).itemsize
            self._buffers[name] = self.memory.alloc(nbytes)
        self.input_name = next(n for n, v in self.io.items() if v[0])
        self.output_name = next(n for n, v in self.io.items() if not v[0])

    def _io_tensors(self, trt: Any) -> dict[str, tuple[bool, Any, tuple[int, ...]]]:
        """name -> (is_input, numpy dtype, shape with -1 for the dynamic batch)."""
        engine = self.engine
        out = {}
        if self.named_api:
            for i in range(engine.num_io_tensors):
                name = engine.get_tensor_name(i)
                is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
                dtype = trt.nptype(engine.get_tensor_dtype(name))
                out[name] = (is_input, dtype, tuple(engine.get_tensor_shape(name)))
        else:  # TensorRT < 8.5: bindings
            for i in range(engine.num_bindings):
                name = engine.get_binding_name(i)
                out[name] = (
                    bool(engine.binding_is_input(i)),
                    trt.nptype(engine.get_binding_dtype(i)),
                    tuple(engine.get_binding_shape(i)),
                )
        return out

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        step = self.max_batch
        if len(batch) > step:
            return np.concatenate(
                [self.infer_impl(batch[i : i + step]) for i in range(0, len(batch), step)]
            )
        assert self.memory is not None
        mem, ctx = self.memory, self.context
        n = len(batch)
        _, in_dtype, _ = self.io[self.input_name]
        host_in = np.ascontiguousarray(batch, dtype=in_dtype)
        mem.to_device(self._buffers[self.input_name], host_in)
        if self.named_api:
            ctx.set_input_shape(self.input_name, tuple(host_in.shape))
            for name, buf in self._buffers.items():
                ctx.set_tensor_address(name, mem.ptr(buf))
            if not ctx.execute_async_v3(mem.stream_handle()):
                raise ArtifactError("TensorRT execution failed", self.path)
            out_shape = tuple(ctx.get_tensor_shape(self.output_name))
        else:
            index = self.engine.get_binding_index(self.input_name)
            ctx.set_binding_shape(index, tuple(host_in.shape))
            bindings = [
                mem.ptr(self._buffers[self.engine.get_binding_name(i)])
                for i in range(self.engine.num_bindings)
            ]
            if not ctx.execute_async_v2(bindings=bindings, stream_handle=mem.stream_handle()):
                raise ArtifactError("TensorRT execution failed", self.path)
            out_shape = tuple(
                ctx.get_binding_shape(self.engine.get_binding_index(self.output_name))
            )
        _, out_dtype, _ = self.io[self.output_name]
        host_out = np.empty((n, *out_shape[1:]), dtype=out_dtype)
        mem.to_host(host_out, self._buffers[self.output_name])
        mem.synchronize()
        return host_out.astype(np.float32, copy=False)

    def deactivate_impl(self) -> None:
        if self.memory is not None:
            for buf in self._buffers.values():
                self.memory.free(buf)
        self._buffers = {}
        self.context = self.engine = None

    def describe(self) -> dict:
        built = self.info.extra["sidecar"].get("tensorrt") or {}
        return {
            **super().describe(),
            "device": self.device_name,
            "tensorrt": built.get("version"),
            "buffers": getattr(self.memory, "name", None),
        }
