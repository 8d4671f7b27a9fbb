"""socket-edge: SOCKET cross-modal adaptation (RGB -> depth/IR) and edge deployment.

Heavy libraries (torch, onnxruntime, TensorRT) are imported by the submodules that need them,
never here, so that ``import socket_edge`` and ``socket-edge --help`` stay fast.
"""

__version__ = "0.1.0"

MODALITIES = ("rgb", "depth", "ir")
TARGET_MODALITIES = ("depth", "ir")
