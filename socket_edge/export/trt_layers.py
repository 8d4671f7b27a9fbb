"""Where a TensorRT network's layers run: the layers pinned to FP32 (by ONNX node name) and the
DLA core with its GPU fallback (socket_edge.export.tensorrt builds with them)."""

from __future__ import annotations

from typing import Any

from ..console import warn
from ..errors import SocketEdgeError


def pin_float_layers(trt: Any, network: Any, names: list[str]) -> list[str]:
    """Pin layers made from the ONNX nodes ``names`` (and their float outputs) to FP32."""
    wanted = set(names)
    if not wanted:
        return []
    pinned = []
    floats = (trt.float32, trt.float16)
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        node = _onnx_node(layer, wanted)
        if node is None:
            continue
        outputs = [layer.get_output(k) for k in range(layer.num_outputs)]
        if not outputs or any(o.dtype not in floats for o in outputs):
            continue  # shape arithmetic and constants: nothing to pin
        layer.precision = trt.float32
        for k in range(layer.num_outputs):
            layer.set_output_type(k, trt.float32)
        pinned.append(layer.name)
    return pinned


def _onnx_node(layer: Any, wanted: set[str]) -> str | None:
    """The ONNX node a TensorRT layer came from, if it is one of ``wanted``.

    The ONNX parser names layers after their node (adding a suffix when one node becomes
    several layers); TensorRT 8.6+ also keeps the node name in ``layer.metadata``.
    """
    if layer.name in wanted:
        return str(layer.name)
    meta = str(getattr(layer, "metadata", "") or "")
    for name in wanted:
        if name in meta or layer.name.startswith(name + "_"):
            return name
    return None


def use_dla(
    trt: Any, builder: Any, config: Any, network: Any, core: int | None, fp16: bool, int8: bool
) -> dict:
    """Put the network on DLA ``core`` (GPU fallback for what DLA cannot run); the placement."""
    cores = builder.num_DLA_cores
    if core is None or core >= cores:
        raise SocketEdgeError(
            f"dla_core {core}: this device has {cores} DLA "
            "core(s)" + (" (DLA exists on Jetson Xavier/Orin only)" if not cores else ""),
            settings=("dla_core",),
        )
    if not (fp16 or int8):
        raise SocketEdgeError(
            "DLA runs FP16 or INT8 only: add fp16 and/or int8", settings=("fp16", "int8")
        )
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = core
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    on_gpu = [
        network.get_layer(i).name
        for i in range(network.num_layers)
        if not config.can_run_on_DLA(network.get_layer(i))
    ]
    if on_gpu:
        warn(
            f"{len(on_gpu)} of {network.num_layers} layers fall back to the GPU "
            f"(e.g. {', '.join(on_gpu[:3])}); the sidecar lists them"
        )
    return {"core": core, "layers": network.num_layers, "gpu_fallback": on_gpu}
