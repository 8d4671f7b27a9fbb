"""The socket-edge command line (importable as ``socket_edge.cli``)."""
