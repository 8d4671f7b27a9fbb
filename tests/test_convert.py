"""Converters, part 1: the shared machinery and SUN RGB-D (tiny fixtures built on the fly)."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from socket_edge.convert import ConvertOptions, convert
from socket_edge.convert.common import Sample, class_name
from socket_edge.convert.select import seeded_split
from socket_edge.convert.sunrgbd import decode_depth, encode_depth
from socket_edge.data.readers import read_image
from socket_edge.errors import DataError

H, W = 24, 32


def depth_mm(seed: int) -> np.ndarray:
    """A depth frame in mm with some missing readings (0) and values up to 7.5 m."""
    rng = np.random.default_rng(seed)
    mm = rng.integers(400, 7500, size=(H, W)).astype(np.uint16)
    mm[rng.random((H, W)) < 0.1] = 0
    return mm


def colour(seed: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(seed)
    return tuple(int(v) for v in rng.integers(20, 235, size=3))


# Sensor -> class -> frames. bedroom and office are in all four sensors (task); kitchen and lab
# are not (task-irrelevant).
SUN_SPEC = {
    "kv1": {"bedroom": 3, "office": 3, "kitchen": 2},
    "kv2": {"bedroom": 3, "office": 3, "kitchen": 2},
    "realsense": {"bedroom": 3, "office": 3},
    "xtion": {"bedroom": 3, "office": 3, "lab": 2},
}


def make_scene(folder: Path, label: str, seed: int) -> np.ndarray:
    """One SUN RGB-D scene folder; returns its depth in mm."""
    name = folder.name
    (folder / "image").mkdir(parents=True)
    (folder / "depth").mkdir()
    (folder / "depth_bfx").mkdir()
    Image.new("RGB", (W, H), colour(seed)).save(folder / "image" / f"{name}.jpg", quality=95)
    mm = depth_mm(seed)
    Image.fromarray(encode_depth(mm)).save(folder / "depth" / f"{name}.png")
    filled = np.where(mm == 0, 1000, mm).astype(np.uint16)
    Image.fromarray(encode_depth(filled)).save(folder / "depth_bfx" / f"{name}.png")
    (folder / "scene.txt").write_text(label + "\n")
    (folder / "intrinsics.txt").write_text("500 0 16\n0 500 12\n0 0 1\n")
    return mm


def make_sun(root: Path, spec=SUN_SPEC) -> dict[str, np.ndarray]:
    """SUNRGBD/<sensor>/<subset>/<scene>/ (xtion nested deeper, as in the real release)."""
    depths = {}
    seed = 0
    for sensor, classes in spec.items():
        for label, n in classes.items():
            for i in range(n):
                seed += 1
                if sensor == "xtion":
                    rel = f"xtion/sun3ddata/bldg_{label}/seq{i}/{i:07d}"
                else:
                    rel = f"{sensor}/data_{sensor}/{label}_{i:04d}"
                depths[rel] = make_scene(root / "SUNRGBD" / rel, label, seed)
    return depths


@pytest.fixture(scope="module")
def sun_src(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("sun_src")
    return root, make_sun(root)


@pytest.fixture(scope="module")
def sun_out(sun_src, tmp_path_factory) -> tuple[Path, dict]:
    dst = tmp_path_factory.mktemp("sun_out") / "data"
    summary = convert("sunrgbd", sun_src[0], dst, ConvertOptions(seed=0), show_progress=False)
    return dst, summary


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# --- SUN RGB-D ---------------------------------------------------------------------------------


def test_sun_depth_bit_rotation():
    mm = np.array([0, 1, 500, 1234, 7999, 8000], dtype=np.uint16)
    assert np.array_equal(decode_depth(mm << 3), mm)  # how SUN RGB-D stores real readings
    assert np.array_equal(decode_depth(encode_depth(mm), None), mm)
    assert decode_depth(np.array([8191 << 3], dtype=np.uint16), None).tolist() == [8191]
    # Low bits rotate to the top (the toolbox's bitor of both shifts), then the 8 m clip applies.
    raw = np.array([(1000 << 3) | 1, (1000 << 3) | 5], dtype=np.uint16)
    assert decode_depth(raw, None).tolist() == [1000 + 8192, 1000 + 5 * 8192]
    assert decode_depth(raw).tolist() == [8000, 8000]


def test_sun_classes_follow_the_socket_protocol(sun_out):
    dst, summary = sun_out
    assert summary["task_classes"] == ["bedroom", "office"]  # present for all four sensors
    assert summary["ti_classes"] == ["kitchen", "lab"]
    assert summary["modality"] == "depth"
    assert summary["split"]["kind"] == "seeded"
    counts = summary["counts"]["target"]
    for c in ("bedroom", "office"):  # 3 frames x 4 sensors; 20 % of 12 -> 2 test frames
        assert counts["train"][c] == 10 and counts["test"][c] == 2
        assert len(files(dst / "target" / "train" / c)) == 10
        assert len(files(dst / "target" / "test" / c)) == 2
        assert files(dst / "source_rgb" / "train" / c) == files(dst / "target" / "train" / c)
    assert summary["counts"]["paired"] == {"kitchen": 4, "lab": 2}
    assert not (dst / "target" / "train" / "kitchen").exists()
    on_disk = json.loads((dst / "convert.json").read_text())
    assert on_disk == summary
    assert set(on_disk["classes_per_sensor"]) == {"kv1", "kv2", "realsense", "xtion"}


def test_sun_pixels_decoded_to_millimetres(sun_src, sun_out):
    src, depths = sun_src
    dst, _ = sun_out
    checked = 0
    for rel, mm in depths.items():
        stem = rel.replace("/", "-")
        hits = list(dst.glob(f"target/*/*/{stem}.png")) + list(dst.glob(f"paired/depth/{stem}.png"))
        assert len(hits) == 1, stem
        got = read_image(hits[0], "depth")
        assert got.shape == (1, H, W)
        assert np.array_equal(got[0], mm.astype(np.float32))  # exact mm, 0 stays 0
        checked += 1
    assert checked == len(depths)
    # RGB: 8-bit, 3 channels, the scene's colour (JPEG of a flat colour is near-exact).
    rel = "kv1/data_kv1/bedroom_0000"
    rgb = next(dst.glob(f"source_rgb/*/bedroom/{rel.replace('/', '-')}.png"))
    arr = read_image(rgb, "rgb")
    assert arr.shape == (3, H, W)
    seed = list(depths).index(rel) + 1
    assert np.allclose(arr.mean(axis=(1, 2)) * 255, colour(seed), atol=2)


def test_sun_pairs_match_by_stem(sun_out):
    dst, _ = sun_out
    rgb, depth = files(dst / "paired" / "rgb"), files(dst / "paired" / "depth")
    assert rgb == depth and len(rgb) == 6
    assert "xtion-sun3ddata-bldg_lab-seq0-0000000.png" in rgb
    for name in rgb:
        assert read_image(dst / "paired" / "rgb" / name, "rgb").shape == (3, H, W)
        assert read_image(dst / "paired" / "depth" / name, "depth").shape == (1, H, W)


def test_sun_output_plugs_into_the_datasets(sun_out):
    from socket_edge.data.datasets import LabelledFolder, match_pairs

    dst, summary = sun_out
    ds = LabelledFolder(dst / "target" / "train", "depth", 16)
    assert ds.classes == summary["task_classes"] and len(ds) == 20
    assert len(match_pairs(dst / "paired", "depth")) == 6


def test_sun_sensor_choice_keeps_ti_from_every_sensor(sun_src, tmp_path):
    summary = convert(
        "sunrgbd",
        sun_src[0] / "SUNRGBD",
        tmp_path / "kv2",
        ConvertOptions(),
        show_progress=False,
        sensors=("kv2",),
        depth="filled",
    )
    counts = summary["counts"]["target"]
    assert counts["train"]["bedroom"] + counts["test"]["bedroom"] == 3
    assert summary["counts"]["paired_frames"] == 6
    assert all(p.name.startswith("kv2-") for p in (tmp_path / "kv2" / "target").rglob("*.png"))
    # depth_bfx/ (filled) has no missing readings in this fixture
    some = next((tmp_path / "kv2" / "target").rglob("*.png"))
    assert read_image(some, "depth").min() > 0
    assert summary["options"]["depth_folder"] == "depth_bfx"


def test_sun_official_split_from_a_text_list(sun_src, tmp_path, capsys):
    src, depths = sun_src
    lines = []
    for rel in depths:
        if rel == "kv2/data_kv2/bedroom_0002":
            continue  # unlisted: left out
        kind = "test" if rel.startswith("kv1/") else "train"
        lines.append(f"{kind} /n/fs/sun3d/data/SUNRGBD/{rel}/")
    split = tmp_path / "split.txt"
    split.write_text("# official split\n" + "\n".join(lines) + "\n")
    summary = convert(
        "sunrgbd", src, tmp_path / "out", ConvertOptions(), show_progress=False, split=split
    )
    counts = summary["counts"]["target"]
    assert summary["split"]["kind"] == "official"
    assert counts["test"] == {"bedroom": 3, "office": 3}  # kv1's frames
    assert counts["train"] == {"bedroom": 8, "office": 9}  # one bedroom frame unlisted
    assert summary["split"]["unlisted"] == 1
    assert "frames in neither the train nor the test list: 1" in capsys.readouterr().err


def test_sun_task_classes_override(sun_src, tmp_path):
    summary = convert(
        "sunrgbd",
        sun_src[0],
        tmp_path / "o",
        ConvertOptions(task_classes=("bedroom",)),
        show_progress=False,
    )
    assert summary["task_classes"] == ["bedroom"]
    assert summary["ti_classes"] == ["kitchen", "lab", "office"]
    with pytest.raises(DataError, match="no images of class 'garage'"):
        convert(
            "sunrgbd",
            sun_src[0],
            tmp_path / "p",
            ConvertOptions(ti_classes=("garage",)),
            show_progress=False,
        )


@pytest.mark.parametrize(
    "breakage, expected",
    [
        ("scene.txt", "without scene.txt"),
        ("image", "without image/"),
        ("depth", "without depth/"),
    ],
)
def test_sun_wrong_layout_names_what_is_missing(tmp_path, breakage, expected):
    make_sun(tmp_path, {"kv1": {"bedroom": 2}})
    scene = tmp_path / "SUNRGBD" / "kv1" / "data_kv1" / "bedroom_0001"
    target = scene / breakage
    if target.is_dir():
        for p in target.iterdir():
            p.unlink()
        target.rmdir()
    else:
        target.unlink()
    with pytest.raises(DataError) as err:
        convert("sunrgbd", tmp_path, tmp_path / "out", show_progress=False)
    msg = str(err.value)
    assert expected in msg and "SUN RGB-D" in msg and str(scene) in msg
    assert "\n" not in msg
    assert not (tmp_path / "out").exists()  # nothing written before the layout checks pass


def test_sun_not_a_sun_folder(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError) as err:
        convert("sunrgbd", tmp_path, tmp_path / "out", show_progress=False)
    msg = str(err.value)
    assert "SUN RGB-D" in msg and "kv1, kv2, realsense, xtion" in msg and "images" in msg


def test_sun_only_some_sensors_warns(tmp_path, capsys):
    make_sun(tmp_path, {"kv2": {"bedroom": 2, "office": 2}})
    summary = convert("sunrgbd", tmp_path, tmp_path / "out", show_progress=False)
    assert summary["task_classes"] == ["bedroom", "office"]
    err = capsys.readouterr().err
    assert "only kv2 of the four SUN RGB-D sensors" in err
    assert "no task-irrelevant classes" in err


def test_cli_wrong_layout_is_one_line(cli, tmp_path):
    make_sun(tmp_path, {"kv1": {"bedroom": 1}})
    (tmp_path / "SUNRGBD" / "kv1" / "data_kv1" / "bedroom_0000" / "scene.txt").unlink()
    res = cli("convert", "sunrgbd", str(tmp_path), str(tmp_path / "out"))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "SUN RGB-D scene folder without scene.txt" in lines[0]
    assert "Traceback" not in res.stderr


# --- shared machinery --------------------------------------------------------------------------


def test_class_names():
    assert class_name("12. Livingroom") == "livingroom"
    assert class_name("01_Warehouse") == "warehouse"
    assert class_name(" Living Room ") == "living_room"
    assert class_name("home_office") == "home_office"


def _samples(n_per_class: dict[str, int], group_size: int = 1) -> list[Sample]:
    out = []
    for label, n in n_per_class.items():
        for i in range(n):
            out.append(
                Sample(
                    stem=f"{label}-{i}",
                    label=label,
                    load_rgb=partial(np.zeros, 1),
                    load_target=partial(np.zeros, 1),
                    origin="x",
                    group=f"{label}-g{i // group_size}",
                )
            )
    return out


def test_seeded_split_is_stratified_grouped_and_repeatable():
    samples = _samples({"a": 50, "b": 20, "c": 2}, group_size=2)
    s0 = seeded_split(samples, 0.2, seed=0)
    assert s0 == seeded_split(samples, 0.2, seed=0)
    assert s0 != seeded_split(samples, 0.2, seed=1)
    for label, n in (("a", 50), ("b", 20)):
        n_test = sum(1 for s in samples if s.label == label and s0[s.stem] == "test")
        assert n_test == round(n * 0.2)
    # a group never straddles train and test; a one-group class stays in train
    groups: dict[str, set[str]] = {}
    for s in samples:
        groups.setdefault(s.group, set()).add(s0[s.stem])
    assert all(len(v) == 1 for v in groups.values())
    assert {s0[s.stem] for s in samples if s.label == "c"} == {"train"}
    # adding a class does not reshuffle the others
    more = seeded_split(samples + _samples({"d": 10}), 0.2, seed=0)
    assert all(more[s.stem] == s0[s.stem] for s in samples)


def test_dst_must_be_empty_unless_force(sun_src, tmp_path):
    dst = tmp_path / "out"
    opts = ConvertOptions(max_per_class=2)
    convert("sunrgbd", sun_src[0], dst, opts, show_progress=False)
    with pytest.raises(DataError, match="not empty .*force"):
        convert("sunrgbd", sun_src[0], dst, opts, show_progress=False)
    stale = dst / "target" / "train" / "bedroom" / "stale.png"
    stale.write_bytes(b"x")
    summary = convert(
        "sunrgbd", sun_src[0], dst, ConvertOptions(max_per_class=2, force=True), show_progress=False
    )
    assert not stale.exists()
    assert summary["counts"]["task_frames"] == 4 and summary["counts"]["paired_frames"] == 4
    (dst / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="notes.txt"):
        convert("sunrgbd", sun_src[0], dst, ConvertOptions(force=True), show_progress=False)


def test_short_side_resizes_and_keeps_depth_values(sun_src, tmp_path):
    src, depths = sun_src
    convert(
        "sunrgbd",
        src,
        tmp_path / "o",
        ConvertOptions(short_side=12, workers=2),
        show_progress=False,
    )
    rel = next(iter(depths))
    hit = next((tmp_path / "o").rglob(f"{rel.replace('/', '-')}.png"))
    got = read_image(hit, "depth")
    assert got.shape == (1, 12, 16)
    # nearest neighbour: every value is one of the source's, no blends with 0
    assert set(np.unique(got).tolist()) <= set(np.unique(depths[rel]).tolist())
