"""`python -m socket_edge ...` (and `torchrun ... -m socket_edge adapt ...`): the CLI."""

from socket_edge.cli.main import run

if __name__ == "__main__":
    run()
