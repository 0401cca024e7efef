"""``skelact import``: every format into the project's pickles, each planted problem named."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from helpers import load_pickle
from skelact.cli import app
from skelact.data.annotations import load_annotations
from skelact.data.formats import Clip, csv, npz, openpose, pyskl
from skelact.data.importer import ImportDataError, ImportSettings, import_data
from skelact.data.normalise import normalise
from skelact.data.preprocess import PreprocessSettings, preprocess
from skelact.data.safe_pickle import safe_load
from skelact.data.validate import validate_file
from skelact.layouts import get_layout

COCO = get_layout("coco17")
CLASSES = ("wave", "jump", "sit")  # sorted: jump, sit, wave


def _clip(name: str, label: int, seed: int, dims: int = 2, scores: bool = True, m: int = 2):
    """A clip whose person 0 moves with a class-dependent amplitude; person 1 stands."""
    rng = np.random.default_rng(seed)
    t = 8
    kp = rng.uniform(100, 300, (m, t, COCO.num_joints, dims)).astype(np.float32)
    kp[0] += (40 * (label + 1) * np.sin(np.arange(t)))[:, None, None].astype(np.float32)
    if m > 1:
        kp[1] = kp[1, :1] + 500
    score = rng.uniform(0.3, 1, kp.shape[:3]).astype(np.float32) if scores else None
    return Clip(name, kp, score)


def _source(root: Path, fmt: str = "openpose", per_class: int = 5, **clip_options):
    """Clips of the three classes written in ``fmt``, and a labels file without split column."""
    clips, rows = [], ["clip,label"]
    for label, cls in enumerate(CLASSES):
        for i in range(per_class):
            clip = _clip(f"{cls}_{i:02d}", label, seed=10 * label + i, **clip_options)
            clips.append(clip)
            rows.append(f"{clip.name},{cls}")
    writer = openpose.write_clips if fmt == "openpose" else csv.write_clips
    writer(clips, root / "src", COCO)
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return clips


def _settings(root: Path, fmt: str = "openpose", **options) -> ImportSettings:
    defaults = {"labels": root / "labels.csv", "val_fraction": 0.4, "out_dir": root / "out"}
    return ImportSettings(fmt, root / "src", "coco17", **{**defaults, **options})


def test_openpose_import_writes_pickles_classes_and_report(tmp_path):
    clips = {c.name: c for c in _source(tmp_path)}
    result = import_data(_settings(tmp_path))
    out = tmp_path / "out"
    train, val = load_pickle(out / "custom" / "train.pkl"), load_pickle(out / "custom" / "val.pkl")
    assert (len(train), len(val)) == (9, 6)  # round(5 * 0.4) = 2 of each class in val
    assert (out / "classes.txt").read_text() == "jump\nsit\nwave\n"
    assert (out / "custom" / "classes.txt").read_text() == "jump\nsit\nwave\n"
    for ann in train + val:
        clip = clips[ann["frame_dir"]]
        assert ann["label"] == ["jump", "sit", "wave"].index(ann["frame_dir"].split("_")[0])
        assert ann["layout"] == "coco17" and ann["total_frames"] == 8
        assert ann["keypoint"].dtype == np.float32 and ann["keypoint"].shape == (2, 8, 17, 2)
        expected, _ = normalise(clip.keypoint, COCO, score=clip.score)
        np.testing.assert_array_equal(ann["keypoint"], expected)
        np.testing.assert_array_equal(ann["keypoint_score"], clip.score)
        assert "img_shape" not in ann
    both = safe_load(out / "custom_2danno.pkl")
    assert both["split"] == {
        "custom_train": [a["frame_dir"] for a in train],
        "custom_val": [a["frame_dir"] for a in val],
    }
    assert [a["frame_dir"] for a in both["annotations"]] == sorted(clips)
    report = json.loads((out / "import_report.json").read_text())
    assert report == json.loads(json.dumps(result.__dict__))
    assert report["counts"] == {"train": {"jump": 3, "sit": 3, "wave": 3},
                                "val": {"jump": 2, "sit": 2, "wave": 2}}  # fmt: skip
    assert (report["format"], report["layout"], report["dims"], report["scores"]) == (
        "openpose", "coco17", 2, True)  # fmt: skip
    assert report["dropped"] == [] and report["rules"] == {"body": 15}
    assert sorted(p.name for p in out.iterdir()) == [
        "classes.txt", "custom", "custom_2danno.pkl", "import_report.json"]  # fmt: skip


def test_3d_csv_import_loads_and_validates(tmp_path):
    _source(tmp_path, "csv", dims=3, scores=False)
    import_data(_settings(tmp_path, "csv"))
    out = tmp_path / "out"
    train = load_annotations(out / "custom" / "train.pkl", num_classes=3)
    assert {a["keypoint"].shape[-1] for a in train} == {3}
    assert all("keypoint_score" not in a for a in train)
    val = load_annotations(out / "custom_3danno.pkl", split="custom_val")
    assert len(val) == 6
    assert validate_file(out / "custom" / "val.pkl").ok
    _source(tmp_path, "openpose")  # the same out_dir, now 2-D: the 3-D PYSKL file goes
    import_data(_settings(tmp_path))
    assert (out / "custom_2danno.pkl").is_file() and not (out / "custom_3danno.pkl").exists()


def test_split_column_and_class_list(tmp_path):
    _source(tmp_path, per_class=3)
    rows = (tmp_path / "labels.csv").read_text().splitlines()
    split = ["fold", *(("val" if i % 3 == 0 else "train") for i in range(len(rows) - 1))]
    text = "\n".join(f"{r},{s}" for r, s in zip(rows, split, strict=True))
    (tmp_path / "labels.csv").write_text(text)
    (tmp_path / "classes.txt").write_text("wave\njump\nsit\nrun\n")
    result = import_data(_settings(tmp_path, classes=tmp_path / "classes.txt", split_by="fold"))
    assert result.split_method == "column" and result.classes == ["wave", "jump", "sit", "run"]
    assert result.totals == {"train": 6, "val": 3}
    assert result.counts["val"] == {"wave": 1, "jump": 1, "sit": 1, "run": 0}
    val = load_pickle(tmp_path / "out" / "custom" / "val.pkl")
    assert [(a["frame_dir"], a["label"]) for a in val] == [
        ("jump_00", 1), ("sit_00", 2), ("wave_00", 0)]  # fmt: skip


def test_stratified_split_is_deterministic_and_seeded(tmp_path):
    _source(tmp_path, per_class=6)

    def val_names(seed: int, out: str) -> list[str]:
        import_data(_settings(tmp_path, seed=seed, val_fraction=0.5, out_dir=tmp_path / out))
        return [a["frame_dir"] for a in load_pickle(tmp_path / out / "custom" / "val.pkl")]

    first = val_names(0, "a")
    assert val_names(0, "b") == first
    assert val_names(1, "c") != first
    assert sorted({n.split("_")[0] for n in first}) == ["jump", "sit", "wave"]
    assert len(first) == 9


def test_persons_are_padded_or_cut_to_num_persons(tmp_path):
    _source(tmp_path, m=1)
    import_data(_settings(tmp_path))
    ann = load_pickle(tmp_path / "out" / "custom" / "train.pkl")[0]
    assert ann["keypoint"].shape[0] == 2 and not ann["keypoint"][1].any()
    assert not ann["keypoint_score"][1].any()
    clips = {c.name: c for c in _source(tmp_path)}
    import_data(_settings(tmp_path, num_persons=1, out_dir=tmp_path / "one"))
    for ann in load_pickle(tmp_path / "one" / "custom" / "val.pkl"):
        np.testing.assert_array_equal(ann["keypoint_score"], clips[ann["frame_dir"]].score[:1])


def test_image_normalisation_with_a_frame_size(tmp_path):
    clips = {c.name: c for c in _source(tmp_path)}
    import_data(_settings(tmp_path, normalise="image", img_shape=(480, 640)))
    ann = load_pickle(tmp_path / "out" / "custom" / "train.pkl")[0]
    kp = clips[ann["frame_dir"]].keypoint
    np.testing.assert_allclose(ann["keypoint"], (kp - [320, 240]) / 320, rtol=1e-6)
    assert ann["img_shape"] == (480, 640)
    with pytest.raises(ImportDataError, match="--img-shape"):
        import_data(_settings(tmp_path, normalise="image", out_dir=tmp_path / "x"))


def _plant_csv(root: Path, name: str, edit) -> None:
    path = root / "src" / f"{name}.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


def _set_cell(column: int, value: str):
    def edit(lines: list[str]) -> list[str]:
        cells = lines[5].split(",")
        cells[column] = value
        return [*lines[:5], ",".join(cells), *lines[6:]]

    return edit


def _plant_nan(root):
    _plant_csv(root, "sit_01", _set_cell(3, "nan"))
    return "sit_01", "non-finite coordinate"


def _plant_score(root):
    _plant_csv(root, "sit_01", _set_cell(5, "1.5"))
    return "sit_01", "score(s) outside [0, 1]"


def _plant_unlabelled(root):
    labels = root / "labels.csv"
    labels.write_text(
        "\n".join(ln for ln in labels.read_text().splitlines() if "jump_02" not in ln)
    )
    return "jump_02", "no label"


def _plant_label_without_clip(root):
    (root / "src" / "wave_03.csv").unlink()
    return "wave_03", "no such clip"


def _plant_unknown_class(root):
    (root / "classes.txt").write_text("wave\njump\n")
    return "sit_00", "class 'sit' (labels line 12) is not in --classes"


def _plant_wrong_joints(root):
    text = (root / "src" / "sit_01.csv").read_text().replace(",left_ankle,", ",left_heel,")
    (root / "src" / "sit_01.csv").write_text(text)
    return "sit_01", "unknown joint 'left_heel'"


def _plant_3d(root):
    csv.write_clips([_clip("wave_04", 2, 99, dims=3)], root / "src", COCO)
    return "wave_04", "3-D keypoints, but the clips before are 2-D"


def _plant_no_scores(root):
    csv.write_clips([_clip("wave_04", 2, 99, scores=False)], root / "src", COCO)
    return "wave_04", "has no scores, unlike the clips before it"


PLANTS = [_plant_nan, _plant_score, _plant_unlabelled, _plant_label_without_clip,
          _plant_unknown_class, _plant_wrong_joints, _plant_3d, _plant_no_scores]  # fmt: skip


@pytest.mark.parametrize("plant", PLANTS, ids=lambda p: p.__name__[7:])
def test_a_planted_problem_fails_naming_the_clip(tmp_path, plant):
    _source(tmp_path, "csv")
    clip, reason = plant(tmp_path)
    classes = tmp_path / "classes.txt"
    settings = _settings(tmp_path, "csv", classes=classes if classes.exists() else None)
    with pytest.raises(ImportDataError, match=f"clip '{clip}': .*{re.escape(reason)}"):
        import_data(settings)
    assert not (tmp_path / "out").exists()  # nothing written, not even the folder


@pytest.mark.parametrize("plant", PLANTS, ids=lambda p: p.__name__[7:])
def test_a_planted_problem_is_skipped_and_reported(tmp_path, plant):
    _source(tmp_path, "csv")
    clip, reason = plant(tmp_path)
    classes = tmp_path / "classes.txt"
    settings = _settings(
        tmp_path, "csv", on_error="skip", classes=classes if classes.exists() else None
    )
    result = import_data(settings)
    dropped = {d["clip"]: d["reason"] for d in result.dropped}
    assert clip in dropped and reason in dropped[clip]
    report = json.loads((tmp_path / "out" / "import_report.json").read_text())
    assert report["dropped"] == result.dropped
    written = load_pickle(tmp_path / "out" / "custom" / "train.pkl")
    written += load_pickle(tmp_path / "out" / "custom" / "val.pkl")
    assert clip not in {a["frame_dir"] for a in written}
    assert len(written) == 15 - len(dropped)


def test_an_empty_split_fails_whatever_on_error(tmp_path):
    _source(tmp_path)
    labels = tmp_path / "labels.csv"
    lines = labels.read_text().splitlines()
    labels.write_text("\n".join([lines[0] + ",split", *(f"{ln},train" for ln in lines[1:])]))
    with pytest.raises(ImportDataError, match="the val split is empty"):
        import_data(_settings(tmp_path, split_by="split", on_error="skip"))
    assert not (tmp_path / "out").exists()


def test_no_clips_at_all_fails(tmp_path):
    _source(tmp_path, "csv", per_class=1)
    for path in (tmp_path / "src").iterdir():
        path.write_text("frame,joint,x,y\n0,nose,1\n")
    first = r"no clips imported: all 3 were dropped, the first \('jump_00'\) because: jump_00.csv"
    with pytest.raises(ImportDataError, match=first):
        import_data(_settings(tmp_path, "csv", on_error="skip"))


@pytest.mark.parametrize(
    ("labels", "split_by", "message"),
    [
        ("clip,class\na,b\n", None, "expected the columns clip and label"),
        ("clip,label,label\na,b,c\n", None, "expected the columns clip and label (once each)"),
        ("clip,label\nwave_00,wave\nwave_00,jump\n", None, "'wave_00' again (first on line 2)"),
        ("clip,label,split\nwave_00,wave,test\n", "split", "split 'test'; expected train or val"),
        ("clip,label\nwave_00,wave\n", "split", "--split-by 'split', but the labels file has no"),
        ("clip,label\nwave_00,\n", None, "line 2: empty clip or label"),
        ("clip,label\n", None, "no label rows"),
    ],
)
def test_bad_labels_files_are_refused(tmp_path, labels, split_by, message):
    _source(tmp_path, per_class=1)
    (tmp_path / "labels.csv").write_text(labels)
    with pytest.raises(ImportDataError, match=re.escape(message)):
        import_data(_settings(tmp_path, split_by=split_by))


def test_settings_that_cannot_work_are_refused(tmp_path):
    _source(tmp_path, per_class=1)
    with pytest.raises(ImportDataError, match="--labels is required for openpose"):
        import_data(_settings(tmp_path, labels=None))
    with pytest.raises(ImportDataError, match="npz sources keep their own split"):
        import_data(_settings(tmp_path, "npz", labels=None, split_by="split"))
    with pytest.raises(ImportDataError, match="strictly between 0 and 1"):
        import_data(_settings(tmp_path, val_fraction=1.0))
    with pytest.raises(ImportDataError, match="npz files carry their own labels"):
        import_data(_settings(tmp_path, "npz"))
    with pytest.raises(ImportDataError, match="not one of"):
        import_data(_settings(tmp_path, "kinect"))


def test_a_failed_import_leaves_the_previous_output_untouched(tmp_path):
    _source(tmp_path)
    import_data(_settings(tmp_path))
    out = tmp_path / "out"
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (tmp_path / "src" / "sit_01" / "sit_01_000000000003_keypoints.json").write_text("{broken")
    with pytest.raises(ImportDataError, match=r"clip 'sit_01': .*not readable JSON"):
        import_data(_settings(tmp_path))
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # and no temporaries left behind


# ---- npz and pyskl (their readers live in skelact.data.formats) ----------------------------


def _labelled(n: int = 12, dims: int = 2, scores: bool = False) -> list[Clip]:
    clips = []
    for i in range(n):
        clip = _clip(f"c{i:02d}", i % 3, seed=i, dims=dims, scores=scores)
        clip.label, clip.split = i % 3, "val" if i % 4 == 0 else "train"
        clips.append(clip)
    return clips


def test_npz_import_takes_labels_and_splits_from_the_file(tmp_path):
    clips = _labelled()
    npz.write_npz(clips, tmp_path / "data.npz", max_frames=10)
    settings = ImportSettings("npz", tmp_path / "data.npz", "coco17", tmp_path / "out")
    result = import_data(settings)
    assert result.split_method == "source" and result.classes == ["0", "1", "2"]
    assert result.totals == {"train": 9, "val": 3}
    val = load_pickle(tmp_path / "out" / "custom" / "val.pkl")
    originals = [c for c in clips if c.split == "val"]
    for ann, clip in zip(val, originals, strict=True):
        assert ann["label"] == clip.label
        np.testing.assert_array_equal(ann["keypoint"], normalise(clip.keypoint, COCO)[0])


def test_pyskl_import_keeps_scores_and_image_shape(tmp_path):
    clips = _labelled(scores=True)
    for clip in clips:
        clip.img_shape = (720, 1280)
    splits = {s: [c.name for c in clips if c.split == s] for s in ("train", "val")}
    pyskl.write_pyskl(clips, tmp_path / "p.pkl", {f"mine_{k}": v for k, v in splits.items()})
    (tmp_path / "names.txt").write_text("a\nb\nc\n")
    settings = ImportSettings("pyskl", tmp_path / "p.pkl", "coco17", tmp_path / "out",
                              classes=tmp_path / "names.txt", benchmark="mine")  # fmt: skip
    result = import_data(settings)
    assert result.classes == ["a", "b", "c"] and result.totals == {"train": 9, "val": 3}
    train = load_pickle(tmp_path / "out" / "custom" / "train.pkl")
    assert [a["frame_dir"] for a in train] == splits["train"]
    for ann, clip in zip(train, (c for c in clips if c.split == "train"), strict=True):
        np.testing.assert_array_equal(ann["keypoint_score"], clip.score)
        assert ann["img_shape"] == (720, 1280)


def test_an_mmaction_list_without_splits_is_split_per_class(tmp_path):
    anns = [{"frame_dir": c.name, "label": c.label, "total_frames": 8, "keypoint": c.keypoint}
            for c in _labelled()]  # fmt: skip
    with open(tmp_path / "list.pkl", "wb") as f:
        pickle.dump(anns, f)
    settings = ImportSettings("pyskl", tmp_path / "list.pkl", "coco17", tmp_path / "out",
                              val_fraction=0.25)  # fmt: skip
    result = import_data(settings)
    assert result.split_method == "fraction" and result.val_fraction == 0.25
    assert result.counts["val"] == {"0": 1, "1": 1, "2": 1}


def test_ntu_exported_raw_to_pyskl_and_imported_equals_preprocess(reference_dir, tmp_path):
    raw = reference_dir / "ntu_prep" / "raw"
    preprocess(PreprocessSettings("ntu60", raw, tmp_path / "ref", workers=1))
    preprocess(PreprocessSettings("ntu60", raw, tmp_path / "raw", format="pyskl", raw=True,
                                  workers=1))  # fmt: skip
    settings = ImportSettings("pyskl", tmp_path / "raw" / "ntu60_3danno.pkl", "ntu25",
                              tmp_path / "out", benchmark="xsub")  # fmt: skip
    result = import_data(settings)
    total = 0
    for split in ("train", "val"):
        expected = load_pickle(tmp_path / "ref" / "xsub" / f"{split}.pkl")
        got = load_pickle(tmp_path / "out" / "custom" / f"{split}.pkl")
        assert [a["frame_dir"] for a in got] == [a["frame_dir"] for a in expected]
        for ann, ref in zip(got, expected, strict=True):
            assert ann["label"] == ref["label"] and ann["layout"] == "ntu25"
            np.testing.assert_array_equal(ann["keypoint"], ref["keypoint"])
        total += len(expected)
    assert result.rules == {"ntu": total}
    load_annotations(tmp_path / "out" / "custom" / "train.pkl")


# ---- the command -----------------------------------------------------------------------------


def test_cli_import_prints_a_summary(tmp_path):
    _source(tmp_path, "csv")
    args = ["import", "--from", "csv", str(tmp_path / "src"), "--layout", "coco17",
            "--labels", str(tmp_path / "labels.csv"), "--out-dir", str(tmp_path / "out"),
            "--val-fraction", "0.4", "--seed", "3"]  # fmt: skip
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "csv -> coco17 (2-D + scores): train 9, val 6 clips, 3 classes" in done.output
    assert (tmp_path / "out" / "custom" / "train.pkl").is_file()


def test_cli_import_error_is_one_line(tmp_path):
    _source(tmp_path, "csv", per_class=2)
    _plant_nan(tmp_path)
    args = ["import", "--from", "csv", str(tmp_path / "src"), "--layout", "coco17",
            "--labels", str(tmp_path / "labels.csv"),
            "--out-dir", str(tmp_path / "out")]  # fmt: skip
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 1
    lines = [ln for ln in done.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "clip 'sit_01'" in lines[0] and "non-finite" in lines[0]


def test_cli_import_split_by_a_column_and_skip(tmp_path):
    _source(tmp_path, "csv", per_class=2)
    _plant_nan(tmp_path)
    labels = tmp_path / "labels.csv"
    lines = labels.read_text().splitlines()
    splits = ("train", "val") * 3
    rows = [f"{row},{split}" for row, split in zip(lines[1:], splits, strict=True)]
    labels.write_text("\n".join([f"{lines[0]},split", *rows]))
    args = ["import", "--from", "csv", str(tmp_path / "src"), "--layout", "coco17",
            "--labels", str(labels), "--out-dir", str(tmp_path / "out"),
            "--split-by", "split", "--on-error", "skip"]  # fmt: skip
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "train 3, val 2 clips, 3 classes (split by column)" in done.output
    assert "1 clips DROPPED" in done.output and "sit_01: " in done.output


def test_a_split_column_named_split_is_used_without_split_by(tmp_path):
    _source(tmp_path, per_class=2)
    lines = (tmp_path / "labels.csv").read_text().splitlines()
    rows = [f"{row},{'val' if i % 2 else 'train'}" for i, row in enumerate(lines[1:])]
    (tmp_path / "labels.csv").write_text("\n".join([f"{lines[0]},split", *rows]) + "\n")
    result = import_data(_settings(tmp_path))
    assert result.split_method == "column" and result.totals == {"train": 3, "val": 3}


def test_import_and_the_preprocess_stage_read_params_yaml(tmp_path):
    """`import --params` takes data.* and the `import` section; `preprocess --params` of custom
    data runs the same import (the pipeline's stage), and refuses NTU-only options."""
    _source(tmp_path, "csv")
    values = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    values["data"].update(source="custom", format="csv", layout="coco17",
                          raw_dir=str(tmp_path / "src"), labels=str(tmp_path / "labels.csv"),
                          prepared_dir=str(tmp_path / "out"))  # fmt: skip
    values["import"].update(val_fraction=0.4, seed=3)
    values["benchmarks"] = ["custom"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(values))
    params = ["--params", str(tmp_path / "params.yaml")]
    done = CliRunner().invoke(app, ["import", *params])
    assert done.exit_code == 0, done.output
    assert "csv -> coco17 (2-D + scores): train 9, val 6 clips, 3 classes" in done.output
    first = (tmp_path / "out" / "custom" / "val.pkl").read_bytes()
    done = CliRunner().invoke(app, ["preprocess", *params, "--quiet"])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "out" / "custom" / "val.pkl").read_bytes() == first
    done = CliRunner().invoke(app, ["preprocess", *params, "--dataset", "ntu60"])
    assert done.exit_code == 1 and "--dataset: NTU preprocessing options" in done.output
