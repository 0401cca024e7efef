"""Safe loading of both pickle formats, the ragged SkeletonSet, and `skelact validate`."""

from __future__ import annotations

import os
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from skelact.cli import app
from skelact.data.annotations import load_annotations
from skelact.data.dataset import SkeletonSet
from skelact.data.safe_pickle import DatasetError, UnsafePickleError, safe_load
from skelact.data.validate import validate_file
from skelact.errors import SkelactError
from skelact.layouts import NTU25

NUM_JOINTS = NTU25.num_joints
SPINE_MID = NTU25.index("spine_mid")


def _ann(name: str, frames: int, label: int, persons: int = 2, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    keypoint = rng.normal(size=(persons, frames, NUM_JOINTS, 3)).astype(np.float32)
    keypoint[0, :, SPINE_MID] = 0.0  # pre-normalised, as preprocess writes them
    return {
        "frame_dir": name,
        "label": label,
        "total_frames": frames,
        "keypoint": keypoint,
        "img_shape": (1080, 1920),
        "original_shape": (1080, 1920),
    }


def _dump(obj: object, path: Path, protocol: int = 4) -> Path:
    with path.open("wb") as handle:
        pickle.dump(obj, handle, protocol=protocol)
    return path


@pytest.fixture
def anns() -> list[dict]:
    return [_ann(f"S001C001P001R001A{i + 1:03d}", 20 + 7 * i, i % 3, seed=i) for i in range(6)]


# ------------------------------------------------------------------ safe unpickling


class _Evil:
    """Unpickling this would run a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    payload = [{"frame_dir": "x", "label": 0, "keypoint": _Evil(marker)}]
    path = _dump(payload, tmp_path / "evil.pkl", protocol)
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl.*(posix|os)\.system"):
        safe_load(path)
    with pytest.raises(UnsafePickleError):
        load_annotations(path)
    with pytest.raises(UnsafePickleError):
        SkeletonSet.from_file(path)
    assert not marker.exists()
    # sanity: the payload really is armed (plain pickle would run it)
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_other_dangerous_globals_are_refused(tmp_path: Path) -> None:
    for module, name in [("builtins", "eval"), ("subprocess", "Popen"), ("numpy", "load")]:
        raw = b"\x80\x04" + f"c{module}\n{name}\n".encode() + b"."
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(raw)
        with pytest.raises(UnsafePickleError, match=f"{module}.{name}"):
            safe_load(path)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_numpy_arrays_and_scalars_load_in_every_protocol(tmp_path: Path, protocol: int) -> None:
    obj = {
        "a": np.arange(12, dtype=np.float32).reshape(3, 4),
        "b": np.int64(7),
        "c": np.float64(2.5),
        "d": (1, 2.0, "x", None, True),
        "e": np.asfortranarray(np.ones((2, 3))),
        # what protocols 0-2 write as __builtin__ calls, and the size-checked constructors
        "f": (bytearray(b"ab\xff"), b"\x00\xff", b"", {1, 2}, frozenset({3}), complex(1, 2)),
        "g": (np.void(b"ab"), np.array(["a", "bb"]), np.zeros((2, 3), np.float32)[:, ::2]),
    }
    back = safe_load(_dump(obj, tmp_path / "ok.pkl", protocol))
    np.testing.assert_array_equal(back["a"], obj["a"])
    assert back["b"] == 7 and back["c"] == 2.5 and back["d"] == obj["d"]
    np.testing.assert_array_equal(back["e"], obj["e"])
    assert back["f"] == obj["f"] and back["g"][0] == obj["g"][0]
    for got, want in zip(back["g"][1:], obj["g"][1:], strict=True):
        np.testing.assert_array_equal(got, want)


def test_reference_pickle_loads_like_plain_pickle(reference_dir: Path) -> None:
    path = reference_dir / "ntu_prep" / "expected" / "xsub" / "val.pkl"
    ours = load_annotations(path)
    with path.open("rb") as handle:
        plain = pickle.load(handle)
    assert [a["frame_dir"] for a in ours] == [a["frame_dir"] for a in plain]
    for a, b in zip(ours, plain, strict=True):
        np.testing.assert_array_equal(a["keypoint"], b["keypoint"])
        assert a["label"] == b["label"]


def test_missing_and_not_a_pickle(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pkl"):
        safe_load(tmp_path / "nope.pkl")
    text = tmp_path / "text.pkl"
    text.write_text("frame_dir,label\nS001,1\n")
    with pytest.raises(DatasetError, match=r"text\.pkl: not a readable pickle"):
        load_annotations(text)
    truncated = tmp_path / "cut.pkl"
    truncated.write_bytes(pickle.dumps([_ann("a", 5, 0)], protocol=4)[:200])
    with pytest.raises(DatasetError, match=r"cut\.pkl"):
        load_annotations(truncated)
    with pytest.raises(DatasetError, match="not a file"):
        safe_load(tmp_path)


class _Reduce:
    """Pickles as ``func(*args)``: how a hostile file makes the unpickler call an allowed name."""

    def __init__(self, func: object, *args: object) -> None:
        self.call = (func, args)

    def __reduce__(self):
        return self.call


def _huge_requests() -> dict[str, bytes]:
    """Pickles of a few hundred bytes that ask for a gigabyte to far beyond any memory."""
    from numpy._core.multiarray import _reconstruct

    big = 10**12
    return {
        "reconstruct": pickle.dumps(_Reduce(_reconstruct, np.ndarray, (big,), b"b"), protocol=2),
        "ndarray": pickle.dumps(_Reduce(np.ndarray, (big,), np.uint8), protocol=4),
        "bytearray": pickle.dumps(_Reduce(bytearray, big), protocol=4),
        "bytes": pickle.dumps(_Reduce(bytes, big), protocol=4),
        "void": pickle.dumps(_Reduce(np.void, 2**30), protocol=4),  # NumPy caps a void at 2 GiB
        # a BINBYTES8 opcode whose length prefix claims 2**62 bytes: the pickle machine itself
        # allocates before reading, so only the MemoryError can be turned into an error line
        "binbytes8": b"\x80\x04\x8e" + struct.pack("<Q", 2**62) + b"abc",
    }


@pytest.mark.parametrize("kind", list(_huge_requests()))
def test_huge_allocation_is_one_error_line(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.pkl"
    path.write_bytes(_huge_requests()[kind])
    with pytest.raises(DatasetError, match=rf"{kind}\.pkl: ") as info:
        safe_load(path)
    assert "\n" not in str(info.value)
    report = validate_file(path)
    assert not report.ok and report.problems == [str(info.value)]


def test_errors_are_skelact_errors() -> None:
    assert issubclass(DatasetError, SkelactError) and issubclass(UnsafePickleError, SkelactError)
    assert issubclass(DatasetError, ValueError)  # what callers of the first version catch


# ------------------------------------------------------------------ structure errors


def test_wrong_structure_names_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="list of sample dicts.*'split' and 'annotations'"):
        load_annotations(_dump({"foo": 1}, tmp_path / "d.pkl"))
    with pytest.raises(DatasetError, match="a str; expected a list"):
        load_annotations(_dump("hello", tmp_path / "s.pkl"))
    with pytest.raises(DatasetError, match="no samples"):
        load_annotations(_dump([], tmp_path / "e.pkl"))


def test_sample_problems_are_named(tmp_path: Path, anns: list[dict]) -> None:
    del anns[1]["keypoint"]
    anns[2]["label"] = "A003"
    anns[3]["keypoint"] = anns[3]["keypoint"][..., :2].copy()  # 2-D keypoints
    anns[4]["keypoint"] = anns[4]["keypoint"][0]  # 3-D array
    anns[5]["total_frames"] = 999
    path = _dump(anns, tmp_path / "bad.pkl")
    with pytest.raises(DatasetError) as info:
        load_annotations(path)
    first = str(info.value)  # one line: the first problem, a count and where to see them all
    assert "\n" not in first
    assert "bad.pkl: sample 1 ('S001C001P001R001A002'): missing key(s) ['keypoint']" in first
    assert first.endswith(f"(and 4 more problem(s): `skelact validate {path}` lists them)")
    msg = "\n".join(validate_file(path).problems)
    assert "sample 1 ('S001C001P001R001A002'): missing key(s) ['keypoint']" in msg
    assert "sample 2" in msg and "label 'A003' is a str" in msg
    assert "sample 3" in msg and "2-D keypoints" in msg and "3-D x, y, z" in msg
    assert "sample 4" in msg and "3-D); expected 4-D M x T x V x C" in msg
    assert "sample 5" in msg and "total_frames = 999" in msg
    assert "sample 0" not in msg


def test_bool_and_negative_labels_rejected(tmp_path: Path, anns: list[dict]) -> None:
    anns[0]["label"] = True
    anns[1]["label"] = -1
    path = _dump(anns, tmp_path / "l.pkl")
    with pytest.raises(DatasetError, match=r"sample 0.*bool.*\(and 1 more problem"):
        load_annotations(path)
    assert any("sample 1" in p and "negative" in p for p in validate_file(path).problems)


def test_inconsistent_joints_rejected(tmp_path: Path, anns: list[dict]) -> None:
    anns[2]["keypoint"] = anns[2]["keypoint"][:, :, :17]
    with pytest.raises(DatasetError, match="disagree on the number of joints"):
        load_annotations(_dump(anns, tmp_path / "v.pkl"))


@pytest.mark.parametrize(
    ("value", "dtype", "what"),
    [
        (np.inf, np.float32, "0 NaN and 1 inf"),
        (-np.inf, np.float32, "0 NaN and 1 inf"),
        (np.nan, np.float32, "1 NaN and 0 inf"),
        (1e300, np.float64, "0 NaN and 1 inf"),  # finite in float64, inf in the float32 set
    ],
)
def test_non_finite_values_are_refused_naming_the_sample(
    tmp_path: Path, anns: list[dict], value: float, dtype: type, what: str
) -> None:
    anns[3]["keypoint"] = anns[3]["keypoint"].astype(dtype)
    anns[3]["keypoint"][1, 2, 3, 0] = value
    path = _dump(anns, tmp_path / "nonfinite.pkl")
    line = f"sample 3 ('S001C001P001R001A004'): keypoint has {what} value(s)"
    with pytest.raises(DatasetError, match=re.escape(line)):
        SkeletonSet.from_file(path)
    with pytest.raises(DatasetError, match=re.escape(line)):
        SkeletonSet.from_annotations(anns)
    report = validate_file(path)
    assert not report.ok and len(report.problems) == 1 and line in report.problems[0]
    assert report.nan_count + report.inf_count == 1 and report.num_samples == 6


def test_finite_extremes_and_float64_data_are_accepted(anns: list[dict]) -> None:
    anns[0]["keypoint"][0, 0, 0] = np.finfo(np.float32).max  # sums past float32: still finite
    anns[1]["keypoint"] = anns[1]["keypoint"].astype(np.float64)
    assert len(SkeletonSet.from_annotations(anns)) == 6


def test_labels_outside_the_class_count_are_refused(tmp_path: Path, anns: list[dict]) -> None:
    anns[4]["label"] = 7
    path = _dump(anns, tmp_path / "labels.pkl")
    line = "sample 4 ('S001C001P001R001A005'): label 7 is outside the 5 classes (0..4)"
    with pytest.raises(DatasetError, match=re.escape(line)):
        SkeletonSet.from_file(path, num_classes=5)
    assert SkeletonSet.from_file(path, num_classes=8).num_classes == 8
    assert SkeletonSet.from_file(path).num_classes == 8  # undeclared: max label + 1
    report = validate_file(path, num_classes=5)
    assert report.problems == [line] and report.num_classes == 5
    ds = SkeletonSet.from_file(path, num_classes=10)
    assert ds.subset([0, 4]).num_classes == ds.to("cpu").num_classes == 10
    with pytest.raises(DatasetError, match=r"sample 1 \('b'\) has label 3, outside the 3 classes"):
        SkeletonSet(
            ds.frames[: ds.host_offsets[2]],
            ds.offsets[:3],
            np.array([0, 3]),
            ["a", "b"],
            num_classes=3,
        )


# ------------------------------------------------------------------ formats


def test_mmaction_and_pyskl_formats_give_the_same_set(tmp_path: Path, anns: list[dict]) -> None:
    val_names = [anns[1]["frame_dir"], anns[4]["frame_dir"]]
    train_names = [a["frame_dir"] for a in anns if a["frame_dir"] not in val_names]
    pyskl = {"split": {"xsub_train": train_names, "xsub_val": val_names}, "annotations": anns}
    pyskl_path = _dump(pyskl, tmp_path / "ntu60_3danno.pkl")
    list_path = _dump([anns[1], anns[4]], tmp_path / "val.pkl")

    a = SkeletonSet.from_file(list_path)
    b = SkeletonSet.from_file(pyskl_path, split="xsub_val")
    assert a.names == b.names == val_names
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.offsets, b.offsets)
    assert len(SkeletonSet.from_file(pyskl_path, split="xsub_train")) == 4

    with pytest.raises(DatasetError, match="no split 'xview_val'.*'xsub_train', 'xsub_val'"):
        load_annotations(pyskl_path, split="xview_val")
    with pytest.raises(DatasetError, match="choose one with a split key.*'xsub_train'"):
        load_annotations(pyskl_path)
    with pytest.raises(DatasetError, match="MMAction2 0.x pickle.*has no splits"):
        load_annotations(list_path, split="xsub_val")


def test_pyskl_split_naming_unknown_sample_is_an_error(tmp_path: Path, anns: list[dict]) -> None:
    pyskl = {"split": {"xsub_val": ["S999C001P001R001A001"]}, "annotations": anns}
    with pytest.raises(DatasetError, match="1 sample.*no annotation.*S999C001P001R001A001"):
        load_annotations(_dump(pyskl, tmp_path / "p.pkl"), split="xsub_val")


# ------------------------------------------------------------------ SkeletonSet


def test_skeleton_set_is_ragged_and_exact(tmp_path: Path, anns: list[dict]) -> None:
    anns[2] = _ann(anns[2]["frame_dir"], 9, 2, persons=1, seed=9)  # one person: padded
    originals = [a["keypoint"].copy() for a in anns]
    ds = SkeletonSet.from_file(_dump(anns, tmp_path / "r.pkl"))
    lengths = [a.shape[1] for a in originals]
    assert ds.frames.shape == (sum(lengths), 2, NUM_JOINTS, 3) and ds.frames.dtype == np.float32
    assert ds.offsets.dtype == np.int64 and ds.labels.dtype == np.int64
    assert ds.offsets.tolist() == np.concatenate([[0], np.cumsum(lengths)]).tolist()
    assert ds.lengths.tolist() == lengths
    assert len(ds) == 6 and ds.num_classes == 3
    assert ds.labels.tolist() == [a["label"] for a in anns]
    for i, kp in enumerate(originals):
        got = ds.sample(i)
        np.testing.assert_array_equal(got[: kp.shape[0]], kp)
        assert not got[kp.shape[0] :].any()
    # the public constructor takes (sum T, M, V, C) and gives back an equal set
    again = SkeletonSet(np.ascontiguousarray(ds.frames), ds.offsets, ds.labels, ds.names)
    np.testing.assert_array_equal(again.storage, ds.storage)
    np.testing.assert_array_equal(again.frames, ds.frames)
    with pytest.raises(DatasetError, match="offsets end at"):
        SkeletonSet(ds.frames[:-1], ds.offsets, ds.labels, ds.names)
    sub = ds.subset([4, 0])
    assert sub.names == [ds.names[4], ds.names[0]]
    np.testing.assert_array_equal(sub.sample(0), ds.sample(4))


def test_from_annotations_consume_frees_the_sources(anns: list[dict]) -> None:
    ds = SkeletonSet.from_annotations(anns, consume=True)
    assert all("keypoint" not in a for a in anns)
    assert len(ds) == len(anns)


def test_skeleton_set_to_torch(anns: list[dict]) -> None:
    import torch

    ds = SkeletonSet.from_annotations(anns)
    dev = ds.to("cpu")
    assert isinstance(dev.frames, torch.Tensor) and dev.frames.dtype == torch.float32
    assert dev.offsets.dtype == torch.int64 and dev.labels.dtype == torch.int64
    assert dev.lengths.tolist() == ds.lengths.tolist()
    np.testing.assert_array_equal(dev.sample(3), ds.sample(3))


def test_real_reference_set(reference_dir: Path) -> None:
    ds = SkeletonSet.from_file(reference_dir / "ntu_prep" / "expected" / "xsub" / "val.pkl")
    assert len(ds) == 15 and ds.frames.shape[1:] == (2, NUM_JOINTS, 3)
    assert ds.names[0] == "S005C002P029R001A005" and ds.lengths[0] == 116


# ------------------------------------------------------------------ validate


def test_validate_good_file_summary(tmp_path: Path, anns: list[dict]) -> None:
    anns[0]["label"] = 5
    path = _dump(anns, tmp_path / "good.pkl")
    report = validate_file(path)
    assert report.ok and report.num_samples == 6 and report.num_classes == 6
    assert report.missing_labels == [3, 4]
    assert (report.frames_min, report.frames_max) == (20, 55)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "samples    6" in result.output and "label gaps 2 class(es)" in result.output
    assert "frames     min 20  median 37.5  max 55" in result.output


def test_validate_reports_problems_and_nans(tmp_path: Path, anns: list[dict]) -> None:
    anns[1]["keypoint"][0, 3, 4, 1] = np.nan
    anns[2]["keypoint"] = anns[2]["keypoint"][..., :2].copy()
    path = _dump(anns, tmp_path / "bad.pkl")
    report = validate_file(path)
    assert not report.ok and report.nan_count == 1 and len(report.problems) == 2
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert "2-D keypoints" in result.output
    assert "sample 1 ('S001C001P001R001A002'): keypoint has 1 NaN and 0 inf" in result.output
    assert "NaN        1 value(s) in 1 sample(s)" in result.output


def test_validate_cli_errors(tmp_path: Path, anns: list[dict]) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["validate", str(tmp_path / "missing.pkl")])
    assert result.exit_code == 1 and "no such file" in result.output
    pyskl = _dump(
        {"split": {"xsub_val": [anns[0]["frame_dir"]]}, "annotations": anns}, tmp_path / "p.pkl"
    )
    result = runner.invoke(app, ["validate", str(pyskl)])
    assert result.exit_code == 1 and "available: 'xsub_val'" in result.output
    result = runner.invoke(app, ["validate", str(pyskl), "--split", "xsub_val"])
    assert result.exit_code == 0 and "samples    1" in result.output
    marker = tmp_path / "pwned"
    evil = _dump([{"k": _Evil(marker)}], tmp_path / "evil.pkl")
    result = runner.invoke(app, ["validate", str(evil)])
    assert result.exit_code == 1 and "refusing to load" in result.output
    assert not marker.exists()
