"""Converters, part 2: NYU Depth v2 (.mat via h5py), DIML RGB-D and EPFL RGB-NIR fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from socket_edge.convert import ConvertOptions, convert
from socket_edge.data.readers import read_image
from socket_edge.errors import DataError

h5py = pytest.importorskip("h5py")

H, W = 20, 28


def rgb_frame(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def depth_frame(seed: int, holes: bool = True) -> np.ndarray:
    rng = np.random.default_rng(1000 + seed)
    mm = rng.integers(300, 7500, size=(H, W)).astype(np.uint16)
    if holes:
        mm[rng.random((H, W)) < 0.15] = 0
    return mm


# --- NYU Depth v2 ------------------------------------------------------------------------------

# (scene type, scene) per frame: scenes are videos, several frames each.
NYU_FRAMES = (
    [("bedroom", "bedroom_0001")] * 3
    + [("bedroom", "bedroom_0002")] * 2
    + [("kitchen", "kitchen_0001")] * 2
    + [("kitchen", "kitchen_0002")] * 2
    + [("kitchen", "kitchen_0003")]
    + [("study", "study_0001")] * 2
    + [("cafe", "cafe_0001")]
)


def _mat_strings(f, refs, key: str, values: list[str]) -> None:
    """A MATLAB v7.3 cell array of strings: object references to uint16 char arrays."""
    ds = f.create_dataset(key, (1, len(values)), dtype=h5py.ref_dtype)
    for i, v in enumerate(values):
        s = refs.create_dataset(f"{key}_{i}", data=np.array([[ord(c)] for c in v], np.uint16))
        s.attrs["MATLAB_class"] = np.bytes_("char")
        ds[0, i] = s.ref


def write_nyu(path: Path, frames=NYU_FRAMES, drop: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """A tiny nyu_depth_v2_labeled.mat in the real file's HDF5 layout (arrays transposed)."""
    rgb = np.stack([rgb_frame(i) for i in range(len(frames))])  # N H W 3
    raw = np.stack([depth_frame(i) for i in range(len(frames))])  # mm, 0 = missing
    filled = np.where(raw == 0, 2500, raw).astype(np.uint16)
    raw_m = (raw / 1000.0).astype(np.float32)
    raw_m[0, 0, 0] = np.nan  # a NaN reading becomes 0 (missing)
    with h5py.File(path, "w") as f:
        refs = f.create_group("#refs#")
        if "images" not in drop:
            f.create_dataset("images", data=rgb.transpose(0, 3, 2, 1))  # N 3 W H
        if "depths" not in drop:
            f.create_dataset("depths", data=(filled / 1000.0).astype(np.float32).transpose(0, 2, 1))
        if "rawDepths" not in drop:
            f.create_dataset("rawDepths", data=raw_m.transpose(0, 2, 1))
        if "sceneTypes" not in drop:
            _mat_strings(f, refs, "sceneTypes", [t for t, _ in frames])
        _mat_strings(f, refs, "scenes", [s for _, s in frames])
    raw = raw.copy()
    raw[0, 0, 0] = 0
    return {"rgb": rgb, "raw": raw, "filled": filled}


@pytest.fixture(scope="module")
def nyu_mat(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    path = tmp_path_factory.mktemp("nyu") / "nyu_depth_v2_labeled.mat"
    return path, write_nyu(path)


def test_nyu_converts_orientation_metres_and_classes(nyu_mat, tmp_path):
    path, truth = nyu_mat
    dst = tmp_path / "nyu"
    summary = convert("nyuv2", path.parent, dst, ConvertOptions(seed=3), show_progress=False)
    assert summary["task_classes"] == ["bedroom", "kitchen"]
    assert summary["ti_classes"] == ["cafe", "study"]
    assert summary["counts"]["paired"] == {"cafe": 1, "study": 2}
    assert summary["counts"]["task_frames"] == 10
    for i, (label, _) in enumerate(NYU_FRAMES):
        stem = f"nyu{i + 1:04d}"
        if label in ("study", "cafe"):
            rgb_file = dst / "paired" / "rgb" / f"{stem}.png"
            tgt_file = dst / "paired" / "depth" / f"{stem}.png"
        else:
            tgt_file = next(dst.glob(f"target/*/{label}/{stem}.png"))
            rgb_file = dst / "source_rgb" / tgt_file.parent.parent.name / label / f"{stem}.png"
        # H x W x 3 exactly as the frame was (h5py's N x 3 x W x H transposed back)
        assert np.array_equal(np.asarray(Image.open(rgb_file)), truth["rgb"][i])
        # raw depth: metres -> millimetres, 0 (and NaN) = no reading
        assert np.array_equal(read_image(tgt_file, "depth")[0], truth["raw"][i].astype(np.float32))
    assert json.loads((dst / "convert.json").read_text())["options"]["depth_key"] == "rawDepths"


def test_nyu_seeded_split_keeps_scenes_together(nyu_mat, tmp_path):
    path, _ = nyu_mat
    for seed in range(4):
        dst = tmp_path / f"s{seed}"
        convert("nyuv2", path, dst, ConvertOptions(seed=seed), show_progress=False)
        where = {p.stem: p.parent.parent.name for p in (dst / "target").rglob("*.png")}
        by_scene: dict[str, set[str]] = {}
        for i, (_, scene) in enumerate(NYU_FRAMES):
            if f"nyu{i + 1:04d}" in where:
                by_scene.setdefault(scene, set()).add(where[f"nyu{i + 1:04d}"])
        assert all(len(v) == 1 for v in by_scene.values())
        for label in ("bedroom", "kitchen"):  # both splits used for every class
            assert {where[p.stem] for p in (dst / "target").rglob(f"{label}/*.png")} == {
                "train",
                "test",
            }


def test_nyu_filled_depth_and_official_split(nyu_mat, tmp_path):
    path, truth = nyu_mat
    split = tmp_path / "splits.mat"
    with h5py.File(split, "w") as f:  # MATLAB v7.3: doubles, 1-based, column vectors
        f.create_dataset("trainNdxs", data=np.array([[1, 2, 3, 6, 7, 8, 11, 12, 13]], float).T)
        f.create_dataset("testNdxs", data=np.array([[4, 5, 9, 10]], float).T)
    dst = tmp_path / "nyu"
    summary = convert(
        "nyuv2", path, dst, ConvertOptions(), show_progress=False, depth="filled", split=split
    )
    assert summary["split"]["kind"] == "official"
    assert summary["counts"]["target"]["test"] == {"bedroom": 2, "kitchen": 2}
    assert summary["counts"]["target"]["train"] == {"bedroom": 3, "kitchen": 3}
    got = read_image(dst / "target" / "test" / "bedroom" / "nyu0004.png", "depth")[0]
    assert np.array_equal(got, truth["filled"][3].astype(np.float32)) and got.min() > 0


@pytest.mark.parametrize(
    "drop, depth, expected",
    [
        (("sceneTypes",), "raw", "missing HDF5 key 'sceneTypes'"),
        (("rawDepths",), "raw", "missing HDF5 key 'rawDepths' (depth filled reads 'depths')"),
        (("images",), "filled", "missing HDF5 key 'images'"),
    ],
)
def test_nyu_wrong_layout_names_the_missing_key(tmp_path, drop, depth, expected):
    path = tmp_path / "nyu_depth_v2_labeled.mat"
    write_nyu(path, drop=drop)
    with pytest.raises(DataError) as err:
        convert("nyuv2", path, tmp_path / "out", show_progress=False, depth=depth)
    msg = str(err.value)
    assert expected in msg and "NYU Depth v2 labelled layout" in msg and str(path) in msg


def test_nyu_not_hdf5(tmp_path):
    bad = tmp_path / "nyu_depth_v2_labeled.mat"
    bad.write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    with pytest.raises(DataError, match=r"not an HDF5 \(MATLAB v7.3\) file"):
        convert("nyuv2", bad, tmp_path / "out", show_progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no nyu_depth_v2_labeled.mat in this folder"):
        convert("nyuv2", empty, tmp_path / "o2", show_progress=False)


# --- DIML RGB-D --------------------------------------------------------------------------------

DIML_CLASSES = {"11. Bedroom": (3, 1), "12. Livingroom": (3, 1), "01_Warehouse": (2, 1)}


def make_diml(root: Path, resolution: str = "LR", official: bool = True) -> dict[str, np.ndarray]:
    truth = {}
    seed = 0
    for folder, (n_train, n_test) in DIML_CLASSES.items():
        for split, n in (("train", n_train), ("test", n_test)):
            base = root / split / resolution if official else root / resolution
            for i in range(n):
                seed += 1
                name = f"in_{seed:02d}_160217_1231{i:02d}"
                cls = base / folder
                (cls / "color").mkdir(parents=True, exist_ok=True)
                (cls / "depth_filled").mkdir(exist_ok=True)
                Image.fromarray(rgb_frame(seed)).save(cls / "color" / f"{name}_c.png")
                mm = depth_frame(seed, holes=False)
                Image.fromarray(mm).save(cls / "depth_filled" / f"{name}_depth_filled.png")
                truth[name] = mm
    return truth


def test_diml_official_split_and_ti_classes(tmp_path):
    truth = make_diml(tmp_path / "indoor")
    dst = tmp_path / "diml"
    summary = convert(
        "diml", tmp_path, dst, ConvertOptions(ti_classes=("warehouse",)), show_progress=False
    )
    assert summary["task_classes"] == ["bedroom", "livingroom"]
    assert summary["split"]["kind"] == "official"
    assert summary["counts"]["target"]["train"] == {"bedroom": 3, "livingroom": 3}
    assert summary["counts"]["target"]["test"] == {"bedroom": 1, "livingroom": 1}
    pairs = sorted(p.name for p in (dst / "paired" / "depth").iterdir())
    assert pairs == sorted(p.name for p in (dst / "paired" / "rgb").iterdir()) and len(pairs) == 3
    for p in dst.rglob("*.png"):
        if p.parent.name == "rgb" or "source_rgb" in p.parts:
            continue
        name = p.stem.split("-", 1)[1]
        assert np.array_equal(read_image(p, "depth")[0], truth[name].astype(np.float32))


def test_diml_without_ti_classes_warns(tmp_path, capsys):
    make_diml(tmp_path, official=False)
    summary = convert("diml", tmp_path, tmp_path / "out", show_progress=False)
    assert summary["task_classes"] == ["bedroom", "livingroom", "warehouse"]
    assert summary["split"]["kind"] == "seeded"
    assert not (tmp_path / "out" / "paired").exists()
    assert "--ti-classes" in capsys.readouterr().err


def test_diml_wrong_layout(tmp_path):
    make_diml(tmp_path)
    with pytest.raises(DataError, match=r"no HR/ folder \(found LR/; choose it with resolution"):
        convert("diml", tmp_path, tmp_path / "out", show_progress=False, resolution="HR")
    depth = sorted((tmp_path / "train" / "LR" / "11. Bedroom" / "depth_filled").iterdir())[0]
    depth.unlink()
    with pytest.raises(DataError) as err:
        convert("diml", tmp_path, tmp_path / "out", show_progress=False)
    name = depth.name.replace("_depth_filled.png", "_c.png")
    assert (
        f"DIML layout: colour frames without a depth_filled/<name>_depth_filled.png partner: "
        f"{name}" in str(err.value)
    )
    with pytest.raises(DataError, match="DIML RGB-D indoor layout"):
        convert(
            "diml", tmp_path / "train" / "LR" / "11. Bedroom", tmp_path / "o", show_progress=False
        )


# --- EPFL RGB-NIR ------------------------------------------------------------------------------

NIR_CLASSES = ("country", "field", "forest", "water")


def make_rgbnir(root: Path, per_class: int = 4) -> dict[str, np.ndarray]:
    truth = {}
    for c in NIR_CLASSES:
        folder = root / "nirscene1" / c
        folder.mkdir(parents=True)
        for i in range(1, per_class + 1):
            seed = 100 * NIR_CLASSES.index(c) + i
            Image.fromarray(rgb_frame(seed)).save(folder / f"{i:04d}_rgb.tiff")
            nir = np.random.default_rng(seed + 7).integers(0, 256, size=(H, W), dtype=np.uint8)
            if c == "field" and i == 1:  # some readers see NIR as three equal channels
                three = np.repeat(nir[..., None], 3, axis=2)
                Image.fromarray(three).save(folder / f"{i:04d}_nir.tiff")
            else:
                Image.fromarray(nir).save(folder / f"{i:04d}_nir.tiff")
            truth[f"{c}-{i:04d}"] = nir
    return truth


def test_rgbnir_default_split_and_values(tmp_path):
    truth = make_rgbnir(tmp_path / "src")
    dst = tmp_path / "nir"
    summary = convert("rgbnir", tmp_path / "src", dst, ConvertOptions(), show_progress=False)
    assert summary["modality"] == "ir"
    assert summary["task_classes"] == ["field", "forest"]
    assert summary["ti_classes"] == ["country", "water"]
    assert summary["counts"]["target"]["test"] == {"field": 1, "forest": 1}  # 20 % of 4
    assert sorted(p.name for p in (dst / "paired" / "ir").iterdir()) == sorted(
        p.name for p in (dst / "paired" / "rgb").iterdir()
    )
    assert len(list((dst / "paired" / "ir").iterdir())) == 8
    for p in list((dst / "target").rglob("*.png")) + list((dst / "paired" / "ir").iterdir()):
        assert Image.open(p).mode == "L"
        assert np.allclose(read_image(p, "ir")[0] * 255, truth[p.stem])


def test_rgbnir_wrong_layout(tmp_path):
    make_rgbnir(tmp_path)
    (tmp_path / "nirscene1" / "forest" / "0003_nir.tiff").unlink()
    with pytest.raises(DataError) as err:
        convert("rgbnir", tmp_path, tmp_path / "out", show_progress=False)
    msg = str(err.value)
    assert "unpaired files in the EPFL RGB-NIR layout" in msg
    assert "0003_rgb.tiff has no 0003_nir partner" in msg and "forest" in msg
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(DataError, match="not an EPFL RGB-NIR folder: expected"):
        convert("rgbnir", tmp_path / "elsewhere", tmp_path / "out", show_progress=False)


def test_rgbnir_colour_nir_is_refused(tmp_path):
    make_rgbnir(tmp_path, per_class=2)
    Image.fromarray(rgb_frame(5)).save(tmp_path / "nirscene1" / "water" / "0002_nir.tiff")
    with pytest.raises(DataError, match="colour image where the EPFL RGB-NIR layout has a single"):
        convert("rgbnir", tmp_path, tmp_path / "out", show_progress=False)


def test_cli_convert_rgbnir_json(cli, tmp_path):
    make_rgbnir(tmp_path / "src", per_class=3)
    res = cli(
        "convert",
        "rgbnir",
        str(tmp_path / "src"),
        str(tmp_path / "out"),
        "--ti-classes",
        "water",
        "--seed",
        "2",
        "--json",
        "-",
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["ti_classes"] == ["water"]
    assert summary["task_classes"] == ["country", "field", "forest"]
    assert summary == json.loads((tmp_path / "out" / "convert.json").read_text())
    res = cli("convert", "--help")
    assert res.returncode == 0
    assert all(d in res.stdout for d in ("sunrgbd", "nyuv2", "diml", "rgbnir"))
