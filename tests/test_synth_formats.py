"""``skelact synth --format``: the NTU generator's samples in every layout and outside format."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from skelact.cli import app
from skelact.data import ntu
from skelact.data.formats import Clip, npz, openpose, pyskl
from skelact.data.formats import csv as csv_format
from skelact.data.synth import SynthError, SynthSettings
from skelact.data.synth.formats import FormatSettings, synth_clip, write_synthetic
from skelact.data.synth.plan import plan_samples
from skelact.data.synth.rest_pose import REST_POSE
from skelact.data.synth.retarget import SYNTH_LAYOUTS, retarget
from skelact.layouts import NTU25, get_layout

CLASSES, PER_CLASS = 3, 2  # class 3 is a two-person interaction


def _settings(out: Path, **kw) -> SynthSettings:
    return SynthSettings(out_dir=out, num_classes=CLASSES, samples_per_class=PER_CLASS,
                         frames_min=12, frames_max=20, **kw)  # fmt: skip


def _read(fmt: str, out: Path, layout) -> list[Clip]:
    if fmt == "openpose":
        clips = openpose.read_clips(out, layout)
    elif fmt == "csv":
        clips = csv_format.read_clips(out / "clips", layout)
    elif fmt == "npz":
        clips = npz.read_clips(out / "synth.npz", layout)
    else:
        clips = pyskl.read_clips(out / "synth.pkl", layout)
    clips = list(clips)
    assert all(isinstance(c, Clip) for c in clips), [c for c in clips if not isinstance(c, Clip)]
    return clips


CASES = [(f, name, 2) for f in ("openpose", "csv", "npz", "pyskl") for name in SYNTH_LAYOUTS]
CASES += [(f, name, 3) for f in ("csv", "npz", "pyskl") for name in ("coco17", "ntu25")]


@pytest.mark.parametrize(("fmt", "layout_name", "dims"), CASES)
def test_every_format_reads_back(tmp_path: Path, fmt: str, layout_name: str, dims: int) -> None:
    layout = get_layout(layout_name)
    result = write_synthetic(_settings(tmp_path), FormatSettings(fmt, layout_name, dims))
    clips = _read(fmt, tmp_path, layout)
    assert len(clips) == CLASSES * PER_CLASS
    specs = {s.name: s for s in plan_samples(CLASSES, PER_CLASS, 0)}
    split_of = {n: ntu.split_of(ntu.parse_sample_name(n), "ntu60", "xsub") for n in specs}
    seen_fraction: list[float] = []
    for clip in clips:
        m, t, v, c = clip.keypoint.shape
        assert (v, c) == (layout.num_joints, dims) and 12 <= t <= 20
        assert np.isfinite(clip.keypoint).all()
        if fmt == "npz":  # rows padded to 2 persons
            assert m == 2
        elif fmt != "openpose":  # the performers only; OpenPose also sees false detections
            assert m == (2 if specs[clip.name].action == 3 else 1)
        if dims == 2 and fmt != "npz":  # npz has no scores
            assert clip.score is not None and clip.score.min() >= 0 and clip.score.max() <= 1
            seen = clip.score > 0
            seen_fraction.append(seen[0].mean())
            x, y = clip.keypoint[..., 0][seen], clip.keypoint[..., 1][seen]
            assert x.min() >= 0 and x.max() < 1920 and y.min() >= 0 and y.max() < 1080
        if dims == 3 and fmt != "npz":
            assert clip.score is None
    if seen_fraction:  # most joints of the performer seen, some missed
        assert 0.8 < np.mean(seen_fraction) < 1.0
    if fmt == "npz":  # no names: the same labels and splits
        pairs = sorted((specs[n].action - 1, split_of[n]) for n in specs)
        assert sorted((c.label, c.split) for c in clips) == pairs
    if fmt == "pyskl":
        assert {c.name: (c.label, c.split) for c in clips} == {
            n: (specs[n].action - 1, split_of[n]) for n in specs}  # fmt: skip
    if fmt in ("openpose", "csv"):
        rows = list(csv.DictReader((tmp_path / "labels.csv").open()))
        names = ntu.action_names(CLASSES)
        assert sorted(r["clip"] for r in rows) == sorted(c.name for c in clips)
        assert all(r["label"] == names[specs[r["clip"]].action - 1] for r in rows)
        assert all(r["split"] == split_of[r["clip"]] for r in rows)
    manifest = json.loads((tmp_path / "synth.json").read_text())
    assert (manifest["format"], manifest["layout"], manifest["dims"]) == (fmt, layout_name, dims)
    counts = result.split_counts["ntu60_xsub"]
    assert counts["train"] + counts["val"] == len(clips)


def test_ntu25_3d_is_the_generator_itself(tmp_path: Path) -> None:
    rest = np.asarray(REST_POSE)[None]
    np.testing.assert_array_equal(retarget(rest, "ntu25"), rest)
    spec = plan_samples(CLASSES, PER_CLASS, 0)[0]
    a = synth_clip(spec, _settings(tmp_path), FormatSettings("pyskl", "ntu25", 3))
    b = synth_clip(spec, _settings(tmp_path), FormatSettings("pyskl", "ntu25", 3))
    np.testing.assert_array_equal(a.keypoint, b.keypoint)  # deterministic
    assert a.keypoint.shape[2] == NTU25.num_joints and 2.0 < a.keypoint[0, -1, 0, 2] < 4.0


def test_retarget_puts_joints_where_they_belong() -> None:
    rest = np.asarray(REST_POSE)[None]
    coco = get_layout("coco17")
    out = retarget(rest, "coco17")[0]
    nose, head = out[coco.index("nose")], rest[0, NTU25.index("head")]
    assert nose[2] < head[2] - 0.05  # in front of the head (the body faces -z)
    assert out[coco.index("left_eye"), 0] < 0 < out[coco.index("right_eye"), 0]  # left is -x
    op = get_layout("openpose25")
    out = retarget(rest, "openpose25")[0]
    np.testing.assert_array_equal(out[op.index("mid_hip")], rest[0, NTU25.index("spine_base")])
    assert out[op.index("left_heel"), 2] > out[op.index("left_big_toe"), 2]  # heel behind toe


def test_bad_options_refused(tmp_path: Path) -> None:
    with pytest.raises(SynthError, match="2-D keypoints only"):
        write_synthetic(_settings(tmp_path), FormatSettings("openpose", "coco17", 3))
    with pytest.raises(SynthError, match="cannot write layout 'my_rig'"):
        write_synthetic(_settings(tmp_path), FormatSettings("csv", "my_rig", 2))
    with pytest.raises(SynthError, match="unknown format 'mat'"):
        write_synthetic(_settings(tmp_path), FormatSettings("mat", "coco17", 2))
    result = CliRunner().invoke(app, ["synth", "--out-dir", str(tmp_path), "--dims", "2"])
    assert result.exit_code == 1 and "--layout and --dims need --format" in result.output
    assert not any(tmp_path.iterdir())


def test_rerun_needs_clean(tmp_path: Path) -> None:
    write_synthetic(_settings(tmp_path), FormatSettings("openpose"))
    before = sorted(tmp_path.rglob("*_keypoints.json"))
    with pytest.raises(SynthError, match="openpose clip files .* --clean"):
        write_synthetic(_settings(tmp_path, seed=1), FormatSettings("openpose"))
    write_synthetic(_settings(tmp_path, seed=1, clean=True), FormatSettings("openpose"))
    after = sorted(tmp_path.rglob("*_keypoints.json"))
    assert after != before
    clips = {p.parent.name for p in after}
    assert {p.name for p in tmp_path.iterdir() if p.is_dir()} == clips  # no stale folders


def test_cli_openpose_then_import_ready(tmp_path: Path) -> None:
    args = ["synth", "--out-dir", str(tmp_path), "--format", "openpose", "--layout", "coco17",
            "--num-classes", "3", "--samples-per-class", "2", "--frames-max", "20",
            "--frames-min", "12", "--quiet"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "labels.csv").is_file()
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 6
