"""Nothing silently wrong in preprocessing: finite samples, short messages, what the raw folder
holds, one writer per output folder, interruptions and leftovers of killed runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import dead_pid, load_pickle
from skelact.data.preprocess import PreprocessError, PreprocessSettings, main_summary, preprocess
from skelact.data.skeleton_file import SkeletonFormatError
from skelact.errors import OutputBusyError, SkelactError

REPO = Path(__file__).resolve().parents[1]
GOOD = b" 2.533608 "  # a coordinate in the first reference file (x of a joint of frame 1)


def _raw(reference_dir: Path) -> list[Path]:
    """The first 4 reference files: together they fill every NTU 60 split."""
    return sorted((reference_dir / "ntu_prep" / "raw").glob("*.skeleton"))[:4]


def _folder(reference_dir: Path, raw: Path) -> list[Path]:
    raw.mkdir(parents=True)
    out = []
    for p in _raw(reference_dir):
        shutil.copy(p, raw / p.name)
        out.append(raw / p.name)
    return out


def test_error_classes_are_skelact_errors() -> None:
    assert issubclass(PreprocessError, SkelactError)
    assert issubclass(SkeletonFormatError, SkelactError)


@pytest.mark.parametrize("value", [b"1E+308", b"-1.7E+308", b"1E+39"])
def test_huge_coordinate_is_bad_input_not_nan(reference_dir, tmp_path, value) -> None:
    files = _folder(reference_dir, tmp_path / "raw")
    data = files[0].read_bytes()
    assert GOOD in data
    line = data[: data.index(GOOD)].count(b"\n") + 1
    files[0].write_bytes(data.replace(GOOD, b" " + value + b" ", 1))
    with pytest.raises(SkelactError, match="too large: pre-normalisation overflows") as e:
        preprocess(PreprocessSettings("ntu60", tmp_path / "raw", tmp_path / "a", workers=1))
    assert f"{files[0]}:{line}:" in str(e.value)
    assert not (tmp_path / "a").exists()
    result = preprocess(
        PreprocessSettings("ntu60", tmp_path / "raw", tmp_path / "b", on_error="skip")
    )
    assert result.skipped_bad[0]["file"] == files[0].name and result.samples_written == 3
    for pkl in (tmp_path / "b").rglob("*.pkl"):
        for ann in load_pickle(pkl):
            assert np.isfinite(ann["keypoint"]).all(), ann["frame_dir"]


LONG_LINES = {  # 50 MB on one line, and what the message must say about it
    "letters": (b"x", "non-numeric token 'xxx"),
    "digits": (b"1", "frame count '111.*is not an integer"),
    "fields": (b"1 ", "expected the frame count \\(one integer\\), found 25000000 fields"),
}


@pytest.mark.parametrize("case", sorted(LONG_LINES))
def test_a_50_mb_line_gives_a_short_message(reference_dir, tmp_path, case) -> None:
    unit, match = LONG_LINES[case]
    payload = unit * (50_000_000 // len(unit))
    files = _folder(reference_dir, tmp_path / "raw")
    files[0].write_bytes(payload)
    with pytest.raises(SkelactError, match=match) as info:
        preprocess(PreprocessSettings("ntu60", tmp_path / "raw", tmp_path / "a", workers=1))
    assert len(str(info.value)) < 300
    if case != "letters":
        return
    assert "(50,000,000 bytes)" in str(info.value)
    files[0].write_bytes(_raw(reference_dir)[0].read_bytes() + payload)  # after the last frame
    result = preprocess(
        PreprocessSettings("ntu60", tmp_path / "raw", tmp_path / "b", on_error="skip")
    )
    assert len(result.skipped_bad) == 1 and len(result.skipped_bad[0]["reason"]) < 300
    assert (tmp_path / "b" / "preprocess_report.json").stat().st_size < 10_000


def test_dangling_skeleton_link_is_bad_input(reference_dir, tmp_path) -> None:
    raw = tmp_path / "raw"
    _folder(reference_dir, raw)
    (raw / "S001C001P001R001A005.skeleton").symlink_to(tmp_path / "unmounted" / "x.skeleton")
    with pytest.raises(PreprocessError, match="A005.skeleton: dangling symbolic link"):
        preprocess(PreprocessSettings("ntu60", raw, tmp_path / "a"))
    result = preprocess(PreprocessSettings("ntu60", raw, tmp_path / "b", on_error="skip"))
    assert result.ignored_other_files == 0 and result.files_found == 5
    assert result.skipped_bad[0]["file"] == "S001C001P001R001A005.skeleton"
    assert "dangling" in result.skipped_bad[0]["reason"]


def test_subfolders_are_reported_or_read_with_recursive(reference_dir, tmp_path) -> None:
    raw = tmp_path / "raw"
    _folder(reference_dir, raw)
    (raw / "more").mkdir()
    shutil.copy(_raw(reference_dir)[0], raw / "more" / "S001C001P001R001A007.skeleton")
    result = preprocess(PreprocessSettings("ntu60", raw, tmp_path / "a"))
    assert result.samples_written == 4 and result.ignored_in_subfolders == 1
    assert "1 .skeleton files in subfolders were ignored; use --recursive" in main_summary(result)
    report = json.loads((tmp_path / "a" / "preprocess_report.json").read_text())
    assert report["ignored_in_subfolders"] == 1
    result = preprocess(PreprocessSettings("ntu60", raw, tmp_path / "b", recursive=True))
    assert result.samples_written == 5 and result.ignored_in_subfolders == 0
    names = [a["frame_dir"] for a in load_pickle(tmp_path / "b" / "xsub" / "train.pkl")]
    assert "S001C001P001R001A007" in names and names == sorted(names)
    shutil.copy(_raw(reference_dir)[0], raw / "more" / _raw(reference_dir)[0].name)
    with pytest.raises(PreprocessError, match="is found twice"):
        preprocess(PreprocessSettings("ntu60", raw, tmp_path / "c", recursive=True))
    only_sub = tmp_path / "nested"
    (only_sub / "a").mkdir(parents=True)
    shutil.copy(_raw(reference_dir)[0], only_sub / "a" / _raw(reference_dir)[0].name)
    with pytest.raises(PreprocessError, match="1 .skeleton files in subfolders: use --recursive"):
        preprocess(PreprocessSettings("ntu60", only_sub, tmp_path / "d"))


def test_a_second_writer_is_refused(reference_dir, tmp_path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    _folder(reference_dir, raw)
    out.mkdir()
    owner = {"pid": 1, "host": socket.gethostname(), "what": "preprocess"}  # pid 1 is alive
    (out / ".skelact.lock").write_text(json.dumps(owner))
    with pytest.raises(OutputBusyError, match="another preprocess run \\(pid 1"):
        preprocess(PreprocessSettings("ntu60", raw, out))
    assert sorted(p.name for p in out.iterdir()) == [".skelact.lock"]


def test_temps_of_a_killed_run_are_removed(reference_dir, tmp_path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    _folder(reference_dir, raw)
    pid = dead_pid()
    (out / "xsub").mkdir(parents=True)
    stale = [out / "xsub" / f".train.pkl.tmp-{pid}", out / f".preprocess_report.json.tmp-{pid}",
             out / "xsub" / f".val.pkl.k2j3.tmp-{pid}"]  # fmt: skip
    for path in stale:
        path.write_bytes(b"half")
    preprocess(PreprocessSettings("ntu60", raw, out))
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    assert (out / "xsub" / "train.pkl").exists()


_SCRIPT = """
import sys
from skelact.data.preprocess import PreprocessSettings, preprocess
from skelact.errors import InterruptedRun
try:
    preprocess(PreprocessSettings("ntu60", sys.argv[1], sys.argv[2], workers=int(sys.argv[3])))
except InterruptedRun as exc:
    print(exc)
    sys.exit(128 + exc.signum)
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_leaves_nothing_half_written(reference_dir, tmp_path, workers) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    sources = _raw(reference_dir)
    for i in range(200):  # long enough to be stopped in the middle
        os.link(sources[i % 4], raw / f"S001C00{1 + i % 3}P{1 + i % 4:03d}R001A{1 + i // 12:03d}"
                                      f".skeleton")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, str(raw), str(out), str(workers)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not any(out.rglob(".*.tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM; nothing was written" in stdout
    assert "Traceback" not in stderr
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]
