"""The data path for any skeleton: 2-D layouts with scores load, validate and batch; the 2-D
augmentation turns and scales x, y in the image plane and leaves the score alone; raw 3-D
coordinates are refused; classes.txt names the classes in test and predict."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from helpers import cpu_and_cuda_batches, make_pickles, make_samples
from skelact.cli import app
from skelact.data.annotations import load_annotations
from skelact.data.dataset import SkeletonSet
from skelact.data.preprocess import PreprocessSettings, preprocess
from skelact.data.safe_pickle import DatasetError
from skelact.data.synth.stage import SynthSettings, synthesize
from skelact.data.transforms import ClipSampler, Draws, rotation_matrices, transform_matrices
from skelact.data.validate import validate_file
from skelact.engine.evaluate import EvalConfig, EvaluationError, evaluate
from skelact.engine.predict import predict_file
from skelact.engine.recipes import TrainConfig
from skelact.engine.safety import TrainingError
from skelact.engine.train import train
from skelact.layouts import get_layout


def make_2d(layout: str, num: int, num_classes: int = 3, seed: int = 0, *, scores: bool = True,
            persons: int = 1, frames: tuple[int, int] = (30, 60)) -> list[dict]:  # fmt: skip
    """2-D samples of ``layout`` in body-normalised units: a rest pose plus, per class, one joint
    swinging along its own direction and another one displaced, so a small model can tell the
    classes apart."""
    rng = np.random.default_rng(seed)
    v = get_layout(layout).num_joints
    rest = np.random.default_rng(99).normal(0, 0.5, (v, 2)).astype(np.float32)
    out = []
    for i in range(num):
        label = i % num_classes
        t = int(rng.integers(frames[0], frames[1] + 1))
        phase = np.sin(np.linspace(0, 2 * np.pi * (1 + label), t, dtype=np.float32))
        kp = np.zeros((persons, t, v, 2), dtype=np.float32)
        kp[0] = rest + rng.normal(0, 0.03, (t, v, 2)).astype(np.float32)
        kp[0, :, (2 * label + 1) % v] += phase[:, None] * np.array([1.0, label - 1.0], np.float32)
        kp[0, :, (2 * label + 8) % v] += 1.5  # and a pose of its own
        ann = {"frame_dir": f"clip{i:03d}", "label": label, "total_frames": t, "keypoint": kp,
               "layout": layout, "img_shape": (480, 640)}  # fmt: skip
        if scores:
            ann["keypoint_score"] = rng.uniform(0.2, 1.0, (persons, t, v)).astype(np.float32)
        out.append(ann)
    return out


def dump(obj: object, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        pickle.dump(obj, fh)
    return path


# ------------------------------------------------------------------ load, validate, batch


@pytest.mark.parametrize("layout", ["coco17", "openpose25"])
@pytest.mark.parametrize("with_score", [False, True])
def test_2d_layouts_load_validate_and_batch(tmp_path: Path, layout: str, with_score: bool):
    anns = make_2d(layout, 6)
    path = dump(anns, tmp_path / "train.pkl")
    v = get_layout(layout).num_joints

    report = validate_file(path)
    assert report.ok, report.problems
    assert (report.layout, report.layout_given, report.joints) == (layout, True, v)
    assert report.channels == 2 and report.samples_with_score == 6 and report.raw_samples == 0
    out = CliRunner().invoke(app, ["validate", str(path)]).output
    assert f"layout     {layout}\n" in out and "dims       2-D keypoints (x, y; C = 2)" in out
    assert "scores     keypoint_score in 6 of 6 sample(s)" in out

    data = SkeletonSet.from_file(path, with_score=with_score)
    assert (data.layout, data.dims, data.with_score) == (layout, 2, with_score)
    assert data.num_channels == 2 + with_score and data.num_joints == v
    first = data.sample(0)  # M x T x V x C, persons padded to 2
    np.testing.assert_array_equal(first[:1, ..., :2], anns[0]["keypoint"])
    if with_score:
        np.testing.assert_array_equal(first[:1, ..., 2], anns[0]["keypoint_score"])
        assert not first[1].any()  # the padded person has no score either

    sampler = ClipSampler(20, train=True, rotate=0.1, dims=2, scale_range=(0.9, 1.1), min_len=8)
    batch = sampler(data, np.arange(4), np.random.default_rng(0))
    assert batch.shape == (4, 2 + with_score, 20, v, 2) and torch.isfinite(batch).all()
    val = ClipSampler(20, train=False)(data, np.arange(6))
    assert val.shape == (6, 2 + with_score, 20, v, 2)


def test_validate_summary_of_an_ntu_pickle(tmp_path: Path):
    path = dump(make_samples(4, 2, seed=0), tmp_path / "ntu.pkl")
    out = CliRunner().invoke(app, ["validate", str(path)])
    assert out.exit_code == 0, out.output
    assert "layout     ntu25 (no 'layout' key: the NTU default)\n" in out.output
    assert "dims       3-D x, y, z (C = 3)\n" in out.output and "scores     none\n" in out.output


def test_with_score_needs_scores_naming_the_sample(tmp_path: Path):
    anns = make_2d("coco17", 4)
    del anns[2]["keypoint_score"]
    path = dump(anns, tmp_path / "mixed.pkl")
    assert len(SkeletonSet.from_file(path)) == 4  # scores are simply not read without the option
    with pytest.raises(
        DatasetError, match=r"mixed\.pkl: sample 2 \('clip002'\) has no keypoint_score"
    ):
        SkeletonSet.from_file(path, with_score=True)


def test_layout_joint_count_and_file_consistency(tmp_path: Path):
    wrong = make_2d("coco17", 3)
    for ann in wrong:
        ann["layout"] = "openpose25"
    report = validate_file(dump(wrong, tmp_path / "v.pkl"))
    assert report.problems == [
        "the samples have V = 17 joints, but their layout 'openpose25' ('layout') has 25; set "
        "each sample's 'layout' to the layout the keypoints follow"
    ]
    bare = make_2d("coco17", 3)
    for ann in bare:
        del ann["layout"]
    with pytest.raises(
        DatasetError, match=r"layout 'ntu25' \(no 'layout' key, so 'ntu25'\) has 25"
    ):
        load_annotations(dump(bare, tmp_path / "bare.pkl"))

    mixed = make_2d("coco17", 4)
    mixed[1]["layout"] = "mediapipe33"
    mixed[3]["keypoint"] = np.zeros((1, 30, 17, 3), np.float32)
    mixed[3]["keypoint_score"] = np.ones((1, 30, 17), np.float32)
    mixed[3]["total_frames"] = 30
    problems = validate_file(dump(mixed, tmp_path / "m.pkl")).problems
    assert any("samples disagree on the layout" in p for p in problems)
    assert any(p.startswith("sample 3 ('clip003'): 3-D x, y, z (C = 3), but the file's other")
               for p in problems)  # fmt: skip


def test_score_problems_are_named(tmp_path: Path):
    anns = make_2d("coco17", 5)
    anns[0]["keypoint_score"] = anns[0]["keypoint_score"][:, :-1]
    anns[1]["keypoint_score"][0, 0, 0] = 1.5
    anns[2]["keypoint_score"][0, 3, 4] = np.nan
    anns[3]["keypoint_score"] = anns[3]["keypoint_score"].astype(np.int64)
    anns[4]["img_shape"] = (480,)
    problems = validate_file(dump(anns, tmp_path / "s.pkl")).problems
    assert len(problems) == 5
    assert "sample 0 ('clip000'): keypoint_score has shape" in problems[0]
    assert "expected M x T x V" in problems[0]
    assert problems[1] == ("sample 1 ('clip001'): keypoint_score has 1 value(s) outside [0, 1] or "
                           "not finite; scores are confidences in [0, 1]")  # fmt: skip
    assert problems[2].startswith("sample 2 ('clip002'): keypoint_score has 1 value(s) outside")
    assert "sample 3 ('clip003'): keypoint_score dtype int64" in problems[3]
    assert "sample 4 ('clip004'): img_shape (480,) is not a (height, width)" in problems[4]


# ------------------------------------------------------------------ raw 3-D coordinates


def test_raw_3d_is_refused_with_the_import_command(tmp_path: Path):
    anns = make_samples(5, 3, seed=0)
    for ann in anns[1:4]:
        ann["keypoint"][0] += np.array([0.1, 0.2, 3.0], np.float32)  # metres from the camera
    path = dump(anns, tmp_path / "ntu_raw.pkl")
    message = (
        f"{path}: sample 1 ('S001C001P002R001A002'): raw 3-D coordinates (body 0's spine_mid joint "
        f"is not at 0; 3 of 5 sample(s) are raw), but the models need pre-normalised skeletons: "
        f"convert the file with `skelact import --from pyskl {path} --layout ntu25 --out-dir "
        f"DIR`, which normalises it"
    )
    with pytest.raises(DatasetError) as err:
        SkeletonSet.from_file(path)
    assert str(err.value) == message
    report = validate_file(path)
    assert report.raw_samples == 3 and report.problems == [message.removeprefix(f"{path}: ")]
    cfg = TrainConfig(model="tscnn", train_path=str(path), val_path=str(path),
                      out_dir=str(tmp_path / "run"), epochs=1, track=False, quiet=True)  # fmt: skip
    with pytest.raises(DatasetError, match="raw 3-D coordinates"):
        train(cfg)
    # leading frames without body 0 do not hide it: the first frame where body 0 is present counts
    late = make_samples(1, 3, seed=1)
    late[0]["keypoint"][0] += 1.0
    late[0]["keypoint"][0, :5] = 0.0
    assert validate_file(dump(late, tmp_path / "late.pkl")).raw_samples == 1


def test_preprocess_and_synthetic_pickles_are_not_raw(tmp_path: Path, reference_dir: Path):
    synthesize(SynthSettings(out_dir=tmp_path / "raw", num_classes=4, samples_per_class=3,
                             frames_min=20, frames_max=30))  # fmt: skip
    for fmt in ("mmaction", "pyskl"):
        preprocess(PreprocessSettings(dataset="ntu60", raw_dir=tmp_path / "raw",
                                      out_dir=tmp_path / fmt, format=fmt, workers=1))  # fmt: skip
    checked = [validate_file(p) for p in sorted((tmp_path / "mmaction").rglob("*.pkl"))]
    pyskl = tmp_path / "pyskl" / "ntu60_3danno.pkl"
    checked += [validate_file(pyskl, split) for split in ("xsub_train", "xview_val")]
    checked += [validate_file(p) for p in sorted((reference_dir / "ntu_prep").rglob("*.pkl"))]
    assert len(checked) == 10
    for report in checked:
        assert report.ok and report.raw_samples == 0 and report.num_samples, report


# ------------------------------------------------------------------ 2-D augmentation


def test_2d_augmentation_turns_and_scales_in_plane_and_keeps_the_score():
    anns = make_2d("coco17", 8, persons=2)
    data = SkeletonSet.from_annotations(anns, with_score=True)
    sampler = ClipSampler(24, train=True, rotate=0.25, dims=2, scale_range=(0.8, 1.2), min_len=8)
    idx = np.arange(len(data))
    draws = sampler.draw(data.lengths, np.random.default_rng(4))
    assert draws.angles.shape == (8, 1) and np.abs(draws.angles).max() <= 0.25 * math.pi
    assert draws.scales.shape == (8,) and 0.8 <= draws.scales.min() <= draws.scales.max() <= 1.2
    plain = sampler.apply(data, idx, Draws(starts=draws.starts, lens=draws.lens)).numpy()
    out = sampler.apply(data, idx, draws).numpy()  # N x C x T x V x M
    torch.testing.assert_close(out[:, 2], plain[:, 2], rtol=0, atol=0)  # score: bit for bit
    for i, (angle, scale) in enumerate(zip(draws.angles[:, 0], draws.scales, strict=True)):
        c, s = math.cos(angle), math.sin(angle)
        x, y = plain[i, 0], plain[i, 1]
        np.testing.assert_allclose(out[i, 0], scale * (c * x - s * y), atol=1e-5)
        np.testing.assert_allclose(out[i, 1], scale * (s * x + c * y), atol=1e-5)
    with pytest.raises(ValueError, match="augments 3-D coordinates; the data has 2"):
        ClipSampler(24, train=True, rotate=0.1, min_len=8)(data, idx, np.random.default_rng(0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_2d_augmentation_on_cuda_equals_cpu():
    data = SkeletonSet.from_annotations(make_2d("openpose25", 8, persons=2), with_score=True)
    cpu, gpu = cpu_and_cuda_batches(data, 24, seed=2, train=True, rotate=0.25, dims=2,
                                    scale_range=(0.8, 1.2), min_len=8)  # fmt: skip
    torch.testing.assert_close(gpu[:, 2], cpu[:, 2], rtol=0, atol=0)  # the score


def test_3d_draws_and_matrices_are_unchanged_and_the_score_passes():
    """3-D without a scale: the draws are the stream of before (crop lengths, starts, then three
    angles per sample) and the matrices are `rotation_matrices` in float32."""
    lengths = np.array([40, 90, 300, 7])
    draws = ClipSampler(32, train=True, rotate=0.1).draw(lengths, np.random.default_rng(11))
    rng = np.random.default_rng(11)
    lens = np.minimum(np.maximum(rng.integers(lengths // 2, lengths + 1), 64), lengths)
    starts = rng.integers(0, lengths - lens + 1)
    angles = rng.uniform(-0.1 * math.pi, 0.1 * math.pi, size=(4, 3))
    np.testing.assert_array_equal(draws.lens, lens)
    np.testing.assert_array_equal(draws.starts, starts)
    np.testing.assert_array_equal(draws.angles, angles)
    assert draws.scales is None
    expected = rotation_matrices(angles).astype(np.float32)
    np.testing.assert_array_equal(transform_matrices(draws, 3, 3), expected)
    with_score = transform_matrices(draws, 3, 4)
    np.testing.assert_array_equal(with_score[:, :3, :3], expected)
    np.testing.assert_array_equal(with_score[:, 3], np.tile([0, 0, 0, 1], (4, 1)))
    np.testing.assert_array_equal(with_score[:, :3, 3], np.zeros((4, 3)))


# ------------------------------------------------------------------ training and evaluation


def test_train_on_2d_with_scores_logs_layout_and_dims(tmp_path: Path):
    """2-D data with a score channel trains end to end (ntu25 x, y: no layout option needed)."""

    def flat(anns: list[dict]) -> list[dict]:
        for ann in anns:
            ann["keypoint"] = np.ascontiguousarray(ann["keypoint"][..., :2])
            ann["keypoint_score"] = np.ones(ann["keypoint"].shape[:3], np.float32)
        return anns

    train_path = dump(flat(make_samples(24, 3, seed=0)), tmp_path / "d" / "train.pkl")
    val_path = dump(flat(make_samples(9, 3, seed=1)), tmp_path / "d" / "val.pkl")
    out = tmp_path / "run"
    result = train(TrainConfig(
        model="hcn", train_path=str(train_path), val_path=str(val_path), out_dir=str(out),
        epochs=2, batch_size=8, clip_len=16, min_len=8, rotate=0.1, scale_range=[0.9, 1.1],
        with_score=True, num_classes=3, track=False, quiet=True, deterministic=True,
    ))  # fmt: skip
    assert result.completed
    info = json.loads((out / "run_info.json").read_text())
    assert (info["layout"], info["dims"], info["with_score"]) == ("ntu25", 2, True)
    assert "dims" not in json.loads((out / "summary.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["layout"] == "ntu25" and config["dims"] == 2
    assert config["config"]["with_score"] and config["config"]["scale_range"] == [0.9, 1.1]
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["model"]["options"]["in_channels"] == 3  # x, y + score
    assert "ntu25, 2-D + score, V=25" in (out / "train.log").read_text()


def test_train_refuses_val_data_of_another_kind(tmp_path: Path):
    train_path, val_path = make_pickles(tmp_path / "d", num_train=8, num_val=4)
    flat = make_samples(4, 4, seed=1)
    for ann in flat:
        ann["keypoint"] = np.ascontiguousarray(ann["keypoint"][..., :2])
    dump(flat, val_path)
    cfg = TrainConfig(model="tscnn", train_path=str(train_path), val_path=str(val_path),
                      out_dir=str(tmp_path / "run"), epochs=1, track=False, quiet=True)  # fmt: skip
    differ = rf"training data {train_path} \(dims 3 vs 2; num_channels 3 vs 2\)"
    with pytest.raises(TrainingError, match=rf"^{val_path}: the validation data differs from the "
                       + differ):  # fmt: skip
        train(cfg)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A 1-epoch tscnn on 4 classes whose data has a classes.txt (train, val, run folder)."""
    root = tmp_path_factory.mktemp("classes")
    train_path, val_path = make_pickles(root / "data", num_train=16, num_val=8)
    (train_path.parent / "classes.txt").write_text("wave\nclap\njump\nsit down\n")
    out = root / "run"
    train(TrainConfig(model="tscnn", train_path=str(train_path), val_path=str(val_path),
                      out_dir=str(out), epochs=1, batch_size=8, clip_len=16, track=False,
                      quiet=True, deterministic=True))  # fmt: skip
    return train_path, val_path, out


def test_classes_txt_names_the_classes_in_test(trained, tmp_path: Path):
    _, val_path, run = trained
    ckpt = torch.load(run / "best.pt", weights_only=True)
    assert ckpt["class_names"] == ["wave", "clap", "jump", "sit down"]
    assert ckpt["model"]["options"]["num_classes"] == 4  # the count came from classes.txt
    result = evaluate(EvalConfig(checkpoint=str(run / "best.pt"), data=str(val_path),
                                 out_dir=str(tmp_path / "eval"), device="cpu", track=False,
                                 quiet=True))  # fmt: skip
    rows = Path(result.files["per_class"]).read_text().splitlines()
    assert rows[0] == "class,action,support,correct,accuracy"
    assert [r.split(",")[1] for r in rows[1:]] == ["wave", "clap", "jump", "sit down"]


def test_predict_names_the_classes_the_training_run_recorded(trained, reference_dir: Path):
    _, _, run = trained
    raw = reference_dir / "ntu_prep" / "raw" / "S001C001P001R001A001.skeleton"
    pred = predict_file(raw, run / "best.pt", top_k=4, device="cpu")
    assert pred.label == 0 and pred.label_name == "wave"
    assert sorted(name for _, name, _ in pred.top) == ["clap", "jump", "sit down", "wave"]


def test_a_classes_txt_of_another_count_is_an_error_naming_it(trained, tmp_path: Path):
    train_path, val_path, run = trained
    data = tmp_path / "other"
    data.mkdir()
    (data / "val.pkl").write_bytes(val_path.read_bytes())
    classes = data / "classes.txt"
    classes.write_text("wave\nclap\njump\n")
    cfg = EvalConfig(checkpoint=str(run / "best.pt"), data=str(data / "val.pkl"),
                     out_dir=str(tmp_path / "eval"), device="cpu", track=False,
                     quiet=True)  # fmt: skip
    with pytest.raises(DatasetError, match=rf"^{classes}: 3 class name\(s\), but the model has 4"):
        evaluate(cfg)
    classes.write_text("wave\n\nclap\njump\n")
    with pytest.raises(DatasetError, match=rf"^{classes}:2: blank line"):
        evaluate(cfg)
    bad_train = TrainConfig(model="tscnn", train_path=str(train_path), val_path=str(val_path),
                            out_dir=str(tmp_path / "run"), epochs=1, num_classes=5, track=False,
                            quiet=True)  # fmt: skip
    with pytest.raises(DatasetError, match=r"classes\.txt: 4 class name\(s\), but the model has 5"):
        train(bad_train)


def test_train_on_coco17_with_scores_learns(tmp_path: Path, reference_dir: Path):
    train_path = dump(make_2d("coco17", 36, seed=0, persons=2), tmp_path / "d" / "train.pkl")
    val_path = dump(make_2d("coco17", 15, seed=1, persons=2), tmp_path / "d" / "val.pkl")
    out = tmp_path / "run"
    result = train(TrainConfig(
        model="hcn", train_path=str(train_path), val_path=str(val_path), out_dir=str(out),
        epochs=10, batch_size=12, lr=3e-3, scale_lr=False, clip_len=16, min_len=8, rotate=0.05,
        scale_range=[0.9, 1.1], with_score=True, num_classes=3, val_interval=1, track=False,
        quiet=True, deterministic=True,
    ))  # fmt: skip
    info = json.loads((out / "run_info.json").read_text())
    assert (info["layout"], info["dims"], info["with_score"]) == ("coco17", 2, True)
    assert result.best_top1 >= 0.8  # chance is 1/3
    ckpt = torch.load(out / "best.pt", weights_only=True)
    assert ckpt["model"]["options"]["layout"] == "coco17"
    # raw NTU files hold 3-D ntu25 skeletons: predicting one with this model is refused
    raw = reference_dir / "ntu_prep" / "raw" / "S001C001P001R001A001.skeleton"
    with pytest.raises(EvaluationError, match="layout ntu25 .*takes coco17"):
        predict_file(raw, out / "best.pt", device="cpu")


STICK = """\
name: stick5
joints: [hip, chest, head, left_hand, right_hand]
center: chest
bones: [[hip, chest], [head, chest], [left_hand, chest], [right_hand, chest]]
"""


def _stick_data(tmp_path: Path) -> tuple[Path, Path, Path]:
    layout = tmp_path / "stick5.yaml"
    layout.write_text(STICK)
    pickles = []
    for split, seed in (("train", 0), ("val", 1)):
        anns = make_2d("coco17", 12, seed=seed)
        for ann in anns:
            ann["keypoint"] = np.ascontiguousarray(ann["keypoint"][:, :, :5])
            ann["keypoint_score"] = np.ascontiguousarray(ann["keypoint_score"][:, :, :5])
            ann["layout"] = "stick5"
        pickles.append(dump(anns, tmp_path / "d" / f"{split}.pkl"))
    return layout, pickles[0], pickles[1]


def _stick_config(tmp_path: Path, train_path: Path, val_path: Path, **kw) -> TrainConfig:
    return TrainConfig(model="tscnn", train_path=str(train_path), val_path=str(val_path),
                       out_dir=str(tmp_path / "run"), epochs=1, batch_size=6, clip_len=16,
                       min_len=8, track=False, quiet=True, **kw)  # fmt: skip


def test_a_user_layout_needs_its_file(tmp_path: Path):
    layout, train_path, val_path = _stick_data(tmp_path)
    report = validate_file(train_path)
    assert report.ok and report.layout == "stick5" and report.joints == 5
    with pytest.raises(TrainingError, match=r"the samples' layout 'stick5' is not built in .*; "
                       "set layout_file to its YAML file"):  # fmt: skip
        train(_stick_config(tmp_path, train_path, val_path))
    other = tmp_path / "other.yaml"
    other.write_text(STICK.replace("name: stick5", "name: stick"))
    with pytest.raises(TrainingError, match=rf"^{other}: layout 'stick' with 5 joints, but the "
                       rf"samples of {train_path} are 'stick5' with V = 5"):  # fmt: skip
        train(_stick_config(tmp_path, train_path, val_path, layout_file=str(other)))


def test_train_on_a_user_layout_file(tmp_path: Path):
    layout, train_path, val_path = _stick_data(tmp_path)
    result = train(_stick_config(tmp_path, train_path, val_path, layout_file=str(layout),
                                 with_score=True))  # fmt: skip
    assert result.completed and result.layout == "stick5" and result.dims == 2
