"""Kinetics-Skeleton (ST-GCN release) and NW-UCLA (all_sqe JSON) written by hand in their formats,
read, imported as ``data.source`` values, and their planted problems named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from skelact.config import ConfigError, import_options, parse_params, synth_format
from skelact.data.formats import Dropped, FormatError, kinetics, nwucla
from skelact.data.importer import ImportDataError, ImportSettings, import_data
from skelact.data.validate import validate_file
from skelact.layouts import get_layout

COCO18 = get_layout("openpose_coco18")
KINECT1 = get_layout("kinect_v1_20")


def _skeleton(x: float, y: float, s: float) -> dict:
    pose = [v for j in range(18) for v in (x + 0.01 * j, y + 0.02 * (j % 5))]
    return {"pose": [round(v, 3) for v in pose], "score": [s] * 18}


def _release(root: Path, clips: dict[str, tuple[str, int, list]], labels: dict | None = None):
    """Kinetics-Skeleton files: ``clips`` maps video id -> (split, label_index, frames)."""
    entries: dict[str, dict] = {"train": {}, "val": {}}
    for video, (split, index, frames) in clips.items():
        folder = root / kinetics.PARTS[split][0]
        folder.mkdir(parents=True, exist_ok=True)
        body = {"data": frames, "label": f"class {index}", "label_index": index}
        (folder / f"{video}.json").write_text(json.dumps(body))
        entries[split][video] = {"has_skeleton": True, "label": f"class {index}",
                                 "label_index": index}  # fmt: skip
    for split, extra in (labels or {}).items():
        entries[split].update(extra)
    for split, (folder, label_file) in kinetics.PARTS.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / label_file).write_text(json.dumps(entries[split]))


def test_kinetics_people_in_and_out_empty_frames_and_has_skeleton(tmp_path):
    crowd = [_skeleton(0.1 * m, 0.5, s) for m, s in enumerate([0.2, 0.3, 0.4, 0.5, 0.6, 0.99])]
    zero = _skeleton(0.5, 0.5, 0.8)
    zero["score"][4] = 0.0  # a 0-score joint: its coordinates are dropped
    frames = [
        {"frame_index": 1, "skeleton": crowd},  # 6 people: only the first 5 are read
        {"frame_index": 2, "skeleton": []},  # nobody
        {"frame_index": 4, "skeleton": [zero]},  # frame 3 missing: empty too
    ]
    _release(tmp_path, {"vid_a": ("train", 1, frames)},
             {"val": {"vid_gone": {"has_skeleton": False, "label": "class 0", "label_index": 0}}})
    [clip] = kinetics.read_clips(tmp_path, COCO18)
    assert (clip.name, clip.label, clip.split, clip.img_shape) == ("vid_a", 1, "train", (256, 340))
    assert clip.keypoint.shape == (2, 4, 18, 2)
    # the 6th (score 0.99) was never read; of the first five, 0.6 and 0.5 are kept, best first
    np.testing.assert_allclose(clip.score[:, 0, 0], [0.6, 0.5])
    np.testing.assert_allclose(clip.keypoint[0, 0, 0], [0.4 * 340, 0.5 * 256], rtol=1e-5)
    assert not clip.score[:, 1:3].any() and not clip.score[1, 3].any()
    assert clip.score[0, 3, 4] == 0 and clip.keypoint[0, 3, 4].tolist() == [0, 0]
    assert kinetics.class_names(tmp_path) == ["class 0", "class 1"]


def test_kinetics_planted_problems_are_named(tmp_path):
    good = [{"frame_index": 0, "skeleton": [_skeleton(0.3, 0.3, 0.9)]}]
    short = [{"frame_index": 0, "skeleton": [{"pose": [0.1] * 30, "score": [0.5] * 18}]}]
    _release(tmp_path, {"ok": ("train", 0, good), "short": ("train", 0, short),
                        "val_ok": ("val", 1, good), "mislabelled": ("val", 1, good)})  # fmt: skip
    path = tmp_path / "kinetics_val" / "mislabelled.json"
    path.write_text(path.read_text().replace('"label_index": 1', '"label_index": 0'))
    (tmp_path / "kinetics_train" / "stray.json").write_text(json.dumps({"data": good}))
    got = {c.name: c for c in kinetics.read_clips(tmp_path, COCO18)}
    assert isinstance(got["short"], Dropped) and "pose has 30 values" in got["short"].reason
    assert "stray.json: not in kinetics_train_label.json" in got["stray"].reason
    assert "label_index 0, but the label file says 1" in got["mislabelled"].reason
    settings = ImportSettings(fmt="kinetics", src=tmp_path, layout="openpose_coco18",
                              out_dir=tmp_path / "out", name="kinetics")  # fmt: skip
    with pytest.raises(ImportDataError, match="clip 'short': kinetics_train/short.json"):
        import_data(settings)
    settings.on_error = "skip"
    result = import_data(settings)
    assert {d["clip"] for d in result.dropped} == {"short", "stray", "mislabelled"}
    assert result.totals == {"train": 1, "val": 1} and result.split_method == "source"
    assert (tmp_path / "out" / "kinetics" / "train.pkl").is_file()
    assert validate_file(tmp_path / "out" / "kinetics" / "val.pkl").ok
    (tmp_path / "kinetics_val_label.json").unlink()
    with pytest.raises(FormatError, match="kinetics_val_label.json: missing"):
        list(kinetics.read_clips(tmp_path, COCO18))


def _ucla(folder: Path, name: str, frames: int = 5, **body) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(name))
    skel = rng.normal(0, 0.3, (frames, 20, 3)) + [0, 0, 3]
    (folder / f"{name}.json").write_text(json.dumps({"file_name": name,
                                                     "skeletons": skel.tolist(), **body}))


def test_nwucla_labels_views_and_planted_problems(tmp_path):
    sqe = tmp_path / nwucla.FOLDER
    for name in ("a01_s01_e00_v01", "a12_s02_e01_v02", "a08_s03_e02_v03", "a07_s01_e00_v01",
                 "a02_s01_e00_v04", "junk"):  # fmt: skip
        _ucla(sqe, name)
    (sqe / "a03_s01_e00_v01.json").write_text(json.dumps({"skeletons": [[[0, 0]] * 20]}))
    (tmp_path / "synth.json").write_text("{}")  # beside all_sqe: not read
    got = {c.name: c for c in nwucla.read_clips(tmp_path, KINECT1)}
    assert (got["a01_s01_e00_v01"].label, got["a01_s01_e00_v01"].split) == (0, "train")
    assert (got["a12_s02_e01_v02"].label, got["a12_s02_e01_v02"].split) == (9, "train")
    assert (got["a08_s03_e02_v03"].label, got["a08_s03_e02_v03"].split) == (6, "val")
    assert got["a01_s01_e00_v01"].keypoint.shape == (1, 5, 20, 3)
    assert got["a01_s01_e00_v01"].score is None
    assert "action 7 is not one of" in got["a07_s01_e00_v01"].reason
    assert "view 4" in got["a02_s01_e00_v04"].reason
    assert "not an NW-UCLA name" in got["junk"].reason
    assert "expected T x 20 x 3" in got["a03_s01_e00_v01"].reason
    result = import_data(ImportSettings(fmt="nwucla", src=tmp_path, layout="kinect_v1_20",
                                        out_dir=tmp_path / "out", on_error="skip"))  # fmt: skip
    assert result.classes == list(nwucla.ACTIONS.values()) and len(result.dropped) == 4
    assert result.rules == {"body": 3} and result.totals == {"train": 2, "val": 1}
    with pytest.raises(FormatError, match="layout coco17 has 17"):
        list(nwucla.read_clips(tmp_path, get_layout("coco17")))


def test_data_sets_as_sources_in_params():
    params = parse_params({"data": {"source": "kinetics", "raw_dir": "raw"},
                           "benchmarks": ["kinetics"]})  # fmt: skip
    options = import_options(params)
    assert (options["fmt"], options["layout"], options["name"]) == (
        "kinetics", "openpose_coco18", "kinetics")
    assert options["labels"] is None and str(options["src"]) == "raw"
    assert synth_format(params, None, None, None) == ("kinetics", "openpose_coco18", 2)
    ucla = parse_params({"data": {"source": "nwucla"}, "benchmarks": ["nwucla_xview"]})
    assert synth_format(ucla, None, None, None) == ("nwucla", "kinect_v1_20", 3)
    assert ucla.num_classes is None and ucla.mode == "quick"
    with pytest.raises(ConfigError, match="benchmarks: unknown entry 'xsub'.*nwucla_xview"):
        parse_params({"data": {"source": "nwucla"}})
    with pytest.raises(ConfigError, match="data.layout set, but data.source is 'kinetics'"):
        parse_params({"data": {"source": "kinetics", "layout": "coco17"},
                      "benchmarks": ["kinetics"]})  # fmt: skip
    with pytest.raises(ConfigError, match="data.dataset is 'ntu120' but data.source is 'nwucla'"):
        parse_params({"data": {"source": "nwucla", "dataset": "ntu120"},
                      "benchmarks": ["nwucla_xview"]})  # fmt: skip
    yolo = parse_params({"data": {"source": "custom", "format": "yolo", "layout": "coco17"},
                         "benchmarks": ["custom"], "import": {"img_shape": "720x1280"}})
    assert import_options(yolo)["img_shape"] == "720x1280"
