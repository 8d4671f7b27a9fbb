"""Imports run one way: the layers of docs/architecture.md hold (import-linter's contracts in
.importlinter), no import, at the top of a file or inside a function, closes a cycle, and heavy
third-party modules are imported inside the functions that need them.

Both look at the package as the wheel installs it (cli/ and calibration/ inside socket_edge/): a
copy laid out that way, since in a source checkout those folders sit beside socket_edge/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .test_wheel import PACKAGES, REPO


@pytest.fixture(scope="module")
def installed_layout(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    for folder, package in PACKAGES.items():
        shutil.copytree(REPO / folder, site / package, ignore=shutil.ignore_patterns("__pycache__"))
    return site


def test_import_linter_contracts_are_kept(installed_layout):
    code = (
        "import sys\nfrom importlinter.cli import lint_imports\n"
        f"sys.exit(lint_imports({str(REPO / '.importlinter')!r}, no_cache=True, no_logo=True))"
    )
    env = {**os.environ, "PYTHONPATH": str(installed_layout)}
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=installed_layout,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "Contracts: 4 kept, 0 broken." in r.stdout, r.stdout


def import_cycles(site: Path) -> list[list[str]]:
    """Groups of socket_edge modules that import each other, directly or through others
    (strongly connected components of grimp's graph, function-level imports included)."""
    code = """
import json, sys
import grimp
graph = grimp.build_graph("socket_edge", cache_dir=None)
edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
print(json.dumps(edges))
"""
    env = {**os.environ, "PYTHONPATH": str(site)}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=site, env=env
    )
    assert r.returncode == 0, r.stderr[-2000:]
    edges: dict[str, list[str]] = json.loads(r.stdout)
    assert "socket_edge.cli.main" in edges and "socket_edge.data.readers" in edges
    # Tarjan's algorithm, iterative
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges.get(child, []))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def test_no_import_closes_a_cycle(installed_layout):
    assert import_cycles(installed_layout) == []
    # the check finds one: socket_edge.outputs importing socket_edge.artifact back
    broken = installed_layout.parent / "broken"
    shutil.copytree(installed_layout, broken)
    with open(broken / "socket_edge" / "outputs.py", "a") as f:
        f.write("\n\ndef _back():\n    from .artifact import verify_artifact\n")
    cycles = import_cycles(broken)
    assert any({"socket_edge.artifact.verify", "socket_edge.outputs"} <= set(g) for g in cycles)


HEAVY = {
    "torch",
    "torchvision",
    "onnx",
    "onnxruntime",
    "tensorrt",
    "polygraphy",
    "matplotlib",
    "h5py",
}
# torch-only modules that inference never reaches (docs/architecture.md, "Layers")
TORCH_ONLY = {"socket_edge/models/network.py", "socket_edge/distributed.py"}


def test_heavy_modules_are_imported_lazily():
    """No module imports torch, ONNX, ONNX Runtime, TensorRT, Polygraphy, matplotlib or h5py at
    its top level, except the torch-only ones training alone reaches (models/network.py,
    distributed.py, adapt/)."""
    import ast

    found = []
    for folder, package in PACKAGES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            name = f"{package}/{path.relative_to(REPO / folder).as_posix()}"
            if name in TORCH_ONLY or name.startswith("socket_edge/adapt/"):
                continue
            for node in ast.parse(path.read_text(), str(path)).body:  # the top level only
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                found += [f"{name}:{node.lineno} {n}" for n in names if n.split(".")[0] in HEAVY]
    assert not found
