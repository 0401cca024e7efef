"""The npz (CTR-GCN / SGN) and pyskl (PYSKL / MMAction2) formats: round trips and bad files."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from skelact.data.formats import Clip, Dropped, FormatError, npz, pyskl
from skelact.data.safe_pickle import safe_load
from skelact.layouts import NTU25, get_layout

COCO = get_layout("coco17")


def _clips(layout, dims: int, n: int = 6, scores: bool = False) -> list[Clip]:
    rng = np.random.default_rng(dims)
    out = []
    for i in range(n):
        m, t = 1 + i % 2, 5 + 3 * i
        kp = rng.normal(size=(m, t, layout.num_joints, dims)).astype(np.float32)
        score = rng.uniform(0, 1, (m, t, layout.num_joints)).astype(np.float32) if scores else None
        split = "train" if i % 3 else "val"
        out.append(Clip(f"clip{i}", kp, score, i % 4, split, (1080, 1920) if scores else None))
    return out


def _padded(kp: np.ndarray, m: int) -> np.ndarray:
    out = np.zeros((m, *kp.shape[1:]), np.float32)
    out[: len(kp)] = kp
    return out


@pytest.mark.parametrize(("layout", "dims"), [(NTU25, 3), (COCO, 2)])
def test_npz_round_trip(tmp_path: Path, layout, dims: int) -> None:
    clips = _clips(layout, dims)
    npz.write_npz(clips, tmp_path / "d.npz")
    back = list(npz.read_clips(tmp_path / "d.npz", layout))
    expected = [c for c in clips if c.split == "train"] + [c for c in clips if c.split == "val"]
    assert [c.name for c in back] == ["train_000000", "train_000001", "train_000002",
                                      "train_000003", "val_000000", "val_000001"]  # fmt: skip
    for got, exp in zip(back, expected, strict=True):
        assert isinstance(got, Clip) and got.keypoint.dtype == np.float32
        np.testing.assert_array_equal(got.keypoint, _padded(exp.keypoint, 2))
        assert (got.label, got.split, got.score) == (exp.label, exp.split, None)
    with np.load(tmp_path / "d.npz", allow_pickle=False) as z:
        assert z["x_train"].shape == (4, 300, 2 * layout.num_joints * dims)
        assert z["y_train"].shape == (4, 4) and z["y_test"].sum(1).tolist() == [1.0, 1.0]


def test_npz_same_clips_same_bytes(tmp_path: Path) -> None:
    clips = _clips(NTU25, 3)
    npz.write_npz(clips, tmp_path / "a.npz", max_frames=40, num_classes=60)
    os.utime(tmp_path / "a.npz", (0, 0))
    npz.write_npz(clips, tmp_path / "b.npz", max_frames=40, num_classes=60)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz") as z:
        assert z["x_test"].shape[1] == 40 and z["y_test"].shape == (2, 60)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz"]  # no temporaries


def test_npz_compressed_and_trailing_padding(tmp_path: Path) -> None:
    x = np.zeros((2, 20, 150), np.float32)
    x[0, :7] = 1.0
    x[1, 3:12] = 2.0  # leading zero frames are kept, trailing ones are padding
    y = np.eye(3, dtype=np.float64)[[2, 0]]
    np.savez_compressed(tmp_path / "c.npz", x_test=x, y_test=y)
    back = list(npz.read_clips(tmp_path / "c.npz", NTU25))
    assert [(c.name, c.num_frames, c.label, c.split) for c in back] == [
        ("val_000000", 7, 2, "val"), ("val_000001", 12, 0, "val")]  # fmt: skip
    assert back[1].keypoint.shape == (2, 12, 25, 3) and not back[1].keypoint[:, :3].any()


def test_npz_bad_rows_dropped_with_reason(tmp_path: Path) -> None:
    x = np.ones((4, 5, 150), np.float32)
    x[2] = 0.0
    x[3, 1, 7] = np.nan
    y = np.zeros((4, 3))
    y[0, 1] = 1
    y[1, [0, 2]] = 1  # two hot entries
    y[2, 0] = y[3, 0] = 1
    np.savez(tmp_path / "b.npz", x_train=x, y_train=y)
    back = list(npz.read_clips(tmp_path / "b.npz", NTU25))
    assert isinstance(back[0], Clip) and back[0].label == 1
    assert [type(c) for c in back[1:]] == [Dropped] * 3
    assert "y_train row 1 is not one-hot (1 at 0, 1 at 2)" in back[1].reason
    assert "every frame is zero" in back[2].reason and "non-finite" in back[3].reason


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"x_train": np.ones((2, 5, 110)), "y_train": np.eye(2)},
            "110 values do not fit layout ntu25",
        ),
        ({"x_train": np.ones((2, 5, 25 * 5)), "y_train": np.eye(2)}, "neither persons x 3"),
        ({"x_train": np.ones((2, 5, 150)), "y_train": np.eye(3)}, "2 rows but y_train has 3"),
        ({"x_train": np.ones((2, 5, 150))}, "x_train without its pair"),
        ({"x_train": np.ones((2, 5, 150)), "y_train": np.array([0, 1])}, "one-hot N x K"),
        ({"x_train": np.ones((2, 150)), "y_train": np.eye(2)}, "N x T x (M*V*C)"),
        ({"other": np.ones(3)}, "no x_train/y_train"),
    ],
)
def test_npz_bad_files_refused(tmp_path: Path, arrays: dict, message: str) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(FormatError, match=re.escape(message)) as e:
        list(npz.read_clips(tmp_path / "bad.npz", NTU25))
    assert "bad.npz" in str(e.value)


def test_npz_not_a_zip_and_object_arrays_refused(tmp_path: Path) -> None:
    (tmp_path / "t.npz").write_text("hello")
    with pytest.raises(FormatError, match="not an npz file"):
        list(npz.read_clips(tmp_path / "t.npz", NTU25))
    np.savez(tmp_path / "o.npz", x_train=np.ones((1, 2, 150)),
             y_train=np.array([[1, None]], dtype=object))  # fmt: skip
    with pytest.raises(FormatError, match="Python objects|unreadable"):
        list(npz.read_clips(tmp_path / "o.npz", NTU25))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"keypoint": np.zeros((1, 301, 25, 3), np.float32)}, "clip c: 301 frames, more than"),
        ({"keypoint": np.zeros((3, 4, 25, 3), np.float32)}, "clip c: 3 persons"),
        ({"label": "waving"}, "clip c: label 'waving' is not a class index"),
        ({"split": None}, "clip c: split None"),
    ],
)
def test_npz_writer_refuses_with_the_clip_name(tmp_path: Path, change: dict, message: str) -> None:
    clip = {"name": "c", "keypoint": np.ones((1, 4, 25, 3), np.float32), "label": 0,
            "split": "train"} | change  # fmt: skip
    with pytest.raises(FormatError, match=message):
        npz.write_npz([Clip(**clip)], tmp_path / "w.npz")
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def _splits(clips: list[Clip]) -> dict[str, list[str]]:
    return {s: [c.name for c in clips if c.split == s] for s in ("train", "val")}


@pytest.mark.parametrize("float16", [False, True])
def test_pyskl_round_trip(tmp_path: Path, float16: bool) -> None:
    clips = _clips(COCO, 2, scores=True)
    pyskl.write_pyskl(clips, tmp_path / "p.pkl", _splits(clips), float16=float16)
    raw = safe_load(tmp_path / "p.pkl")
    assert set(raw) == {"split", "annotations"}
    first = raw["annotations"][0]
    assert list(first) == ["frame_dir", "label", "total_frames", "keypoint", "keypoint_score",
                           "img_shape"]  # fmt: skip
    assert first["keypoint"].dtype == (np.float16 if float16 else np.float32)
    back = list(pyskl.read_clips(tmp_path / "p.pkl", COCO))
    for got, exp in zip(back, clips, strict=True):
        assert got.keypoint.dtype == got.score.dtype == np.float32
        want = exp.keypoint.astype(np.float16).astype(np.float32) if float16 else exp.keypoint
        np.testing.assert_array_equal(got.keypoint, want)
        tol = 1e-3 if float16 else 0
        np.testing.assert_allclose(got.score, exp.score, atol=tol, rtol=0)
        assert (got.name, got.label, got.split, got.img_shape) == (
            exp.name, exp.label, exp.split, (1080, 1920))  # fmt: skip


def _dump(path: Path, obj: object) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


def _ann(name: str, v: int = 25, **extra) -> dict:
    kp = np.arange(2 * 3 * v * 3, dtype=np.float16).reshape(2, 3, v, 3)
    return {"frame_dir": name, "label": 4, "total_frames": 3, "keypoint": kp, **extra}


def test_pyskl_float16_and_benchmark_choice(tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    src = _dump(tmp_path / "ntu.pkl", {
        "split": {"xsub_train": ["a", "b"], "xsub_val": ["c"], "xview_train": ["a"],
                  "xview_val": ["b"]},
        "annotations": [_ann(n) for n in names]})  # fmt: skip
    with pytest.raises(FormatError, match="2 <prefix>_train/<prefix>_val split pairs"):
        list(pyskl.read_clips(src, NTU25))
    with pytest.raises(FormatError, match="no split pair 'xset'"):
        list(pyskl.read_clips(src, NTU25, split="xset"))
    xsub = list(pyskl.read_clips(src, NTU25, split="xsub"))
    assert [(c.name, c.split) for c in xsub] == [("a", "train"), ("b", "train"), ("c", "val")]
    assert xsub[0].keypoint.dtype == np.float32 and xsub[0].label == 4
    np.testing.assert_array_equal(xsub[0].keypoint, _ann("a")["keypoint"].astype(np.float32))
    xview = list(pyskl.read_clips(src, NTU25, split="xview"))  # c is in neither: not read
    assert [(c.name, c.split) for c in xview] == [("a", "train"), ("b", "val")]


def test_pyskl_mmaction_0x_list(tmp_path: Path) -> None:
    src = _dump(tmp_path / "l.pkl", [_ann("a"), _ann("b", keypoint_score=np.ones((2, 3, 25)))])
    back = list(pyskl.read_clips(src, NTU25))
    assert [(c.name, c.split) for c in back] == [("a", None), ("b", None)]
    assert back[0].score is None and back[1].score.shape == (2, 3, 25)
    with pytest.raises(FormatError, match="0.x list has no splits"):
        list(pyskl.read_clips(src, NTU25, split="xsub"))


def test_pyskl_bad_annotations_dropped(tmp_path: Path) -> None:
    bad_frames = _ann("t") | {"total_frames": 9}
    nan = _ann("n")
    nan["keypoint"] = nan["keypoint"].copy()
    nan["keypoint"][0, 0, 0, 0] = np.nan
    short_score = _ann("s", keypoint_score=np.ones((1, 3, 25)))
    annotations = [_ann("v", v=17), bad_frames, nan, short_score, "junk", _ann("ok")]
    splits = {"train": ["v", "t", "n", "s", "ghost"], "val": ["ok"]}
    src = _dump(tmp_path / "b.pkl", {"split": splits, "annotations": annotations})
    back = list(pyskl.read_clips(src, NTU25))
    reasons = {c.name: c.reason for c in back if isinstance(c, Dropped)}
    assert [c.name for c in back if isinstance(c, Clip)] == ["ok"]
    assert "17 joints, layout ntu25 has 25" in reasons["v"]
    assert "total_frames 9 but keypoint has 3" in reasons["t"]
    assert "non-finite coordinates" in reasons["n"]
    assert "keypoint_score shape (1, 3, 25)" in reasons["s"]
    assert "annotation 4 is not a dict" in reasons["annotation 4"]
    assert "'ghost' is in split train but has no annotation" in reasons["ghost"]


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def test_pyskl_unsafe_and_wrong_files_refused(tmp_path: Path) -> None:
    evil = _dump(tmp_path / "e.pkl", {"split": {}, "annotations": [_Evil()]})
    with pytest.raises(FormatError, match="refusing to load"):
        list(pyskl.read_clips(evil, NTU25))
    with pytest.raises(FormatError, match="missing \\['split'\\]"):
        list(pyskl.read_clips(_dump(tmp_path / "d.pkl", {"annotations": []}), NTU25))
    with pytest.raises(FormatError, match="holds a int"):
        list(pyskl.read_clips(_dump(tmp_path / "i.pkl", 3), NTU25))


def test_pyskl_writer_refusals(tmp_path: Path) -> None:
    clip = Clip("big", np.full((1, 2, 25, 3), 1e5, np.float32), label=0)
    with pytest.raises(FormatError, match="clip big: coordinates beyond float16's range"):
        pyskl.write_pyskl([clip], tmp_path / "f.pkl", {}, float16=True)
    with pytest.raises(FormatError, match="split 'train' names 1 clips that were not written"):
        pyskl.write_pyskl([clip], tmp_path / "f.pkl", {"train": ["other"]})
    with pytest.raises(FormatError, match="clip big: label None"):
        pyskl.write_pyskl([Clip("big", clip.keypoint)], tmp_path / "f.pkl", {})
    assert list(tmp_path.iterdir()) == []
