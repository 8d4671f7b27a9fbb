"""socket-edge: SOCKET cross-modal adaptation (RGB -> depth/IR) and edge deployment.

Heavy libraries (torch, onnxruntime, TensorRT) are imported by the submodules that need them,
never here, so that ``import socket_edge`` and ``socket-edge --help`` stay fast.
"""

from ._version import __version__

__all__ = ["Classifier", "MODALITIES", "TARGET_MODALITIES", "__version__"]

MODALITIES = ("rgb", "depth", "ir")
TARGET_MODALITIES = ("depth", "ir")


def __getattr__(name: str):
    # socket_edge.Classifier without importing numpy and the runners on `import socket_edge`
    if name == "Classifier":
        from .classifier import Classifier

        return Classifier
    raise AttributeError(f"module 'socket_edge' has no attribute {name!r}")
