"""MMPose, Ultralytics YOLO-pose and AlphaPose output, written by hand in exactly their formats.

Each reader meets the corners real runs produce: frames without people (no file, or an empty
instance list), people entering and leaving, joints with score 0 or at Ultralytics' (0, 0),
scores beyond 1 (MMPose) or on AlphaPose's [0, 6] COCO scale, and track ids that are real or
that a tracker-less run writes for everyone. Plus OpenPose's COCO-18 model (issue 29).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from skelact.data.formats import Clip, Dropped, FormatError, alphapose, mmpose, openpose, yolo
from skelact.data.importer import ImportDataError, ImportSettings, import_data
from skelact.layouts import get_layout

COCO = get_layout("coco17")
HALPE = get_layout("halpe26")
COCO18 = get_layout("openpose_coco18")


def _pose(x: float, y: float, v: int = 17, spread: float = 10.0) -> np.ndarray:
    """``(v, 2)`` pixel keypoints around (x, y)."""
    return np.stack([x + spread * np.arange(v) / v, y + spread * np.cos(np.arange(v))], axis=1)


def _read(reader, src: Path, layout, **options) -> list[Clip | Dropped]:
    return list(reader(src, layout, **options))


# ---- MMPose ---------------------------------------------------------------------------------


def _instance(kp: np.ndarray, scores: list[float] | np.ndarray, **extra) -> dict:
    return {"keypoints": kp.tolist(), "keypoint_scores": list(map(float, scores)),
            "bbox": [[0.0, 0.0, 10.0, 10.0]], "bbox_score": 0.9, **extra}  # fmt: skip


def test_mmpose_video_json_with_empty_frames_entering_people_and_clipped_scores(tmp_path):
    a, b = _pose(100, 200), _pose(900, 300)
    scores = np.full(17, 0.8)
    scores[3] = 0.0  # an absent joint: its coordinates are dropped
    scores[4] = 1.07  # SimCC/heatmap overshoot: clipped to 1
    frames = [
        {"frame_id": 0, "instances": [_instance(a, scores)]},
        {"frame_id": 1, "instances": []},  # nobody detected
        {"frame_id": 2, "instances": [_instance(b + 1, np.full(17, 0.7)),
                                      _instance(a + 5, scores)]},  # someone enters
        {"frame_id": 3, "instances": [_instance(b + 2, np.full(17, 0.7))]},  # the first leaves
    ]  # fmt: skip
    (tmp_path / "walk.json").write_text(json.dumps(frames))
    [clip] = _read(mmpose.read_clips, tmp_path, COCO)
    assert clip.name == "walk" and clip.keypoint.shape == (2, 4, 17, 2)
    first = int(np.argmax(clip.score[:, 0].sum(-1)))  # the track seen in frame 0
    other = 1 - first
    np.testing.assert_allclose(clip.keypoint[first, 2], np.where(scores[:, None] == 0, 0, a + 5))
    assert clip.score[first, 0, 3] == 0 and clip.keypoint[first, 0, 3].tolist() == [0, 0]
    assert clip.score[first, 0, 4] == 1.0
    assert not clip.score[:, 1].any()  # the empty frame
    assert not clip.score[other, :2].any() and clip.score[other, 3].all()
    assert not clip.score[first, 3].any()


def test_mmpose_track_ids_and_per_image_folders(tmp_path):
    folder = tmp_path / "clip_a"
    folder.mkdir()
    left, right = _pose(100, 100), _pose(1000, 100)
    # the two people swap sides between frames: by position they would swap tracks, by id not
    for n, (p, q) in enumerate([(left, right), (right, left)]):
        insts = [_instance(p, np.full(17, 0.9), track_id=7), _instance(q, np.full(17, 0.5),
                                                                        track_id=3)]  # fmt: skip
        (folder / f"frame_{n:04d}.json").write_text(json.dumps(insts))
    [clip] = _read(mmpose.read_clips, tmp_path, COCO)
    track7 = int(np.argmax(clip.score[:, 0, 0]))
    np.testing.assert_allclose(clip.keypoint[track7, 0], left)
    np.testing.assert_allclose(clip.keypoint[track7, 1], right)


def test_mmpose_round_trip_and_refusals(tmp_path):
    rng = np.random.default_rng(0)
    kp = rng.uniform(10, 500, (2, 5, 26, 2)).astype(np.float32)
    score = rng.uniform(0.1, 1, (2, 5, 26)).astype(np.float32)
    kp[1, :2] = 0
    score[1, :2] = 0  # the second person enters at frame 2
    mmpose.write_clips([Clip("c", kp, score)], tmp_path, HALPE, with_track_ids=True)
    [back] = _read(mmpose.read_clips, tmp_path, HALPE)  # random points: only ids tell them apart
    order = np.argsort(-back.score.sum((1, 2)))
    np.testing.assert_array_equal(back.keypoint[order], kp[np.argsort(-score.sum((1, 2)))])
    [wrong] = _read(mmpose.read_clips, tmp_path, COCO)
    assert isinstance(wrong, Dropped) and "26 keypoints" in wrong.reason
    assert "--layout halpe26" in wrong.reason
    bad = [{"frame_id": 0, "instances": [_instance(_pose(1, 1), [-0.1] + [0.5] * 16)]}]
    (tmp_path / "c.json").write_text(json.dumps(bad))
    [neg] = _read(mmpose.read_clips, tmp_path, COCO)
    assert isinstance(neg, Dropped) and "negative keypoint score" in neg.reason


# ---- Ultralytics YOLO-pose ------------------------------------------------------------------


def _yolo_line(xy: np.ndarray, v: np.ndarray, tail: str = "") -> str:
    """A person's line as Ultralytics writes it: class, box, then x y v per keypoint (%g)."""
    xy = np.where((v < 0.5)[:, None], 0.0, xy)  # Ultralytics zeroes unconfident keypoints
    values = [0, 0.5, 0.5, 0.2, 0.6, *np.concatenate([xy, v[:, None]], 1).reshape(-1)]
    return " ".join(f"{x:g}" for x in values) + tail


def test_yolo_frames_gaps_missing_keypoints_and_pixels(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    xy = np.stack([np.linspace(0.4, 0.6, 17), np.linspace(0.2, 0.8, 17)], 1)
    v = np.full(17, 0.9)
    v[5] = 0.3  # under 0.5: written as 0 0 and read as absent
    conf = " 0.876"  # save_conf=True: one value with a decimal point is the box confidence
    (labels / "video_1.txt").write_text(_yolo_line(xy, v, conf) + "\n")
    # no video_2.txt: nobody in frame 2; frame 3 has two people, the second a passer-by
    (labels / "video_3.txt").write_text(_yolo_line(xy + 0.01, v, conf) + "\n"
                                        + _yolo_line(xy * 0.2, v, conf) + "\n")  # fmt: skip
    (labels / "other_10.txt").write_text(_yolo_line(xy, v) + "\n")
    clips = _read(yolo.read_clips, labels, COCO, img_shape=(1080, 1920))
    assert [c.name for c in clips] == ["other", "video"]
    video = clips[1]
    assert video.keypoint.shape == (2, 3, 17, 2) and video.img_shape == (1080, 1920)
    assert not video.score[:, 1].any()  # the missing file is an empty frame
    np.testing.assert_allclose(video.keypoint[0, 0, 0], xy[0] * [1920, 1080], rtol=1e-5)
    assert video.score[0, 0, 5] == 0 and video.keypoint[0, 0, 5].tolist() == [0, 0]
    np.testing.assert_allclose(video.score[0, 0, 0], 0.9)
    assert clips[0].num_frames == 1


def test_yolo_track_ids_and_refusals(tmp_path):
    xy = np.stack([np.linspace(0.1, 0.2, 17), np.linspace(0.1, 0.3, 17)], 1)
    v = np.full(17, 0.9)
    # model.track(save_txt=True): the id is the last value; with save_conf, conf then id
    (tmp_path / "t_1.txt").write_text(_yolo_line(xy, v, " 4") + "\n"
                                      + _yolo_line(xy + 0.6, v, " 9") + "\n")  # fmt: skip
    (tmp_path / "t_2.txt").write_text(_yolo_line(xy + 0.6, v, " 0.8 4") + "\n"
                                      + _yolo_line(xy, v, " 0.7 9") + "\n")  # fmt: skip
    [clip] = _read(yolo.read_clips, tmp_path, COCO, img_shape=(100, 100))
    track4 = int(np.argmin(clip.keypoint[:, 0, 0, 0]))  # id 4 starts on the left
    assert clip.keypoint[track4, 1, 0, 0] > 50  # and stays id 4 on the right
    with pytest.raises(FormatError, match="--img-shape"):
        _read(yolo.read_clips, tmp_path, COCO)
    (tmp_path / "t_2.txt").write_text(_yolo_line(xy[:16], v[:16]) + "\n")
    [short] = _read(yolo.read_clips, tmp_path, COCO, img_shape=(100, 100))
    assert isinstance(short, Dropped) and "t_2.txt: line 1" in short.reason
    (tmp_path / "lonely.txt").write_text(_yolo_line(xy, v) + "\n")
    with pytest.raises(FormatError, match="lonely.txt"):
        _read(yolo.read_clips, tmp_path, COCO, img_shape=(100, 100))


def test_yolo_import_needs_the_frame_size(tmp_path):
    (tmp_path / "labels.csv").write_text("clip,label\n")
    settings = ImportSettings(fmt="yolo", src=tmp_path, layout="coco17",
                              labels=tmp_path / "labels.csv", out_dir=tmp_path / "out")  # fmt: skip
    with pytest.raises(ImportDataError, match="--img-shape HEIGHTxWIDTH is required for yolo"):
        import_data(settings)


# ---- AlphaPose ------------------------------------------------------------------------------


def _ap_entry(image: str | int, kp: np.ndarray, c: float, idx) -> dict:
    triples = np.concatenate([kp, np.full((len(kp), 1), c)], 1)
    return {"image_id": image, "category_id": 1, "keypoints": triples.reshape(-1).tolist(),
            "score": 2.5, "box": [0, 0, 10, 10], "idx": idx}  # fmt: skip


def test_alphapose_coco_scores_are_scaled_and_zero_ids_mean_no_tracker(tmp_path):
    left, right = _pose(100, 100), _pose(1000, 100)
    entries = [
        _ap_entry("0.jpg", left, 4.5, 0), _ap_entry("0.jpg", right, 3.0, 0),
        # frame 1: nobody; frame 2: the two have moved a little (ids all 0: match by position)
        _ap_entry("2.jpg", right + 3, 3.0, 0), _ap_entry("2.jpg", left + 3, 6.0, 0),
    ]  # fmt: skip
    (tmp_path / "clip.json").write_text(json.dumps(entries))
    [clip] = _read(alphapose.read_clips, tmp_path, COCO)
    assert clip.keypoint.shape == (2, 3, 17, 2) and not clip.score[:, 1].any()
    lefty = int(np.argmin(clip.keypoint[:, 0, 0, 0]))
    np.testing.assert_allclose(clip.keypoint[lefty, 2], left + 3)  # matched by position
    np.testing.assert_allclose(clip.score[lefty, [0, 2], 0], [0.75, 1.0])  # [0, 6] -> [0, 1]


def test_alphapose_track_ids_halpe26_and_folder_results(tmp_path):
    folder = tmp_path / "clip_b"
    folder.mkdir()
    left, right = _pose(100, 100, 26), _pose(1000, 100, 26)
    entries = [_ap_entry("frame_5.jpg", left, 0.9, [1]), _ap_entry("frame_5.jpg", right, 0.8, [2]),
               _ap_entry("frame_6.jpg", right, 0.9, [1]), _ap_entry("frame_6.jpg", left, 0.8, [2])]
    (folder / alphapose.RESULTS_NAME).write_text(json.dumps(entries))
    [clip] = _read(alphapose.read_clips, tmp_path, HALPE)
    one = int(np.argmin(clip.keypoint[:, 0, 0, 0]))
    np.testing.assert_allclose(clip.keypoint[one, 1], right)  # PoseFlow's id wins over position
    np.testing.assert_allclose(clip.score[one, 0, 0], 0.9)  # halpe26 scores kept as they are
    [wrong] = _read(alphapose.read_clips, tmp_path, COCO)
    assert isinstance(wrong, Dropped) and "--layout halpe26" in wrong.reason


def test_alphapose_writer_round_trip_without_tracker(tmp_path):
    rng = np.random.default_rng(3)
    kp = rng.uniform(10, 900, (1, 4, 17, 2)).astype(np.float32)
    score = rng.uniform(0.2, 1, (1, 4, 17)).astype(np.float32)
    alphapose.write_clips([Clip("x", kp, score)], tmp_path, COCO, with_track_ids=False)
    entries = json.loads((tmp_path / "x.json").read_text())
    assert {e["idx"] for e in entries} == {0} and max(e["keypoints"][2] for e in entries) > 1
    [back] = _read(alphapose.read_clips, tmp_path, COCO)
    np.testing.assert_allclose(back.keypoint, kp, atol=1e-3)
    np.testing.assert_allclose(back.score, score, atol=1e-4)


# ---- OpenPose COCO-18 (issue 29) -----------------------------------------------------------


def _openpose_frame(path: Path, v: int) -> None:
    flat = [x for p in _pose(50, 60, v) for x in (*p, 0.8)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": flat}]}))


def test_openpose_coco18_is_read_and_a_mismatch_names_the_layout(tmp_path):
    for t in range(3):
        _openpose_frame(tmp_path / "c" / f"c_{t:012d}_keypoints.json", 18)
    [clip] = _read(openpose.read_clips, tmp_path, COCO18)
    assert clip.keypoint.shape == (1, 3, 18, 2)
    [wrong] = _read(openpose.read_clips, tmp_path, COCO)
    assert isinstance(wrong, Dropped)
    assert "18 keypoints per person; layout coco17 has 17" in wrong.reason
    assert "--layout openpose_coco18" in wrong.reason
