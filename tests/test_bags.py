"""Robot recordings as a data source: real ROS 2 (mcap, sqlite3) and ROS 1 bags written with
rosbags' own writers (tests/bagfiles.py), read back through socket_edge.data.bags and compared
with the folder path on the same frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags")

from socket_edge.data import bags  # noqa: E402
from socket_edge.data.readers import read_image  # noqa: E402
from socket_edge.errors import BagError  # noqa: E402

from . import bagfiles as bf  # noqa: E402
from .helpers import assert_one_line_error  # noqa: E402

N = 6
KINDS = ["mcap", "sqlite3", "ros1"]


def _path(tmp: Path, kind: str, name: str = "rec") -> Path:
    return tmp / (f"{name}.bag" if kind == "ros1" else f"{name}-{kind}")


def _encoding_topics(fr: dict, st: list[int]):
    """topic -> (modality, messages, the stored-form arrays a reader must give back)."""
    d, m, ir, rgb = fr["depth"], fr["metres"], fr["ir"], fr["rgb"]
    ir8 = [(a >> 6).astype(np.uint8) for a in ir]
    rgba = [np.dstack([a, np.full(a.shape[:2], 200, np.uint8)]) for a in rgb]
    jpeg = [bf.jpeg_bytes(a) for a in rgb]
    return {
        "/d16": ("depth", [bf.raw(s, a, "16UC1") for s, a in zip(st, d, strict=True)], d),
        "/d16_pad": (
            "depth",
            [bf.raw(s, a, "16UC1", pad=6) for s, a in zip(st, d, strict=True)],
            d,
        ),
        "/d16_be": (
            "depth",
            [bf.raw(s, a, "16UC1", big=True) for s, a in zip(st, d, strict=True)],
            d,
        ),
        "/d32": (
            "depth",
            [bf.raw(s, a, "32FC1", pad=4) for s, a in zip(st, m, strict=True)],
            [bags._depth_mm(a) for a in m],
        ),
        "/d32_be": (
            "depth",
            [bf.raw(s, a, "32FC1", big=True) for s, a in zip(st, m, strict=True)],
            [bags._depth_mm(a) for a in m],
        ),
        "/ir16": ("ir", [bf.raw(s, a, "mono16") for s, a in zip(st, ir, strict=True)], ir),
        "/ir16_be": (
            "ir",
            [bf.raw(s, a, "mono16", pad=2, big=True) for s, a in zip(st, ir, strict=True)],
            ir,
        ),
        "/ir8": ("ir", [bf.raw(s, a, "mono8", pad=3) for s, a in zip(st, ir8, strict=True)], ir8),
        "/rgb8": ("rgb", [bf.raw(s, a, "rgb8") for s, a in zip(st, rgb, strict=True)], rgb),
        "/bgr8": (
            "rgb",
            [bf.raw(s, a[..., ::-1], "bgr8", pad=5) for s, a in zip(st, rgb, strict=True)],
            rgb,
        ),
        "/rgba8": ("rgb", [bf.raw(s, a, "rgba8") for s, a in zip(st, rgba, strict=True)], rgb),
        "/bgra8": (
            "rgb",
            [bf.raw(s, a[..., [2, 1, 0, 3]], "bgra8") for s, a in zip(st, rgba, strict=True)],
            rgb,
        ),
        "/mono8_rgb": (
            "rgb",
            [bf.raw(s, a, "mono8") for s, a in zip(st, ir8, strict=True)],
            [np.repeat(a[..., None], 3, 2) for a in ir8],
        ),
        "/rgb_png": (
            "rgb",
            [
                bf.compressed(s, bf.png_bytes(a), "bgr8; png compressed bgr8")
                for s, a in zip(st, rgb, strict=True)
            ],
            rgb,
        ),
        "/rgb_jpeg": (
            "rgb",
            [
                bf.compressed(s, b, "bgr8; jpeg compressed bgr8")
                for s, b in zip(st, jpeg, strict=True)
            ],
            [_pil_rgb(b) for b in jpeg],
        ),
        "/d_png": (
            "depth",
            [bf.compressed(s, bf.png_bytes(a), "png") for s, a in zip(st, d, strict=True)],
            d,
        ),
        "/ir_png": (
            "ir",
            [bf.compressed(s, bf.png_bytes(a), "png") for s, a in zip(st, ir, strict=True)],
            ir,
        ),
        "/d_cd16": ("depth", [bf.compressed_depth_16(s, a) for s, a in zip(st, d, strict=True)], d),
        "/d_cd32": (
            "depth",
            [bf.compressed_depth_32(s, a) for s, a in zip(st, m, strict=True)],
            [bf.inverse_depth_mm(a) for a in m],
        ),
    }


def _pil_rgb(data: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="module")
def encodings_bags(tmp_path_factory):
    """One bag of each kind holding every encoding, compressed and not, 6 frames at 30 Hz."""
    tmp = tmp_path_factory.mktemp("enc")
    fr, st = bf.rendered(N), bf.stamps(N)
    topics = _encoding_topics(fr, st)
    out = {}
    for kind in KINDS:
        path = _path(tmp, kind)
        bf.write_bag(path, {t: v[1] for t, v in topics.items()}, kind, other={"/status": 4})
        out[kind] = path
    return out, topics


@pytest.mark.parametrize("kind", KINDS)
def test_every_encoding_reads_as_the_folder_path_reads_its_extracted_png(
    encodings_bags, kind, tmp_path
):
    paths, topics = encodings_bags
    path = paths[kind]
    for topic, (modality, _, expected) in topics.items():
        with bags.Bag(path) as bag:
            frames = list(bag.frames(topic, modality))
        assert [f.index for f in frames] == list(range(N))
        for f, want in zip(frames, expected, strict=True):
            assert f.array.dtype == want.dtype and np.array_equal(f.array, want), topic
        out = tmp_path / topic.strip("/")
        result = bags.extract(bags.BagTopic(path, topic), out, modality)
        assert result.frames == N
        files = sorted(out.glob("*.png"))
        assert [p.stem for p in files] == [f"{k:06d}" for k in range(N)]
        for f, p in zip(frames, files, strict=True):
            via_folder = read_image(p, modality)
            via_bag = bags.canonical(f.array, modality)
            assert via_bag.dtype == via_folder.dtype == np.float32
            assert np.array_equal(via_bag, via_folder), (topic, p)


def test_depth_units_and_missing_readings(encodings_bags):
    paths, topics = encodings_bags
    with bags.Bag(paths["mcap"]) as bag:
        d32 = next(bag.frames("/d32", "depth")).array
        cd32 = next(bag.frames("/d_cd32", "depth")).array
    metres = topics["/d32"][1][0]
    m = bf.rendered(N)["metres"][0]
    assert metres is not None
    assert d32[0, 0] == 0 and (d32[np.isnan(m)] == 0).all()  # inf and NaN: no reading
    ok = np.isfinite(m)
    assert np.abs(d32[ok].astype(np.int64) - m[ok] * 1000).max() <= 0.5 + 1e-3  # mm, rounded
    # compressedDepth's inverse-depth quantisation: within its step at 1.5-3 m (a few mm)
    assert (cd32[np.isnan(m)] == 0).all()
    assert np.abs(cd32[ok].astype(np.int64) - m[ok] * 1000).max() < 40


def test_sampling_every_and_stride():
    st = bf.stamps(30, jitter_ms=3)
    assert bags.Sampling(every=10).select(st) == [0, 10, 20]
    kept = bags.Sampling(stride=0.2).select(st)
    assert all(st[b] - st[a] >= 200_000_000 for a, b in zip(kept, kept[1:], strict=False))
    assert len(kept) == 5  # 7 frames per 0.2 s at 30 Hz (jitter +-3 ms): 0, 7, 14, 21, 28
    assert bags.Sampling().select(st) == list(range(30))


def _pairs_bag(tmp: Path, kind: str, drop_rgb=(7,), drop_depth=(19, 20), n=30, offset_ms=4.0):
    fr = bf.rendered(n)
    rs = bf.stamps(n, jitter_ms=3, seed=1)
    ds = bf.stamps(n, jitter_ms=3, seed=2, offset_ns=int(offset_ms * 1e6))
    rgb = [
        bf.raw(s, a, "rgb8")
        for k, (s, a) in enumerate(zip(rs, fr["rgb"], strict=True))
        if k not in drop_rgb
    ]
    depth = [
        bf.raw(s, a, "16UC1")
        for k, (s, a) in enumerate(zip(ds, fr["depth"], strict=True))
        if k not in drop_depth
    ]
    path = _path(tmp, kind, "pairs")
    bf.write_bag(path, {"/color": rgb, "/depth": depth}, kind)
    return path, fr


@pytest.mark.parametrize("kind", ["mcap", "ros1"])
def test_pair_matcher_counts_are_exact_with_drops_and_jitter(tmp_path, kind):
    path, fr = _pairs_bag(tmp_path, kind)
    data = bags.PairedBag(bags.BagPairs(path, "/color", "/depth"), "depth", 64)
    m = data.matching
    # 30 frames each; RGB lost frame 7, depth lost 19 and 20: 27 true pairs, nothing guessed.
    assert len(m.pairs) == 27 and m.unmatched_rgb == 2 and m.unmatched_target == 1
    assert len(data) == 27
    assert 15_000_000 < m.tolerance_ns < 18_000_000  # half of 33.3 ms, from the stamps
    for pair in data.pairs:  # each pair is the same scene: stems name the depth frame's position
        k = int(pair.target.rsplit("#", 1)[1])
        depth_index = k
        true_index = depth_index + (2 if depth_index >= 19 else 0)
        rgb_k = int(pair.rgb.rsplit("#", 1)[1])
        true_rgb = rgb_k + (1 if rgb_k >= 7 else 0)
        assert true_index == true_rgb
    # sampled pairs: every 5th of the 27
    sampled = bags.PairedBag(bags.BagPairs(path, "/color", "/depth", sampling=bags.Sampling(5)),
                             "depth", 64)  # fmt: skip
    assert len(sampled) == 6
    # a tolerance tighter than the offset between the cameras (4 ms +- 6 ms) loses pairs
    tight = bags.match_stamps(
        *(
            [h.stamp for h in bags.Bag(path).__enter__().headers(t)]  # noqa: PLC2801
            for t in ("/color", "/depth")
        ),
        tolerance_ns=1_000_000,
    )
    assert len(tight.pairs) < 27


def test_match_stamps_is_one_to_one_and_mutual():
    m = bags.match_stamps([0, 100, 200, 300], [5, 95, 110, 400], 20)
    assert m.pairs == [(0, 0), (1, 1)]  # 110 is nearest 100, but 95 is nearer still
    assert (m.unmatched_rgb, m.unmatched_target) == (2, 2)
    assert bags.match_stamps([], [1, 2], 5).pairs == []


# ---------------------------------------------------------------------------------------------
# Bad input: one line naming the bag and the topic; nothing written


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    fr, st = bf.rendered(4), bf.stamps(4)
    d = fr["depth"][0]
    topics = {
        "/depth": [bf.raw(s, a, "16UC1") for s, a in zip(st, fr["depth"], strict=True)],
        "/color": [
            bf.raw(s + 400_000_000_000, a, "rgb8") for s, a in zip(st, fr["rgb"], strict=True)
        ],
        "/yuv": [bf.raw(st[0], np.zeros((8, 16), np.uint8), "yuv422")],
        "/short": [
            bf.Msg(st[0], "Image", {**bf.raw(st[0], d, "16UC1").fields, "step": 2 * 64 + 2})
        ],
        "/jpeg_depth": [bf.compressed(st[0], bf.jpeg_bytes((d >> 8).astype(np.uint8)), "jpeg")],
    }
    out = {}
    for kind in ("mcap", "ros1"):
        out[kind] = bf.write_bag(_path(tmp, kind, "small"), topics, kind, other={"/status": 2})
    return out


@pytest.mark.parametrize(
    "topic, modality, fragments",
    [
        ("/nope", "depth", ["no topic /nope", "/depth (Image, 4)", "/color (Image, 4)"]),
        ("/status", "depth", ["topic /status holds std_msgs/msg/String", "/depth (Image, 4)"]),
        ("/yuv", "depth", ["topic /yuv, message 0", "unsupported encoding 'yuv422'"]),
        ("/color", "depth", ["topic /color", "encoding 'rgb8' is not depth"]),
        ("/short", "depth", ["topic /short", "step 130", "the message holds 8192"]),
        ("/jpeg_depth", "depth", ["topic /jpeg_depth", "where 16-bit depth in mm is expected"]),
    ],
)
def test_bad_topics_are_one_line_errors_and_write_nothing(
    cli, small_bag, tmp_path, topic, modality, fragments
):
    bag = small_bag["mcap"]
    with pytest.raises(BagError) as err, bags.Bag(bag) as b:
        list(b.frames(topic, modality))
    assert str(bag) in str(err.value)
    out = tmp_path / "out"
    r = cli("data", "extract", str(bag), str(out), "--topic", topic, "--modality", modality)
    assert_one_line_error(r, str(bag), *fragments)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bad_bags_are_one_line_errors(cli, small_bag, tmp_path):
    missing = tmp_path / "nothere.mcap"
    r = cli("data", "extract", str(missing), str(tmp_path / "o"), "--topic", "/d", "--modality",
            "depth")  # fmt: skip
    assert_one_line_error(r, str(missing), "no such bag")
    for kind, bag in small_bag.items():
        data = bag.read_bytes() if bag.is_file() else next(bag.glob("*.mcap")).read_bytes()
        cut = tmp_path / (f"cut-{kind}.bag" if kind == "ros1" else f"cut-{kind}.mcap")
        cut.write_bytes(data[: len(data) // 2])
        r = cli("data", "extract", str(cut), str(tmp_path / "o"), "--topic", "/depth",
                "--modality", "depth")  # fmt: skip
        assert_one_line_error(r, str(cut), "not a readable bag, corrupt or truncated")
        junk = tmp_path / (f"junk-{kind}.bag" if kind == "ros1" else f"junk-{kind}.db3")
        junk.write_bytes(b"not a bag at all" * 10)
        r = cli("data", "extract", str(junk), str(tmp_path / "o"), "--topic", "/depth",
                "--modality", "depth")  # fmt: skip
        assert_one_line_error(r, str(junk), "not a readable bag")
    assert not (tmp_path / "o").exists()


def test_pairs_without_a_match_are_an_error(cli, small_bag, tmp_path):
    bag = small_bag["ros1"]  # /color is stamped 400 s after /depth
    out = tmp_path / "pairs"
    r = cli("data", "extract", str(bag), str(out), "--pair-topics", "/color,/depth",
            "--modality", "depth")  # fmt: skip
    assert_one_line_error(r, str(bag), "/color and /depth: no frames within --tolerance")
    assert not out.exists()


def test_topic_needed_for_a_bag_and_refused_for_a_folder(cli, small_bag, tmp_path):
    from socket_edge.errors import SocketEdgeError

    with pytest.raises(BagError, match=r"topic names the image topic .*/depth \(Image, 4\)"):
        bags.source(small_bag["mcap"], None)
    with pytest.raises(SocketEdgeError, match="is for bags"):
        bags.source(tmp_path, "/depth")


def test_extract_writes_pairs_and_reports_counts(cli, tmp_path):
    path, fr = _pairs_bag(tmp_path, "sqlite3")
    out = tmp_path / "ti"
    r = cli("data", "extract", str(path), str(out), "--pair-topics", "/color,/depth",
            "--modality", "depth", "--every", "2", "--json", "-")  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["pairs"], doc["unmatched_rgb"], doc["unmatched_target"]) == (27, 2, 1)
    assert doc["frames"] == 14
    rgb, depth = sorted((out / "rgb").iterdir()), sorted((out / "depth").iterdir())
    assert [p.name for p in rgb] == [p.name for p in depth] and len(rgb) == 14
    # a pair holds one scene: the depth frame's own RGB partner
    k = int(depth[-1].stem)
    true = k + (2 if k >= 19 else 0)
    assert np.array_equal(read_image(depth[-1], "depth")[0], fr["depth"][true].astype(np.float32))
    assert np.array_equal(
        (read_image(rgb[-1], "rgb") * 255).round().astype(np.uint8).transpose(1, 2, 0),
        fr["rgb"][true],
    )
    r = cli("data", "extract", str(path), str(out), "--topic", "/depth", "--modality", "depth")
    assert_one_line_error(r, str(out), "not an empty folder")


# ---------------------------------------------------------------------------------------------
# The pipeline on a bag gives what it gives on the extracted folder


@pytest.fixture(scope="module")
def robot_bag(synth_root, tmp_path_factory):
    """A ROS 2 mcap recording of the built-in benchmark: the depth target frames on
    /camera/depth_target, the TI pairs on /camera/color + /camera/depth (30 Hz, jittered, the
    depth camera 4 ms behind), and a status topic."""
    from PIL import Image

    paired = synth_root / "depth" / "paired"
    stems = sorted(p.stem for p in (paired / "rgb").glob("*.png"))
    rgb = [np.asarray(Image.open(paired / "rgb" / f"{s}.png").convert("RGB")) for s in stems]
    depth = [np.asarray(Image.open(paired / "depth" / f"{s}.png")) for s in stems]
    target = [
        np.asarray(Image.open(p)) for p in sorted((synth_root / "depth" / "target").rglob("*.png"))
    ]
    n = len(stems)
    rs, ds = bf.stamps(n, seed=3), bf.stamps(n, seed=4, offset_ns=4_000_000)
    ts = bf.stamps(len(target), seed=5, offset_ns=n * bf.PERIOD_NS + 10**9)
    topics = {
        "/camera/color": [bf.raw(s, a, "rgb8") for s, a in zip(rs, rgb, strict=True)],
        "/camera/depth": [bf.raw(s, a, "16UC1") for s, a in zip(ds, depth, strict=True)],
        "/camera/depth_target": [
            bf.raw(s, a.astype(np.uint16), "16UC1") for s, a in zip(ts, target, strict=True)
        ],
    }
    tmp = tmp_path_factory.mktemp("robot")
    bag = bf.write_bag(tmp / "drive", topics, "mcap", other={"/status": 3})
    return bag, n, len(target)


def test_adapt_on_a_bag_gives_the_weights_of_adapt_on_its_extracted_folders(
    cli, robot_bag, source_ckpt, tmp_path
):
    import torch

    bag, n_pairs, n_target = robot_bag
    t_dir, p_dir = tmp_path / "target", tmp_path / "paired"
    r = cli("data", "extract", str(bag), str(t_dir), "--topic", "/camera/depth_target",
            "--modality", "depth", "--every", "2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"{(n_target + 1) // 2} of {n_target} frames" in r.stdout
    r = cli("data", "extract", str(bag), str(p_dir), "--pair-topics",
            "/camera/color,/camera/depth", "--modality", "depth", "--every", "2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"{n_pairs} pairs within" in r.stdout and "unmatched: 0 RGB, 0 target" in r.stdout
    common = ["--source", str(source_ckpt), "--modality", "depth", "--epochs", "1",
              "--batch-size", "4", "--seed", "0", "--device", "cpu", "--method", "socket"]  # fmt: skip
    on_bag = tmp_path / "bag.pt"
    r = cli("adapt", *common, "--target", str(bag), "--target-topic", "/camera/depth_target",
            "--paired", str(bag), "--pair-topics", "/camera/color,/camera/depth",
            "--every", "2", "--out", str(on_bag))  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{(n_target + 1) // 2} of {n_target} frames of /camera/depth_target" in r.stderr
    on_folder = tmp_path / "folder.pt"
    r = cli("adapt", *common, "--target", str(t_dir), "--paired", str(p_dir), "--out",
            str(on_folder))  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    a = torch.load(on_bag, map_location="cpu", weights_only=False)["state_dict"]
    b = torch.load(on_folder, map_location="cpu", weights_only=False)["state_dict"]
    src = torch.load(source_ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit-equal
    assert any(not torch.equal(a[k], src[k]) for k in a if k in src)  # and it did train


@pytest.fixture(scope="module")
def depth_onnx(depth_ckpt, synth_root, tmp_path_factory):
    """depth_ckpt exported with reference statistics on target/train."""
    from socket_edge.export.pipeline import ExportOptions, export

    out = tmp_path_factory.mktemp("bag-onnx") / "depth.onnx"
    ref = synth_root / "depth" / "target" / "train"
    export(depth_ckpt, out, ExportOptions(show_progress=False, reference=ref, batch=(1, 8)))
    return out


def test_classify_and_monitor_on_a_bag_without_torch_match_the_extracted_folder(
    robot_bag, depth_onnx, tmp_path
):
    import subprocess
    import sys

    from .test_robot import _no_torch_env

    bag, _, n_target = robot_bag
    env = _no_torch_env(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "socket_edge.cli.main", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)

    assert subprocess.run([sys.executable, "-c", "import torch"], env=env).returncode != 0
    folder = tmp_path / "frames"
    topic = "/camera/depth_target"
    r = run("data", "extract", str(bag), str(folder), "--topic", topic, "--modality", "depth",
            "--stride", "0.1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    files = sorted(folder.glob("*.png"))
    assert 0 < len(files) < n_target

    r = run("classify", str(depth_onnx), str(bag), "--topic", topic, "--stride", "0.1", "--json",
            "-")  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    on_bag = json.loads(r.stdout)["predictions"]
    r = run("classify", str(depth_onnx), str(folder), "--json", "-")
    assert r.returncode == 0, r.stderr[-2000:]
    on_folder = json.loads(r.stdout)["predictions"]
    assert len(on_bag) == len(on_folder) == len(files)
    for a, b, f in zip(on_bag, on_folder, files, strict=True):
        assert a["file"] == f"{bag}:{topic}#{f.stem}"
        assert a["label"] == b["label"] and a["probabilities"] == b["probabilities"]

    args = ["--window", "4", "--json", "-"]
    r = run("monitor", str(depth_onnx), str(bag), "--topic", topic, "--stride", "0.1", *args)
    assert r.returncode in (0, 3, 4), r.stderr[-2000:]
    mon_bag = json.loads(r.stdout)
    r = run("monitor", str(depth_onnx), str(folder), *args)
    assert r.returncode in (0, 3, 4), r.stderr[-2000:]
    mon_folder = json.loads(r.stdout)
    assert mon_bag["frames"] == mon_folder["frames"] == len(files)
    assert mon_bag["verdict"] == mon_folder["verdict"]
    for a, b in zip(mon_bag["windows"], mon_folder["windows"], strict=True):
        assert a["first_file"].startswith(f"{bag}:{topic}#")
        a = {k: v for k, v in a.items() if not k.endswith("_file")}
        b = {k: v for k, v in b.items() if not k.endswith("_file")}
        assert a == b

    from socket_edge.artifact import read_sidecar

    label = read_sidecar(depth_onnx)["classes"][1]
    (tmp_path / "labelled").mkdir()
    folder.rename(tmp_path / "labelled" / label)
    r = run("eval", str(depth_onnx), "--data", str(bag), "--topic", topic, "--label", label,
            "--stride", "0.1", "--json", "-")  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    ev_bag = json.loads(r.stdout)
    r = run("eval", str(depth_onnx), "--data", str(tmp_path / "labelled"), "--json", "-")
    assert r.returncode == 0, r.stderr[-2000:]
    assert ev_bag == json.loads(r.stdout) and ev_bag["n"] == len(files)
    assert ev_bag["top1"] == np.mean([p["label"] == label for p in on_bag])
    r = run("eval", str(depth_onnx), "--data", str(bag), "--topic", topic)
    assert_one_line_error(r, str(bag), "no label", "--label names the class")

    # bad input on the robot too: one line, the bag and the topic named
    r = run("monitor", str(depth_onnx), str(bag), "--topic", "/status")
    assert_one_line_error(r, str(bag), "topic /status holds std_msgs/msg/String")
    r = run("classify", str(depth_onnx), str(bag))
    assert_one_line_error(r, str(bag), "--topic", "/camera/depth_target (Image, ")


def test_export_calibrates_on_a_bag_as_on_its_extracted_folder(
    cli, robot_bag, depth_ckpt, tmp_path
):
    from socket_edge.artifact import read_sidecar

    bag, _, _ = robot_bag
    folder = tmp_path / "calib"
    topic = "/camera/depth_target"
    r = cli("data", "extract", str(bag), str(folder), "--topic", topic, "--modality", "depth")
    assert r.returncode == 0, r.stderr
    common = ["--int8", "--calib-size", "24", "--holdout", "16", "--max-disagreement", "100",
              "--max-drop", "100", "--batch", "1,8"]  # fmt: skip
    a, b = tmp_path / "bag" / "m.onnx", tmp_path / "folder" / "m.onnx"
    r = cli("export", str(depth_ckpt), "-o", str(a), "--calib", str(bag), "--calib-topic", topic,
            *common)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    r = cli("export", str(depth_ckpt), "-o", str(b), "--calib", str(folder), *common)
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("m.int8.onnx", "m.int8-cpu.onnx", "m.calib.cache"):
        assert (a.parent / name).read_bytes() == (b.parent / name).read_bytes(), name
    ref_a, ref_b = read_sidecar(a)["reference"], read_sidecar(b)["reference"]
    assert {k: v for k, v in ref_a.items() if k != "frames"} == {
        k: v for k, v in ref_b.items() if k != "frames"
    }
    r = cli("export", str(depth_ckpt), "-o", str(tmp_path / "x.onnx"), "--int8", "--calib",
            str(bag))  # fmt: skip
    assert_one_line_error(r, str(bag), "--calib-topic", f"{topic} (Image, ")
    assert not (tmp_path / "x.onnx").exists()


def test_bag_flags_without_a_bag_are_one_line_errors(cli, small_bag, tmp_path):
    base = ["adapt", "--source", str(tmp_path / "src.pt"), "--modality", "depth", "--out",
            str(tmp_path / "o.pt"), "--target", str(tmp_path)]  # fmt: skip
    r = cli(*base, "--every", "2")
    assert_one_line_error(r, "--every and --stride sample the frames of a bag")
    r = cli(*base, "--pair-topics", "/a,/b")
    assert_one_line_error(r, "--pair-topics and --tolerance need a --paired bag")
    r = cli(*base, "--paired", str(tmp_path), "--tolerance", "0.01")
    assert_one_line_error(r, str(tmp_path), "--tolerance is for bags")
    r = cli(*base[:-1], str(small_bag["mcap"]))
    assert_one_line_error(r, str(small_bag["mcap"]), "--target-topic names the image topic")
    r = cli(*base[:-1], str(small_bag["mcap"]), "--target-topic", "/depth", "--paired",
            str(small_bag["mcap"]), "--pair-topics", "/color")  # fmt: skip
    assert_one_line_error(r, "--pair-topics takes RGB_TOPIC,TARGET_TOPIC")
    assert not (tmp_path / "o.pt").exists()


def test_a_ros2_storage_file_reads_as_its_bag_folder(encodings_bags):
    paths, _ = encodings_bags
    for kind, suffix in (("mcap", "*.mcap"), ("sqlite3", "*.db3")):
        (storage,) = paths[kind].glob(suffix)
        with bags.Bag(storage) as a, bags.Bag(paths[kind]) as b:
            x = [f.array for f in a.frames("/d_cd32", "depth")]
            y = [f.array for f in b.frames("/d_cd32", "depth")]
        assert len(x) == N and all(np.array_equal(p, q) for p, q in zip(x, y, strict=True))


def test_without_rosbags_a_bag_names_the_ros_extra(small_bag, tmp_path):
    import os
    import subprocess
    import sys

    block = tmp_path / "no-rosbags" / "rosbags"
    block.mkdir(parents=True)
    (block / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'rosbags'\", name='rosbags')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(block.parent), "SOCKET_EDGE_PROGRESS": "0"}
    r = subprocess.run(
        [sys.executable, "-m", "socket_edge.cli.main", "data", "extract", str(small_bag["mcap"]),
         str(tmp_path / "out"), "--topic", "/depth", "--modality", "depth"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert_one_line_error(r, "this needs rosbags", 'pip install "socket-edge[ros]"')
    assert not (tmp_path / "out").exists()
