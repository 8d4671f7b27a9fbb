"""Readers, encodings, datasets and pairing: the data layer every stage stands on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from socket_edge.data.datasets import (
    LabelledFolder,
    PairedFolder,
    UnlabelledFolder,
    find_images,
    match_pairs,
)
from socket_edge.data.encoding import Encoding, build_encoder, default_encoding
from socket_edge.data.readers import read_depth, read_image, read_ir, read_rgb
from socket_edge.errors import DataError
from socket_edge.files import listing_digest


def save_png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


# ----------------------------------------------------------------------------- readers


def test_depth_16bit_round_trip_keeps_millimetres_and_missing(tmp_path):
    mm = np.array([[0, 400, 1234], [65535, 0, 5000]], dtype=np.uint16)
    out = read_depth(save_png(tmp_path / "d.png", mm))
    assert out.dtype == np.float32 and out.shape == (1, 2, 3)
    np.testing.assert_array_equal(out[0], mm.astype(np.float32))
    assert (out[0] == 0).sum() == 2  # missing readings stay 0


def test_depth_npy_metres_become_millimetres(tmp_path):
    m = np.array([[0.0, 1.5], [2.25, 0.4]], dtype=np.float32)
    np.save(tmp_path / "d.npy", m)
    np.testing.assert_allclose(read_depth(tmp_path / "d.npy")[0], m * 1000.0)
    np.save(tmp_path / "u.npy", np.array([[0, 1500]], dtype=np.uint16))
    np.testing.assert_array_equal(read_depth(tmp_path / "u.npy")[0], [[0, 1500]])


def test_depth_npy_with_nan_is_rejected(tmp_path):
    np.save(tmp_path / "d.npy", np.array([[np.nan, 1.0]], dtype=np.float32))
    with pytest.raises(DataError, match=r"d\.npy: 1 NaN/inf values"):
        read_depth(tmp_path / "d.npy")


def test_eight_bit_file_where_16_bit_depth_is_expected(tmp_path):
    path = save_png(tmp_path / "d8.png", np.full((4, 4), 100, np.uint8))
    with pytest.raises(DataError, match=r"d8\.png: 8-bit image where 16-bit depth"):
        read_depth(path)


def test_ir_8_and_16_bit_scale_to_unit_range(tmp_path):
    a8 = read_ir(save_png(tmp_path / "a.png", np.array([[0, 255]], np.uint8)))
    a16 = read_ir(save_png(tmp_path / "b.png", np.array([[0, 65535]], np.uint16)))
    np.testing.assert_allclose(a8[0], [[0.0, 1.0]])
    np.testing.assert_allclose(a16[0], [[0.0, 1.0]])
    np.save(tmp_path / "c.npy", np.array([[20.5, 30.0]], np.float32))  # e.g. degrees C
    np.testing.assert_allclose(read_ir(tmp_path / "c.npy")[0], [[20.5, 30.0]])


def test_ir_rejects_colour_images(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 200
    with pytest.raises(DataError, match="colour image where single-channel IR"):
        read_ir(save_png(tmp_path / "c.png", rgb))


def test_rgb_reader_and_16_bit_rejection(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    out = read_rgb(save_png(tmp_path / "x.png", rgb))
    assert out.shape == (3, 5, 6)
    np.testing.assert_allclose(out.transpose(1, 2, 0) * 255, rgb, atol=1e-4)
    with pytest.raises(DataError, match="16-bit image where an 8-bit RGB image is expected"):
        read_rgb(save_png(tmp_path / "y.png", np.zeros((4, 4), np.uint16)))


@pytest.mark.parametrize("modality", ["rgb", "depth", "ir"])
def test_corrupt_and_empty_files_name_the_file(tmp_path, modality):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.png: empty file \(0 bytes\)"):
        read_image(empty, modality)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DataError, match=r"corrupt\.png: not a readable image"):
        read_image(corrupt, modality)


# ----------------------------------------------------------------------------- encodings


def test_depth_encoding_normalises_valid_range_and_fills_missing():
    x = torch.tensor([[[[0.0, 1000.0], [2000.0, 3000.0]]]])
    enc = default_encoding("depth", mean=(0, 0, 0), std=(1, 1, 1))
    y = build_encoder(enc)(x)
    assert y.shape == (1, 3, 2, 2)
    # valid range [1000, 3000], inverted (near = bright); the missing pixel is filled with 0
    expected = torch.tensor([[0.0, 1.0], [0.5, 0.0]])
    for c in range(3):
        torch.testing.assert_close(y[0, c], expected)
    mean_fill = build_encoder(enc.replace(fill="mean"))(x)
    assert mean_fill[0, 0, 0, 0].item() == pytest.approx(0.5)


def test_fixed_range_and_jet_colormap():
    x = torch.tensor([[[[500.0, 2500.0, 4500.0, 9000.0]]]])
    enc = Encoding(
        "depth", range="fixed", lo=500, hi=4500, colormap="jet", mean=(0, 0, 0), std=(1, 1, 1)
    )
    y = build_encoder(enc)(x)[0, :, 0]  # (channel, pixel)
    # v = 0, 0.5, 1, 1 (clamped): jet runs dark blue -> green -> dark red
    torch.testing.assert_close(y[:, 0], torch.tensor([0.0, 0.0, 0.5]))
    torch.testing.assert_close(y[:, 1], torch.tensor([0.5, 1.0, 0.5]))
    torch.testing.assert_close(y[:, 2], torch.tensor([0.5, 0.0, 0.0]))
    torch.testing.assert_close(y[:, 3], y[:, 2])


def test_encoding_parameters_round_trip_and_reapply_bit_for_bit():
    enc = default_encoding("ir", colormap="jet", fill="mean")
    again = Encoding.from_dict(enc.to_dict())
    assert again == enc
    x = torch.rand(4, 1, 16, 16)
    a, b = build_encoder(enc)(x), build_encoder(again)(x)
    assert torch.equal(a, b)


def test_unknown_encoding_parameter_is_an_error():
    from socket_edge.errors import SocketEdgeError

    with pytest.raises(SocketEdgeError, match="unknown encoding parameters"):
        Encoding.from_dict({"modality": "depth", "gamma": 2.0})
    with pytest.raises(SocketEdgeError, match="hi > lo"):
        Encoding("depth", range="fixed", lo=5, hi=1)


# ----------------------------------------------------------------------------- datasets


def test_labelled_folder_needs_class_subfolders(tmp_path):
    save_png(tmp_path / "flat" / "a.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="labels come from class subfolders"):
        LabelledFolder(tmp_path / "flat", "rgb", 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no images found"):
        LabelledFolder(tmp_path / "empty", "rgb", 8)
    with pytest.raises(DataError, match="no such folder"):
        UnlabelledFolder(tmp_path / "missing", "rgb", 8)


def test_unlabelled_folder_accepts_flat_and_nested(tmp_path):
    for i, sub in enumerate(["", "a", "b/c"]):
        save_png(tmp_path / sub / f"{i}.png", np.full((10, 12), 1000 + i, np.uint16))
    ds = UnlabelledFolder(tmp_path, "depth", 8)
    assert len(ds) == 3
    x, idx = ds[2]
    assert x.shape == (1, 8, 8) and idx == 2


def test_pairs_are_matched_by_stem_not_listing_order(tmp_path):
    stems = ["b", "a", "c"]
    for k, s in enumerate(stems):
        save_png(tmp_path / "rgb" / f"{s}.png", np.full((4, 4, 3), 10 * k, np.uint8))
        save_png(tmp_path / "depth" / f"{s}.png", np.full((4, 4), 1000 * (k + 1), np.uint16))
    pairs = match_pairs(tmp_path, "depth")
    assert [p.stem for p in pairs] == ["a", "b", "c"]
    assert all(p.rgb.stem == p.target.stem for p in pairs)


def test_unmatched_stems_are_listed(tmp_path):
    for s in ["a", "b", "c"]:
        save_png(tmp_path / "rgb" / f"{s}.png", np.zeros((4, 4, 3), np.uint8))
    for s in ["a", "x"]:
        save_png(tmp_path / "ir" / f"{s}.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError) as err:
        match_pairs(tmp_path, "ir")
    msg = str(err.value)
    assert (
        "2 in rgb/ without a ir partner (b, c)" in msg
        and "1 in ir/ without an rgb partner (x)" in msg
    )
    with pytest.raises(DataError, match="no 'depth/' folder"):
        match_pairs(tmp_path, "depth")


def test_both_images_of_a_pair_get_the_same_crop_and_flip(tmp_path):
    # A bright marker at the same place in both modalities must stay at the same place.
    rng = np.random.default_rng(0)
    for i in range(6):
        r, c = rng.integers(4, 28, 2)
        rgb = np.zeros((32, 32, 3), np.uint8)
        rgb[r : r + 3, c : c + 2] = 255
        depth = np.full((32, 32), 3000, np.uint16)
        depth[r : r + 3, c : c + 2] = 1000
        save_png(tmp_path / "rgb" / f"p{i}.png", rgb)
        save_png(tmp_path / "depth" / f"p{i}.png", depth)
    ds = PairedFolder(tmp_path, "depth", 32, augment=True)
    flips = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            rgb, depth, _ = ds[i]
            rgb_marker = rgb[0] > 0.5
            depth_marker = (depth[0] > 0) & (depth[0] < 2000)
            assert rgb_marker.any()
            assert torch.equal(rgb_marker, depth_marker)
            flips.add(bool(rgb_marker.nonzero()[:, 1].float().mean() > 16))
    assert len(flips) == 2  # both flipped and unflipped draws happened


def test_augmentation_is_a_function_of_epoch_seed(tmp_path):
    for i in range(3):
        save_png(
            tmp_path / "k" / f"{i}.png",
            np.random.default_rng(i).integers(0, 255, (16, 16, 3), np.uint8),
        )
    ds = LabelledFolder(tmp_path, "rgb", 16, augment=True)
    ds.set_epoch(5)
    first = [ds[i][0] for i in range(3)]
    ds.set_epoch(6)
    ds.set_epoch(5)
    assert all(torch.equal(a, ds[i][0]) for i, a in enumerate(first))


def test_image_folders_follow_linked_class_folders_once(tmp_path):
    """A target folder whose class folders are symlinks (a subset linked, not copied) lists
    their images, as the labelled reader does; a link back up the tree is read once."""
    real = tmp_path / "real"
    for c in ("box", "ball"):
        (real / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((8, 8), 100 * i, np.uint16)).save(real / c / f"{i}.png")
    linked = tmp_path / "linked"
    linked.mkdir()
    for c in ("box", "ball"):
        (linked / c).symlink_to(real / c, target_is_directory=True)
    (linked / "ball" / ".hidden.png").write_bytes(b"")
    (real / "box" / "loop").symlink_to(linked, target_is_directory=True)  # a cycle
    found = find_images(linked)
    assert [p.relative_to(linked).as_posix() for p in found] == [
        "ball/0.png",
        "ball/1.png",
        "box/0.png",
        "box/1.png",
    ]
    assert len(UnlabelledFolder(linked, "depth", 8)) == 4
    assert listing_digest(linked) is not None
