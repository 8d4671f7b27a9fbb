"""Property-based tests: every reader and parser, fed random and mutated bytes, returns a value or
raises a socket-edge error (SocketEdgeError), never another exception.

Mutations start from valid files (a real 16-bit depth PNG, TIFF, .npy, calibration cache,
sidecar, TOML config, checkpoint) with bytes flipped, truncated, inserted, deleted or overwritten.
The "fuzz" profile is deterministic (derandomize) and bounded: FUZZ_EXAMPLES per parser.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# The sidecar reader under test.
from socket_edge.artifact import read_sidecar as read_sidecar_of
from socket_edge.errors import ArtifactError, SocketEdgeError

FUZZ_EXAMPLES = int(os.environ.get("SOCKET_EDGE_FUZZ_EXAMPLES", "200"))
settings.register_profile(
    "fuzz",
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
fuzz = settings.get_profile("fuzz")

# Examples run per test (benchmarks/reliability.py reads them from $SOCKET_EDGE_FUZZ_COUNTS): the
# properties run inside each test, where hypothesis' own statistics do not see them.
COUNTS: dict[str, int] = {}
CURRENT = [""]


@pytest.fixture(autouse=True)
def _count_examples(request):
    CURRENT[0] = request.node.name
    yield
    out = os.environ.get("SOCKET_EDGE_FUZZ_COUNTS")
    if out:
        Path(out).write_text(json.dumps(COUNTS, indent=1))


def counted() -> None:
    """Called first in every property: one more example of the running test."""
    COUNTS[CURRENT[0]] = COUNTS.get(CURRENT[0], 0) + 1


# ------------------------------------------------------------------------------ mutations


@st.composite
def mutated(draw, seed: bytes, max_ops: int = 4) -> bytes:
    """``seed`` with a few random edits: flip, overwrite, insert, delete, truncate."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(["flip", "overwrite", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "overwrite" and data:
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[pos : pos + len(chunk)] = chunk
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=32))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


def inputs(seed: bytes) -> st.SearchStrategy[bytes]:
    """Mutations of ``seed`` (mostly), and plain random bytes."""
    return st.one_of(mutated(seed), mutated(seed), mutated(seed), st.binary(max_size=512))


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def tiff_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="TIFF")
    return buf.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


_rng = np.random.default_rng(0)
DEPTH = _rng.integers(0, 5000, (12, 12)).astype(np.uint16)  # mm, with zeros (no reading)
SEEDS = {
    "depth.png": png_bytes(DEPTH),
    "depth.tiff": tiff_bytes(DEPTH),
    "depth.npy": npy_bytes(DEPTH.astype(np.float32) / 1000.0),
    "ir.png": png_bytes(_rng.integers(0, 255, (12, 12)).astype(np.uint8)),
    "rgb.png": png_bytes(_rng.integers(0, 255, (12, 12, 3)).astype(np.uint8)),
}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------------ image readers


@pytest.mark.parametrize(
    "name,modality",
    [
        ("depth.png", "depth"),
        ("depth.tiff", "depth"),
        ("depth.npy", "depth"),
        ("ir.png", "ir"),
        ("depth.npy", "ir"),
        ("rgb.png", "rgb"),
    ],
)
def test_image_readers(scratch, name, modality):
    from socket_edge.data.readers import read_image

    assert read_image(_write(scratch, name, SEEDS[name]), modality).dtype == np.float32

    @fuzz
    @given(inputs(SEEDS[name]))
    def check(data: bytes) -> None:
        counted()
        path = _write(scratch, name, data)
        try:
            arr = read_image(path, modality)
        except SocketEdgeError:
            return
        assert isinstance(arr, np.ndarray) and arr.dtype == np.float32 and arr.ndim == 3

    check()


# ------------------------------------------------------------------------------ sidecar


def _sidecar_seed() -> bytes:
    from socket_edge.artifact import make_sidecar
    from socket_edge.data.encoding import default_encoding

    meta = {
        "arch": "resnet18",
        "classes": ["a", "b"],
        "image_size": 64,
        "modality": "depth",
        "encoding": default_encoding("depth").to_dict(),
        "preprocess": {"image_size": 64, "interpolation": "nearest", "resize": 64},
    }
    doc = make_sidecar("model.onnx", "onnx", "fp32", meta)
    return json.dumps(doc, indent=2).encode()


def test_sidecar_reader(scratch):
    seed = _sidecar_seed()
    (scratch / "model.onnx").write_bytes(b"onnx")
    _write(scratch, "model.json", seed)
    assert read_sidecar_of(scratch / "model.onnx")["modality"] == "depth"

    @fuzz
    @given(inputs(seed))
    def check(data: bytes) -> None:
        counted()
        _write(scratch, "model.json", data)
        try:
            doc = read_sidecar_of(scratch / "model.onnx")
        except SocketEdgeError:
            return
        assert isinstance(doc, dict)

    check()


# ------------------------------------------------------------------------------ calibration cache


def test_calibration_cache_parser():
    from socket_edge.calibration.cache import format_cache, parse_cache

    seed = format_cache({"input": 5000.0, "/backbone/conv1/Conv_output_0": 3.25, "logits": 12.0})
    seed_bytes = seed.encode("ascii")
    assert parse_cache(seed_bytes).amax()["logits"] == pytest.approx(12.0)

    @fuzz
    @given(st.one_of(inputs(seed_bytes), st.text(max_size=200).map(str.encode)))
    def check(data: bytes) -> None:
        counted()
        try:
            cache = parse_cache(data)
        except SocketEdgeError:
            return
        assert all(isinstance(v, float) for v in cache.scales.values())
        cache.with_version("8.5.2")  # what the engine builder does with it

    check()


# ------------------------------------------------------------------------------ tegrastats


TEGRA_LINE = (
    "12-03-2026 01:02:03 RAM 2931/7620MB (lfb 2x4MB) SWAP 0/3810MB (cached 0MB) "
    "CPU [12%@1510,off,3%@1510,5%@1510] EMC_FREQ 3%@2133 GR3D_FREQ 45%@[611,611] "
    "CPU@47.5C SOC2@44.1C Tj@48.2C VDD_IN 5427mW/5427mW VDD_CPU_GPU_CV 1352mW/1352mW "
    "VDD_SOC 1592mW/1592mW"
)


def test_tegrastats_lines():
    from socket_edge.bench.tegrastats import parse_line, summarize

    assert parse_line(TEGRA_LINE).input_power() == (5427.0, "VDD_IN")

    @fuzz
    @given(
        st.one_of(
            mutated(TEGRA_LINE.encode()).map(lambda b: b.decode("utf-8", "replace")),
            st.text(max_size=300),
        )
    )
    def check(line: str) -> None:
        counted()
        try:
            sample = parse_line(line)
        except SocketEdgeError:
            return
        if sample is not None:
            sample.input_power()
            summarize([sample])

    check()


# ------------------------------------------------------------------------------ TOML config

TOML_SEED = b"""[train]
epochs = 2
lr = 0.05

[adapt]
method = "shot"
epochs = 3
bn-weight = 0.25

[export]
calib_size = 64
batch = [1, 8]
max_drop = 1.0
"""


def test_toml_config(scratch):
    from socket_edge.adapt import AdaptConfig
    from socket_edge.config import section
    from socket_edge.export.pipeline import ExportOptions
    from socket_edge.supervised import TrainConfig

    targets = {"adapt": AdaptConfig, "train": TrainConfig, "export": ExportOptions}
    path = _write(scratch, "team.toml", TOML_SEED)
    assert AdaptConfig(**section(path, "adapt", AdaptConfig)).bn_weight == 0.25

    @fuzz
    @given(inputs(TOML_SEED), st.sampled_from(sorted(targets)))
    def check(data: bytes, table: str) -> None:
        counted()
        _write(scratch, "team.toml", data)
        try:
            targets[table](**section(path, table, targets[table]))
        except SocketEdgeError:
            return

    check()


# ------------------------------------------------------------------------------ checkpoint


def _checkpoint_seed(folder: Path) -> bytes:
    """A real (small) socket-edge checkpoint file: the format, metadata and a state_dict."""
    import torch

    from socket_edge.data.encoding import default_encoding
    from socket_edge.models.checkpoint import make_meta, save_checkpoint

    torch.manual_seed(0)
    meta = make_meta("resnet18", ["a", "b"], 64, default_encoding("depth"), "adapted")
    path = folder / "seed.pt"
    save_checkpoint(path, torch.nn.Linear(3, 2), meta)
    return path.read_bytes()


def test_checkpoint_reader(scratch):
    from socket_edge.models.checkpoint import read_checkpoint

    seed = _checkpoint_seed(scratch)
    assert read_checkpoint(_write(scratch, "m.pt", seed))["meta"]["classes"] == ["a", "b"]

    @settings(fuzz, max_examples=max(20, FUZZ_EXAMPLES // 2))  # torch.load is the slow one
    @given(inputs(seed))
    def check(data: bytes) -> None:
        counted()
        path = _write(scratch, "m.pt", data)
        try:
            obj = read_checkpoint(path)
        except SocketEdgeError:
            return
        assert isinstance(obj["meta"], dict) and isinstance(obj["state_dict"], dict)

    check()


# ------------------------------------------------------------------------------ structured values
# Byte mutations rarely keep JSON/TOML/pickle-free torch files well-formed; these keep the syntax
# and put values of the wrong type or range where the readers expect others.

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def test_sidecar_with_wrong_values(scratch):
    doc = json.loads(_sidecar_seed())
    (scratch / "model.onnx").write_bytes(b"onnx")

    @fuzz
    @given(
        st.dictionaries(st.sampled_from(sorted(doc)), json_values, min_size=1, max_size=4),
        st.lists(st.sampled_from(sorted(doc)), max_size=2),
        json_values,
    )
    def check(changes: dict, removed: list, whole) -> None:
        counted()
        bad = {k: v for k, v in {**doc, **changes}.items() if k not in removed}
        for candidate in (bad, whole):
            _write(scratch, "model.json", json.dumps(candidate).encode())
            problem = _schema_problem(candidate)
            if problem is None:  # values the readers can use: read back as written
                assert read_sidecar_of(scratch / "model.onnx") == candidate
            else:  # refused with a one-line ArtifactError, never accepted
                with pytest.raises(ArtifactError) as refused:
                    read_sidecar_of(scratch / "model.onnx")
                assert "\n" not in str(refused.value), problem

    check()
    assert _schema_problem(doc) is None and _schema_problem({**doc, "classes": []}) == "classes"


def _schema_problem(doc) -> str | None:
    """What a reader of ``doc`` could not rely on (the schema of socket_edge.artifact, stated
    independently of its reader), or None."""
    from socket_edge.artifact import FORMAT, FORMAT_VERSION

    def integer(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return "format"
    version = doc.get("format_version", 0)
    if not integer(version) or version > FORMAT_VERSION:
        return "format_version"
    checks = {
        "classes": lambda v: isinstance(v, list) and v and all(isinstance(c, str) for c in v),
        "modality": lambda v: v in ("rgb", "depth", "ir"),
        "preprocess": lambda v: (
            isinstance(v, dict) and integer(v.get("image_size")) and v["image_size"] >= 1
        ),
        "encoding": lambda v: isinstance(v, dict),
        "precision": lambda v: isinstance(v, str),
    }
    for key, ok in checks.items():
        if key not in doc or not ok(doc[key]):
            return key
    return None


toml_scalars = (
    st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.lists(st.integers(-5, 100), max_size=3)
)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return (
            "nan"
            if v != v
            else ("inf" if v == float("inf") else "-inf" if v == -float("inf") else repr(v))
        )
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, str):
        return json.dumps(v)
    return str(v)


def test_toml_config_with_wrong_values(scratch):
    import dataclasses

    from socket_edge.adapt import AdaptConfig
    from socket_edge.config import section
    from socket_edge.export.pipeline import ExportOptions
    from socket_edge.supervised import TrainConfig

    targets = {"adapt": AdaptConfig, "train": TrainConfig, "export": ExportOptions}
    keys = {t: sorted(f.name for f in dataclasses.fields(c)) for t, c in targets.items()}
    path = scratch / "values.toml"

    @fuzz
    @given(st.sampled_from(sorted(targets)), st.data())
    def check(table: str, data) -> None:
        counted()
        chosen = data.draw(
            st.dictionaries(st.sampled_from(keys[table]), toml_scalars, min_size=1, max_size=4)
        )
        as_value = data.draw(st.booleans())  # the table itself given as a plain value
        if as_value:
            text = f"{table} = {_toml_value(data.draw(toml_scalars))}\n"
        else:
            text = f"[{table}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in chosen.items())
        path.write_text(text)
        try:
            targets[table](**section(path, table, targets[table]))
        except SocketEdgeError:
            return

    check()


def test_checkpoint_with_wrong_contents(scratch):
    import torch

    from socket_edge.models.checkpoint import FORMAT, read_checkpoint

    good = (
        torch.load(scratch / "seed.pt", weights_only=True)
        if (scratch / "seed.pt").exists()
        else None
    )
    if good is None:
        _checkpoint_seed(scratch)
        good = torch.load(scratch / "seed.pt", weights_only=True)
    tensors = st.builds(torch.zeros, st.integers(0, 3)) | st.just(torch.tensor([float("nan")]))
    values = json_values | tensors | st.dictionaries(st.text(max_size=4), tensors, max_size=2)
    path = scratch / "wrong.pt"

    @settings(fuzz, max_examples=max(20, FUZZ_EXAMPLES // 4))
    @given(
        st.dictionaries(
            st.sampled_from(["format", "format_version", "meta", "state_dict", "epoch"]),
            values,
            max_size=3,
        ),
        st.dictionaries(
            st.sampled_from(["arch", "classes", "image_size", "encoding", "modality"]),
            json_values,
            max_size=3,
        ),
    )
    def check(top: dict, meta: dict) -> None:
        counted()
        obj = {**good, "format": FORMAT, **top}
        if isinstance(obj.get("meta"), dict):
            obj["meta"] = {**obj["meta"], **meta}
        torch.save(obj, path)
        try:
            read_checkpoint(path)
        except SocketEdgeError:
            return

    check()
