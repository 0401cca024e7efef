"""The preprocess stage end to end: reference equality, formats, splits, bad input, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import load_pickle
from skelact.cli import app
from skelact.data import ntu
from skelact.data.preprocess import (
    PreprocessError,
    PreprocessSettings,
    load_sample,
    preprocess,
)


def _raw(reference_dir: Path) -> Path:
    return reference_dir / "ntu_prep" / "raw"


def _assert_same_samples(got: list[dict], expected: list[dict], atol: float = 1e-5) -> None:
    by_name = {a["frame_dir"]: a for a in got}
    assert sorted(by_name) == sorted(a["frame_dir"] for a in expected)
    for exp in expected:
        ann = by_name[exp["frame_dir"]]
        assert list(ann) == list(exp)  # same keys, same order
        assert ann["label"] == exp["label"] and type(ann["label"]) is int
        assert ann["total_frames"] == exp["total_frames"] == ann["keypoint"].shape[1]
        assert (
            ann["img_shape"] == exp["img_shape"] and ann["original_shape"] == exp["original_shape"]
        )
        assert (
            ann["keypoint"].dtype == np.float32 and ann["keypoint"].shape == exp["keypoint"].shape
        )
        np.testing.assert_allclose(ann["keypoint"], exp["keypoint"], rtol=0, atol=atol)


@pytest.fixture(scope="module")
def ntu60_out(reference_dir, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("ntu60")
    result = preprocess(PreprocessSettings("ntu60", _raw(reference_dir), out, workers=1))
    return out, result


def test_equals_reference_output(reference_dir, ntu60_out) -> None:
    out, result = ntu60_out
    for bench in ("xsub", "xview"):
        for part in ("train", "val"):
            expected = load_pickle(reference_dir / "ntu_prep" / "expected" / bench / f"{part}.pkl")
            got = load_pickle(out / bench / f"{part}.pkl")
            assert isinstance(got, list)
            _assert_same_samples(got, expected)
            assert [a["frame_dir"] for a in got] == sorted(a["frame_dir"] for a in got)
            assert result.counts[f"{bench}/{part}"] == len(expected)
    report = json.loads((out / "preprocess_report.json").read_text())
    assert report["samples_written"] == 30 and report["files_found"] == 30
    assert report["skipped_bad"] == [] and report["num_empty_samples"] == 0
    assert report["counts"] == {
        "xsub/train": 15,
        "xsub/val": 15,
        "xview/train": 20,
        "xview/val": 10,
    }
    assert report["elapsed_s"] > 0
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]


def test_workers_give_identical_bytes(reference_dir, ntu60_out, tmp_path) -> None:
    out1, _ = ntu60_out
    result = preprocess(PreprocessSettings("ntu60", _raw(reference_dir), tmp_path, workers=2))
    assert result.workers == 2
    for rel in ("xsub/train.pkl", "xsub/val.pkl", "xview/train.pkl", "xview/val.pkl"):
        assert (tmp_path / rel).read_bytes() == (out1 / rel).read_bytes(), rel


def test_pyskl_format(reference_dir, ntu60_out, tmp_path) -> None:
    preprocess(
        PreprocessSettings("ntu60", _raw(reference_dir), tmp_path, format="pyskl", workers=2)
    )
    data = load_pickle(tmp_path / "ntu60_3danno.pkl")
    assert set(data) == {"split", "annotations"}
    assert sorted(data["split"]) == ["xsub_train", "xsub_val", "xview_train", "xview_val"]
    out1, _ = ntu60_out
    for key, names in data["split"].items():
        bench, part = key.split("_")
        assert names == [a["frame_dir"] for a in load_pickle(out1 / bench / f"{part}.pkl")]
    expected = load_pickle(reference_dir / "ntu_prep" / "expected" / "xsub" / "train.pkl")
    expected += load_pickle(reference_dir / "ntu_prep" / "expected" / "xsub" / "val.pkl")
    _assert_same_samples(data["annotations"], expected)
    assert not (tmp_path / "xsub").exists()


def test_load_sample_matches_stage(reference_dir, tmp_path) -> None:
    expected_path = reference_dir / "ntu_prep/expected/xsub/val.pkl"
    expected = {a["frame_dir"]: a for a in load_pickle(expected_path)}
    name = sorted(expected)[0]
    ann = load_sample(_raw(reference_dir) / f"{name}.skeleton")
    _assert_same_samples([ann], [expected[name]])
    odd = tmp_path / "my recording.skeleton"
    shutil.copy(_raw(reference_dir) / f"{name}.skeleton", odd)
    ann = load_sample(odd)
    assert ann["label"] == -1 and ann["frame_dir"] == "my recording"


def _copy(reference_dir: Path, dst: Path, mapping: dict[str, str]) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for src, name in mapping.items():
        shutil.copy(_raw(reference_dir) / f"{src}.skeleton", dst / f"{name}.skeleton")


def test_ntu120_benchmarks_and_labels(reference_dir, tmp_path) -> None:
    src = sorted(p.stem for p in _raw(reference_dir).glob("*.skeleton"))[:4]
    names = [
        "S018C001P045R001A061",  # xsub train (NTU 120 subject), xset train (even setup)
        "S019C002P044R002A120",  # xsub val, xset val
        "S001C001P001R001A001",  # xsub train, xset val
        "S032C003P106R001A100",  # xsub val, xset train
    ]
    raw = tmp_path / "raw"
    _copy(reference_dir, raw, dict(zip(src, names, strict=True)))
    (raw / "NTU_RGBD120_samples_with_missing_skeletons.txt").write_text("x\n")
    result = preprocess(
        PreprocessSettings(
            "ntu120", raw, tmp_path / "out", benchmarks=("xsub", "xsetup"), format="pyskl"
        )
    )
    assert result.benchmarks == ["xsub", "xset"]
    assert result.ignored_other_files == 1
    data = load_pickle(tmp_path / "out" / "ntu120_3danno.pkl")
    assert data["split"] == {
        "xsub_train": [names[2], names[0]],
        "xsub_val": [names[1], names[3]],
        "xset_train": [names[0], names[3]],
        "xset_val": [names[2], names[1]],
    }
    labels = {a["frame_dir"]: a["label"] for a in data["annotations"]}
    assert labels == {names[0]: 60, names[1]: 119, names[2]: 0, names[3]: 99}
    # the same folder as NTU 60: only S001-S017 / A001-A060 belong to it, the rest is reported,
    # and a split left empty is an error naming the benchmark and the split
    with pytest.raises(PreprocessError, match="benchmark xsub of ntu60: the val split has no"):
        preprocess(PreprocessSettings("ntu60", raw, tmp_path / "out60", benchmarks=("xsub",)))
    assert not (tmp_path / "out60").exists()
    _copy(reference_dir, raw, {src[0]: "S001C001P003R001A001"})  # xsub val
    res60 = preprocess(PreprocessSettings("ntu60", raw, tmp_path / "out60", benchmarks=("xsub",)))
    assert res60.samples_written == 2 and res60.counts == {"xsub/train": 1, "xsub/val": 1}
    assert sorted(res60.skipped_outside_dataset) == sorted(n for n in names if n != names[2])
    assert (tmp_path / "out60" / "xsub" / "train.pkl").exists()
    assert not (tmp_path / "out60" / "xview").exists()


def test_missing_lists_and_empty_samples(reference_dir, tmp_path) -> None:
    src = sorted(p.stem for p in _raw(reference_dir).glob("*.skeleton"))[:3]
    packaged_missing = sorted(ntu.missing_samples("ntu60"))[0]
    raw = tmp_path / "raw"
    _copy(reference_dir, raw, {src[0]: packaged_missing, src[1]: src[1], src[2]: src[2]})
    (raw / "S001C002P001R001A002.skeleton").write_bytes(b"3\r\n0\r\n0\r\n0\r\n")  # no body
    user_list = tmp_path / "skip.txt"
    user_list.write_text(f"{src[1]}\n")

    result = preprocess(PreprocessSettings("ntu60", raw, tmp_path / "a", missing_list=user_list))
    assert result.skipped_missing_list == 2
    assert result.samples_written == 2
    assert result.empty_samples == ["S001C002P001R001A002"]
    empty = [
        a
        for a in load_pickle(tmp_path / "a/xview/train.pkl")
        if a["frame_dir"] in result.empty_samples
    ]
    assert empty[0]["keypoint"].shape == (2, 3, 25, 3) and not empty[0]["keypoint"].any()
    report = json.loads((tmp_path / "a" / "preprocess_report.json").read_text())
    assert (
        report["empty_samples"] == ["S001C002P001R001A002"] and report["skipped_missing_list"] == 2
    )

    result = preprocess(
        PreprocessSettings("ntu60", raw, tmp_path / "b", default_missing_list=False)
    )
    assert result.skipped_missing_list == 0 and result.samples_written == 4


def test_sequences_longer_than_300_frames(reference_dir, tmp_path) -> None:
    path = sorted(_raw(reference_dir).glob("*.skeleton"))[0]
    head, rest = path.read_bytes().split(b"\r\n", 1)
    num_frames = int(head) * 4
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / path.name).write_bytes(str(num_frames).encode() + b"\r\n" + rest * 4)
    shutil.copy(path, raw / "S001C001P003R001A001.skeleton")  # the xsub val split's sample
    assert num_frames > 300
    preprocess(PreprocessSettings("ntu60", raw, tmp_path / "out", benchmarks=("xsub",)))
    (ann,) = load_pickle(tmp_path / "out/xsub/train.pkl")
    assert ann["total_frames"] == num_frames and ann["keypoint"].shape == (2, num_frames, 25, 3)
    short = load_sample(path)["keypoint"]
    np.testing.assert_allclose(ann["keypoint"][:, : short.shape[1]], short, atol=1e-6)


BAD_CASES = {
    "truncated": (lambda d: d[: len(d) // 2], "file ends early|joint line has"),
    "non_numeric": (lambda d: d.replace(b" 2.533608 ", b" 2.53x608 ", 1), "non-numeric token"),
    "nan": (lambda d: d.replace(b" 2.533608 ", b" NaN ", 1), "NaN value"),
    "joint_count": (lambda d: d.replace(b"\r\n25\r\n", b"\r\n24\r\n", 1), "joint count is 24"),
    "empty": (lambda d: b"", "empty file"),
    "body_fields": (
        lambda d: d.replace(b" 0.1820031 0.1191541 2\r\n", b" 0.1820031 2\r\n", 1),
        "body line .* has 9 fields",
    ),
}


def _bad_raw(reference_dir: Path, raw: Path, case: str) -> str:
    """A copy of the first 4 raw files with one of them broken; returns the broken file's name.

    Without the broken file every split of NTU 60 still has a sample.
    """
    src = sorted(_raw(reference_dir).glob("*.skeleton"))[:4]
    raw.mkdir(parents=True)
    for p in src:
        shutil.copy(p, raw / p.name)
    broken = raw / src[0].name
    data = broken.read_bytes()
    new = BAD_CASES[case][0](data)
    assert new != data or case == "empty"
    broken.write_bytes(new)
    return src[0].name


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_file_fails_without_output(reference_dir, tmp_path, case) -> None:
    name = _bad_raw(reference_dir, tmp_path / "raw", case)
    out = tmp_path / "out"
    with pytest.raises(Exception, match=BAD_CASES[case][1]) as info:
        preprocess(PreprocessSettings("ntu60", tmp_path / "raw", out, workers=2))
    assert name in str(info.value)
    if case not in ("empty",):
        assert ".skeleton:" in str(info.value)  # a line number follows the file name
    assert not out.exists()  # nothing written: no output, no temp file, no empty folder


@pytest.mark.parametrize("case", ["truncated", "nan"])
def test_bad_file_skipped_and_reported(reference_dir, tmp_path, case) -> None:
    name = _bad_raw(reference_dir, tmp_path / "raw", case)
    result = preprocess(
        PreprocessSettings("ntu60", tmp_path / "raw", tmp_path / "out", on_error="skip")
    )
    assert result.samples_written == 3
    report = json.loads((tmp_path / "out" / "preprocess_report.json").read_text())
    assert report["num_skipped_bad"] == 1
    assert report["skipped_bad"][0]["file"] == name
    assert name in report["skipped_bad"][0]["reason"]
    total = sum(len(load_pickle(tmp_path / "out/xsub" / f"{p}.pkl")) for p in ("train", "val"))
    assert total == 3


def test_bad_sample_name(reference_dir, tmp_path) -> None:
    raw = tmp_path / "raw"
    _copy(reference_dir, raw, {"S001C001P001R001A001": "S001C001P001R001A001"})
    _copy(reference_dir, raw, {"S001C001P001R001A001": "S001C002P003R001A001"})
    shutil.copy(raw / "S001C001P001R001A001.skeleton", raw / "recording_01.skeleton")
    with pytest.raises(PreprocessError, match="recording_01.skeleton.*not an NTU RGB\\+D sample"):
        preprocess(PreprocessSettings("ntu60", raw, tmp_path / "a"))
    assert not (tmp_path / "a" / "xsub").exists()
    result = preprocess(PreprocessSettings("ntu60", raw, tmp_path / "b", on_error="skip"))
    assert result.samples_written == 2
    assert result.skipped_bad[0]["file"] == "recording_01.skeleton"


def test_unreadable_and_absent_directory(reference_dir, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(PreprocessError, match="no .skeleton files in .*empty \\(1 other"):
        preprocess(PreprocessSettings("ntu60", tmp_path / "empty", tmp_path / "out"))
    with pytest.raises(PreprocessError, match="does not exist"):
        preprocess(PreprocessSettings("ntu60", tmp_path / "nope", tmp_path / "out"))
    with pytest.raises(PreprocessError, match="not a directory"):
        preprocess(
            PreprocessSettings(
                "ntu60", _raw(reference_dir) / "S001C001P001R001A001.skeleton", tmp_path
            )
        )
    # A directory without read permission: the real OS refusal. Root ignores permissions, so
    # then the check runs in a child process that drops to an unprivileged user. After the drop
    # the child may not be able to read its own interpreter's files (a Python installed in
    # root's 0700 home, e.g. pyenv): it does a full run first, so that everything the stage
    # imports is loaded, and then refuses every further import, so that the test does not
    # depend on where Python is installed.
    base = Path(tempfile.mkdtemp(prefix="skelact-perm-"))
    try:
        os.chmod(base, 0o777)
        locked = base / "raw"
        locked.mkdir()
        os.chmod(locked, 0)
        if os.geteuid() != 0:
            with pytest.raises(PreprocessError, match="cannot read raw directory.*Permission"):
                preprocess(PreprocessSettings("ntu60", locked, base / "out"))
            return
        proc = subprocess.run(
            [sys.executable, "-c", _UNPRIVILEGED, str(_raw(reference_dir)), str(base)],
            capture_output=True, text=True,
        )  # fmt: skip
        assert proc.returncode == 3, proc.stderr
        assert "cannot read raw directory" in proc.stdout and "Permission denied" in proc.stdout
    finally:
        os.chmod(base / "raw", 0o700)
        shutil.rmtree(base)


_UNPRIVILEGED = """
import os, sys
from skelact.data.preprocess import PreprocessError, PreprocessSettings, preprocess
raw, base = sys.argv[1], sys.argv[2]
preprocess(PreprocessSettings("ntu60", raw, os.path.join(base, "warm"), workers=1))

class NoImports:
    def find_spec(self, name, path=None, target=None):
        raise ImportError(f"import of {name} after dropping privileges")

sys.meta_path.insert(0, NoImports())
os.setgid(65534)
os.setuid(65534)
try:
    preprocess(PreprocessSettings("ntu60", os.path.join(base, "raw"), os.path.join(base, "out")))
except PreprocessError as exc:
    print(exc)
    sys.exit(3)
"""


def test_cli(reference_dir, tmp_path) -> None:
    runner = CliRunner()
    raw = tmp_path / "raw"
    _copy(reference_dir, raw, {"S001C001P001R001A001": "S001C001P001R001A001"})
    _copy(reference_dir, raw, {"S001C001P001R001A001": "S001C002P003R001A001"})
    res = runner.invoke(
        app,
        ["preprocess", "--dataset", "ntu60", "--raw-dir", str(raw),
         "--out-dir", str(tmp_path / "o"), "--benchmark", "xview", "--workers", "1"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "2 samples" in res.output and (tmp_path / "o/xview/val.pkl").exists()
    (raw / "S001C001P001R001A002.skeleton").write_bytes(b"2\r\n1\r\n1 2 3\r\n")
    res = runner.invoke(
        app, ["preprocess", "--raw-dir", str(raw), "--out-dir", str(tmp_path / "p"), "--quiet"]
    )
    assert res.exit_code == 1
    assert "S001C001P001R001A002.skeleton:3: body line" in res.output
    assert not (tmp_path / "p").exists()
    res = runner.invoke(
        app,
        ["preprocess", "--raw-dir", str(raw), "--out-dir", str(tmp_path / "q"),
         "--on-error", "skip", "--dataset", "ntu120", "--benchmark", "xview"],
    )  # fmt: skip
    assert res.exit_code == 1 and "does not exist for ntu120" in res.output
    res = runner.invoke(
        app,
        ["preprocess", "--raw-dir", str(raw), "--out-dir", str(tmp_path / "q"),
         "--on-error", "skip"],
    )  # fmt: skip
    assert res.exit_code == 0 and "1 bad files were skipped" in res.output
