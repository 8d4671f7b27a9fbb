"""Run under torchrun by test_distributed.py: `socket-edge adapt ARGS`, in which the process of
rank DIE_RANK (default 1) exits hard after epoch DIE_AFTER_EPOCH, as a crashed or killed one.
With DIE_WHEN_EXISTS=PATH it first waits for that file (e.g. rank 0's state file of the epoch).

    DIE_AFTER_EPOCH=1 torchrun --standalone --nproc-per-node 2 tests/torchrun_adapt.py ARGS
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import socket_edge.adapt.entry as entry
from socket_edge.cli.main import run


def main() -> None:
    die_after = int(os.environ.get("DIE_AFTER_EPOCH", "0"))
    die_rank = os.environ.get("DIE_RANK", "1")
    wait_for = os.environ.get("DIE_WHEN_EXISTS")
    adapt = entry.adapt

    def adapt_and_die(*args, callbacks=None, **kwargs):
        def die(epoch: int, record: dict) -> None:
            if epoch == die_after and os.environ.get("RANK") == die_rank:
                deadline = time.monotonic() + 120
                while wait_for and not Path(wait_for).exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                os._exit(9)

        return adapt(*args, callbacks=[*(callbacks or []), die], **kwargs)

    entry.adapt = adapt_and_die  # the CLI imports adapt when the command runs
    sys.argv = ["socket-edge", "adapt", *sys.argv[1:]]
    run()


if __name__ == "__main__":
    main()
