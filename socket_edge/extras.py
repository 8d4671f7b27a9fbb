"""Which install provides a module: one line telling the user what to pip install.

The core install is the robot's (no torch, no ONNX Runtime); training, adaptation, checkpoint
export and .pt inference need the workstation extra, ONNX models an ONNX Runtime build.
"""

from __future__ import annotations

WORKSTATION = 'pip install "socket-edge[workstation]" (the workstation install: torch, torchvision)'
HINTS = {
    "torch": WORKSTATION,
    "torchvision": WORKSTATION,
    "onnxruntime": (
        'pip install "socket-edge[ort]" (CPU), or onnxruntime-gpu (on a Jetson: NVIDIA\'s build '
        "for your JetPack)"
    ),
    "polygraphy": 'pip install "socket-edge[trt]" (Polygraphy; TensorRT itself comes from JetPack)',
    "tensorrt": "TensorRT comes from JetPack (python3-libnvinfer) or `pip install tensorrt` on x86",
    "matplotlib": 'pip install "socket-edge[plot]"',
    "h5py": 'pip install "socket-edge[convert]"',
    "rosbags": 'pip install "socket-edge[ros]" (rosbags: ROS 1/2 bags and mcap, no ROS install)',
}


def missing_module_hint(exc: BaseException) -> str | None:
    """'this needs X, which is not installed here: pip install ...' for a known missing module."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.split(".")[0]
    hint = HINTS.get(top)
    return f"this needs {top}, which is not installed here: {hint}" if hint else None
