"""Write one script's section of benchmarks/RESULTS.md, leaving the other sections as they are.

Each benchmark script owns the text between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = (
    "# socket-edge benchmark results\n\n"
    "Every section below is written by the script it names; rerun the script to refresh it.\n"
    "Figures carry the machine and repeat counts they were measured with.\n"
)


def machine_line() -> str:
    """One line naming the machine: CPU model, cores and flags, Python and torch versions."""
    from socket_edge.doctor import cpu_flags, cpu_model

    parts = [
        f"CPU {cpu_model()}",
        f"{os.cpu_count()} cores",
        f"flags {cpu_flags()}",
        f"Python {platform.python_version()}",
    ]
    try:
        import torch

        parts.append(f"torch {torch.__version__}")
        if torch.cuda.is_available():
            parts.append(f"GPU {torch.cuda.get_device_name(0)}")
    except ImportError:
        pass
    return ", ".join(parts)


def update_section(name: str, markdown: str, path: Path = RESULTS) -> None:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{markdown.rstrip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + block + "\n"
    )
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
