"""SOCKET adaptation (and the SHOT / source-only baselines)."""

from .config import METHODS, AdaptConfig, load_config

__all__ = ["METHODS", "AdaptConfig", "adapt", "load_config"]


def __getattr__(name: str):
    # The loop imports torch; keep `import socket_edge.adapt` light for the CLI.
    if name == "adapt":
        from .entry import adapt

        return adapt
    raise AttributeError(name)
