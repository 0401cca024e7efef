"""OpenPose JSON and CSV: round trips, person tracks across frames, and each refused input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from skelact.data.formats import Clip, Dropped, FormatError, csv, openpose
from skelact.data.formats.tracks import order_by_energy
from skelact.layouts import get_layout

COCO = get_layout("coco17")
BODY25 = get_layout("openpose25")


def _clip(name: str, seed: int, m: int = 2, t: int = 6, c: int = 2, scores: bool = True) -> Clip:
    """Person 0 walks (most active), person 1 stands nearly still; a few joints absent."""
    rng = np.random.default_rng(seed)
    kp = rng.uniform(50, 400, (m, t, COCO.num_joints, c)).astype(np.float32)
    kp[0] += np.linspace(0, 600, t, dtype=np.float32)[:, None, None]
    if m > 1:
        kp[1] = kp[1, :1] + rng.normal(0, 0.5, kp[1].shape).astype(np.float32)
    score = rng.uniform(0.05, 1, kp.shape[:3]).astype(np.float32) if scores else None
    kp[-1, 2, 3] = 0  # an absent joint
    if score is not None:
        score[-1, 2, 3] = 0
    return Clip(name, kp, score)


def _frame(path: Path, people: list[list[float]]) -> None:
    data = {"people": [{"pose_keypoints_2d": p} for p in people]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _person(x: float, y: float, v: int = 17, c: float = 0.9) -> list[float]:
    return [value for _ in range(v) for value in (x, y, c)]


# ---- OpenPose ------------------------------------------------------------------------------


def test_openpose_round_trip_with_scores(tmp_path):
    clips = [_clip("walk_01", 0), _clip("wave_02", 1)]
    openpose.write_clips(clips, tmp_path, COCO)
    assert (tmp_path / "walk_01" / "walk_01_000000000005_keypoints.json").is_file()
    back = list(openpose.read_clips(tmp_path, COCO))
    assert [c.name for c in back] == ["walk_01", "wave_02"]
    for clip, read in zip(clips, back, strict=True):
        np.testing.assert_array_equal(read.keypoint, clip.keypoint)
        np.testing.assert_array_equal(read.score, clip.score)
        assert read.keypoint.dtype == np.float32 and read.score.dtype == np.float32


def test_openpose_without_scores_writes_confidence_one(tmp_path):
    clip = _clip("a", 2, scores=False)
    openpose.write_clips([clip], tmp_path, COCO)
    (read,) = openpose.read_clips(tmp_path, COCO)
    np.testing.assert_array_equal(read.keypoint, clip.keypoint)
    present = np.any(clip.keypoint != 0, axis=-1)
    np.testing.assert_array_equal(read.score, present.astype(np.float32))


def test_openpose_writer_refuses_3d_and_paths(tmp_path):
    with pytest.raises(FormatError, match="needs M x T x 17 x 2"):
        openpose.write_clips([_clip("a", 0, c=3)], tmp_path, COCO)
    with pytest.raises(FormatError, match="file name"):
        openpose.write_clips([Clip("../x", _clip("a", 0).keypoint)], tmp_path, COCO)


def test_openpose_people_who_swap_list_order_stay_on_their_tracks(tmp_path):
    folder = tmp_path / "clip"
    for t in range(6):
        mover = _person(100 + 40 * t, 200)  # walks right
        stander = _person(600, 200 + (t % 2))  # stands
        people = [mover, stander] if t % 2 == 0 else [stander, mover]
        _frame(folder / f"clip_{t:012d}_keypoints.json", people)
    (read,) = openpose.read_clips(tmp_path, COCO)
    assert read.keypoint.shape == (2, 6, 17, 2)
    np.testing.assert_array_equal(read.keypoint[0, :, 0, 0], 100 + 40 * np.arange(6))
    np.testing.assert_array_equal(read.keypoint[1, :, 0, 0], np.full(6, 600))


def test_openpose_tracks_survive_a_missing_detection(tmp_path):
    folder = tmp_path / "clip"
    for t in range(5):
        people = [_person(600, 200)] if t == 2 else [_person(600, 200), _person(100 + 50 * t, 0)]
        _frame(folder / f"f_{t}.json", people[::-1] if t == 3 else people)
    (read,) = openpose.read_clips(tmp_path, COCO)
    mover, stander = read.keypoint[0, :, 0, 0], read.keypoint[1, :, 0, 0]
    np.testing.assert_array_equal(mover, [100, 150, 0, 250, 300])
    np.testing.assert_array_equal(stander, np.full(5, 600))


def test_openpose_frames_in_numeric_order_absent_joints_zero(tmp_path):
    folder = tmp_path / "c"
    for t in (10, 9, 100):
        person = _person(t, t)
        person[3 * 4 : 3 * 4 + 3] = [55.0, 66.0, 0.0]  # joint 4 absent: c == 0
        _frame(folder / f"c_{t}_keypoints.json", [person])
    (read,) = openpose.read_clips(tmp_path, COCO)
    np.testing.assert_array_equal(read.keypoint[0, :, 0, 0], [9, 10, 100])
    assert not read.keypoint[0, :, 4].any() and not read.score[0, :, 4].any()


def test_openpose_wrong_keypoint_count_is_named(tmp_path):
    _frame(tmp_path / "coco18" / "x_0_keypoints.json", [_person(1, 1, v=18)])
    (dropped,) = openpose.read_clips(tmp_path, BODY25)
    assert isinstance(dropped, Dropped) and dropped.name == "coco18"
    assert "18 keypoints per person; layout openpose25 has 25" in dropped.reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not readable JSON"),
        ('{"people": 3}', "no 'people' list"),
        ('{"people": [{"pose_keypoints_2d": [1, 2]}]}', "not x, y, c triples"),
        ('{"people": [{"pose_keypoints_2d": [NaN, 2, 1]}]}', "non-finite"),
    ],
)
def test_openpose_bad_file_drops_its_clip(tmp_path, text, reason):
    good = _clip("good", 0)
    openpose.write_clips([good], tmp_path, COCO)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "bad_0_keypoints.json").write_text(text)
    bad, read = openpose.read_clips(tmp_path, COCO)
    assert isinstance(bad, Dropped) and bad.name == "bad" and reason in bad.reason
    assert "bad_0_keypoints.json" in bad.reason
    np.testing.assert_array_equal(read.keypoint, good.keypoint)


def test_openpose_whole_source_problems_raise(tmp_path):
    with pytest.raises(FormatError, match="not a folder"):
        list(openpose.read_clips(tmp_path / "nope", COCO))
    _frame(tmp_path / "x_0_keypoints.json", [])
    with pytest.raises(FormatError, match="give the folder above the clip folders"):
        list(openpose.read_clips(tmp_path, COCO))


# ---- CSV -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("dims", "scores"), [(2, True), (3, False), (3, True)])
def test_csv_round_trip(tmp_path, dims, scores):
    clips = [_clip("a", 3, c=dims, scores=scores), _clip("b", 4, m=1, c=dims, scores=scores)]
    csv.write_clips(clips, tmp_path, COCO)
    header = (tmp_path / "a.csv").read_text().splitlines()[0]
    assert header == "frame,person,joint,x,y" + (",z" if dims == 3 else "") + (
        ",score" if scores else ""
    )
    back = list(csv.read_clips(tmp_path, COCO))
    for clip, read in zip(clips, back, strict=True):
        assert read.name == clip.name
        np.testing.assert_array_equal(read.keypoint, clip.keypoint)
        if scores:
            np.testing.assert_array_equal(read.score, clip.score)
        else:
            assert read.score is None


def _wide_text(clip: Clip) -> str:
    names = COCO.joints
    cols = [f"{j}_{a}" for j in names for a in ("x", "y")] + [f"{j}_score" for j in names]
    lines = ["frame,person," + ",".join(cols)]
    for t in range(clip.num_frames):
        for m in range(clip.keypoint.shape[0]):
            xy = clip.keypoint[m, t].reshape(-1).astype(str).tolist()
            sc = clip.score[m, t].astype(str).tolist()
            lines.append(",".join([str(t), f"{m + 7}", *xy, *sc]))
    return "\n".join(lines) + "\n"


def test_csv_wide_form_reads_like_the_long_form(tmp_path):
    clip = _clip("wide", 5)
    (tmp_path / "wide.csv").write_text(_wide_text(clip))
    (read,) = csv.read_clips(tmp_path / "wide.csv", COCO)
    np.testing.assert_array_equal(read.keypoint, clip.keypoint)
    np.testing.assert_array_equal(read.score, clip.score)


def test_csv_joint_by_index_and_missing_rows_absent(tmp_path):
    rows = ["frame,person,joint,x,y", "3,0,0,1.5,2.5", "3,0,nose,9,9"]
    (tmp_path / "dup.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "ok.csv").write_text("joint,frame,x,y\n5,3,1.5,2.5\n0,4,7,8\n")
    dup, ok = csv.read_clips(tmp_path, COCO)
    assert isinstance(dup, Dropped) and "row 2" in dup.reason and "again" in dup.reason
    assert ok.keypoint.shape == (1, 2, 17, 2) and ok.score is None
    assert ok.keypoint[0, 0, 5].tolist() == [1.5, 2.5] and ok.keypoint[0, 1, 0].tolist() == [7, 8]
    assert np.count_nonzero(ok.keypoint) == 4


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("frame,person,joint,x,y\n0,0,neck,1,2\n", "unknown joint 'neck'"),
        ("frame,person,joint,x,y\n0,0,17,1,2\n", "joint index 17 is outside"),
        ("frame,person,joint,x,y\n0,0,nose,1,abc\n", "row 2: 'abc' is not a number"),
        ("frame,person,joint,x,y\nzero,0,nose,1,2\n", "frame 'zero' is not an integer"),
        ("person,joint,x,y\n0,nose,1,2\n", "no 'frame' column"),
        ("frame,joint,x\n0,nose,1\n", "no column 'y'"),
        ("frame,joint,x,y,w\n0,nose,1,2,3\n", "unknown column(s) ['w']"),
        ("frame,joint,x,y\n0,nose,1\n", "row 2 has 3 cells"),
        ("frame,nose_x,nose_y\n0,1,2\n", "without columns for joint(s)"),
        ("frame,person,joint,x,y\n", "no data rows"),
    ],
)
def test_csv_bad_file_drops_its_clip(tmp_path, text, reason):
    (tmp_path / "bad.csv").write_text(text)
    (dropped,) = csv.read_clips(tmp_path, COCO)
    assert isinstance(dropped, Dropped) and dropped.name == "bad"
    assert reason in dropped.reason and dropped.reason.startswith("bad.csv: ")


def test_csv_whole_source_problems_raise(tmp_path):
    with pytest.raises(FormatError, match="no .csv files"):
        list(csv.read_clips(tmp_path, COCO))
    with pytest.raises(FormatError, match="no such file or folder"):
        list(csv.read_clips(tmp_path / "x.csv", COCO))


def test_csv_persons_come_out_most_active_first(tmp_path):
    clip = _clip("a", 6)
    swapped = Clip("a", clip.keypoint[::-1].copy(), clip.score[::-1].copy())
    csv.write_clips([swapped], tmp_path, COCO)
    (read,) = csv.read_clips(tmp_path, COCO)
    np.testing.assert_array_equal(read.keypoint, clip.keypoint)


def test_an_empty_person_is_never_ranked_before_a_still_one():
    kp = np.zeros((2, 3, 17, 2), np.float32)
    kp[1, :, :] = 5.0  # present, but no motion at all: energy 0, like the empty person 0
    np.testing.assert_array_equal(order_by_energy(kp, None), [1, 0])


def test_a_short_lived_false_detection_never_becomes_body_0(tmp_path):
    folder = tmp_path / "clip"
    for t in range(20):
        people = [_person(300 + 5 * t, 200)]
        if 8 <= t < 11:  # a jumpy false positive for 3 frames: std 94 px against 29 px
            people.insert(0, _person(900 - 200 * (t % 2), 50))
        _frame(folder / f"clip_{t}.json", people)
    (read,) = openpose.read_clips(tmp_path, COCO)
    np.testing.assert_array_equal(read.keypoint[0, :, 0, 0], 300 + 5 * np.arange(20))
    assert np.count_nonzero(read.keypoint[1, :, 0, 0]) == 3
