"""Streams end to end (train -> test -> scores.npz -> fuse -> ONNX) and the fusion arithmetic.

The fused scores are checked against the weighted sum computed here from the saved score
files, independently of ``skelact.engine.fuse`` (sample order shuffled in one input, so the
alignment by name is exercised); a bone-stream model exported to ONNX takes joints and equals
PyTorch fed the bones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import make_pickles
from skelact.data.dataset import SkeletonSet
from skelact.data.streams import stream_features
from skelact.data.transforms import ClipSampler
from skelact.engine.evaluate import EvalConfig, evaluate, load_model
from skelact.engine.fuse import FuseConfig, FuseError, fuse, fused_scores, read_scores
from skelact.engine.recipes import TrainConfig
from skelact.engine.train import train
from skelact.layouts import NTU25

STREAMS = ("joint", "bone", "joint_motion")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    return make_pickles(tmp_path_factory.mktemp("data"), num_train=32, num_val=16)


@pytest.fixture(scope="module")
def evaluated(data, tmp_path_factory) -> dict[str, Path]:
    """One tiny hcnb per stream, trained and evaluated: stream -> its eval folder."""
    root = tmp_path_factory.mktemp("streams")
    out = {}
    for stream in STREAMS:
        run = root / "runs" / stream
        result = train(TrainConfig(
            model="hcnb", stream=stream, train_path=str(data[0]), val_path=str(data[1]),
            out_dir=str(run), epochs=2, batch_size=8, lr=1e-3, scale_lr=False, clip_len=16,
            val_interval=1, track=False, quiet=True, deterministic=True, seed=0,
        ))  # fmt: skip
        assert result.stream == stream
        assert json.loads((run / "run_info.json").read_text())["stream"] == stream
        out[stream] = root / "eval" / stream
        evaluate(EvalConfig(checkpoint=str(run / "best.pt"), data=str(data[1]),
                            out_dir=str(out[stream]), track=False, quiet=True))  # fmt: skip
    return out


def test_checkpoint_records_the_stream_and_evaluation_applies_it(data, evaluated):
    """`skelact test` feeds a bone model the bones of the val clips (from the checkpoint's
    config), and scores.npz holds exactly the logits behind metrics.json."""
    run = evaluated["bone"].parent.parent / "runs" / "bone"
    model, raw, _ = load_model(run / "best.pt")
    assert raw["config"]["stream"] == "bone"
    val = SkeletonSet.from_file(data[1])
    clips = ClipSampler(16, train=False, clip_ratio=raw["config"]["val_clip_ratio"])(
        val, np.arange(len(val))
    )
    with torch.no_grad():
        expected = model.eval()(stream_features(clips, "bone", NTU25.parents, 3)).numpy()
        joints_fed = model(clips).numpy()
    saved = read_scores(evaluated["bone"] / "scores.npz")
    np.testing.assert_allclose(saved.scores, expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(saved.scores, joints_fed, atol=1e-3), "bones, not joints"
    assert list(saved.names) == list(val.names) and np.array_equal(saved.labels, val.labels)
    metrics = json.loads((evaluated["bone"] / "metrics.json").read_text())
    assert metrics["top1"] == pytest.approx(float((expected.argmax(1) == val.labels).mean()))
    info = json.loads((evaluated["bone"] / "eval_info.json").read_text())
    assert info["stream"] == "bone"


@pytest.mark.parametrize("softmax", [False, True])
def test_fusion_is_the_weighted_sum_of_the_saved_scores(evaluated, tmp_path, softmax):
    weights = [0.6, 0.6, 0.4]
    files = [evaluated[s] / "scores.npz" for s in STREAMS]
    # the second input in another sample order: fusion must align by name
    shuffled = tmp_path / "shuffled.npz"
    with np.load(files[1]) as npz:
        order = np.random.default_rng(0).permutation(len(npz["names"]))
        np.savez(shuffled, **{k: (npz[k][order] if k != "classes" else npz[k]) for k in npz.files})
    files[1] = shuffled
    result = fuse(FuseConfig(scores=[str(f) for f in files], weights=weights, softmax=softmax,
                             out_dir=str(tmp_path / "fused"), track=False))  # fmt: skip

    loaded = [np.load(f) for f in files]
    names = list(loaded[0]["names"])
    expected = np.zeros(loaded[0]["scores"].shape)
    for w, npz in zip(weights, loaded, strict=True):
        at = {n: i for i, n in enumerate(npz["names"])}
        s = npz["scores"][[at[n] for n in names]].astype(np.float64)
        if softmax:
            s = np.exp(s - s.max(1, keepdims=True))
            s /= s.sum(1, keepdims=True)
        expected += w * s
    labels = loaded[0]["labels"]
    fused = np.load(tmp_path / "fused" / "scores.npz")
    np.testing.assert_allclose(fused["scores"], expected, rtol=1e-6)
    assert list(fused["names"]) == names
    top1 = float((expected.argmax(1) == labels).mean())
    assert result.top1 == pytest.approx(top1)
    metrics = json.loads((tmp_path / "fused" / "metrics.json").read_text())
    assert metrics["top1"] == pytest.approx(top1) and metrics["num_samples"] == len(names)
    confusion = (tmp_path / "fused" / "confusion.csv").read_text().splitlines()
    assert len(confusion) == 1 + expected.shape[1]
    info = json.loads((tmp_path / "fused" / "eval_info.json").read_text())
    assert info["weights"] == weights and info["softmax"] is softmax


def test_one_input_with_weight_one_is_that_input(evaluated):
    one = read_scores(evaluated["joint"] / "scores.npz")
    total, _ = fused_scores([one], [1.0])
    np.testing.assert_array_equal(total, one.scores.astype(np.float64))


def test_files_that_do_not_match_are_refused(evaluated, tmp_path):
    joint = evaluated["joint"] / "scores.npz"
    with np.load(joint) as npz:
        arrays = {k: npz[k] for k in npz.files}
    relabelled = tmp_path / "relabelled.npz"
    np.savez(relabelled, **{**arrays, "labels": (arrays["labels"] + 1) % 4})
    other = tmp_path / "other.npz"
    np.savez(other, **{**arrays, "names": np.array([f"x{i}" for i in range(len(arrays["names"]))])})
    nan = tmp_path / "nan.npz"
    scores = arrays["scores"].copy()
    scores[0, 0] = np.nan
    np.savez(nan, **{**arrays, "scores": scores})
    read = [read_scores(joint)]
    with pytest.raises(FuseError, match="has label"):
        fused_scores(read + [read_scores(relabelled)], [1, 1])
    with pytest.raises(FuseError, match="is not in"):
        fused_scores(read + [read_scores(other)], [1, 1])
    with pytest.raises(FuseError, match="not finite"):
        read_scores(nan)
    with pytest.raises(FuseError, match="2 weight"):
        fused_scores(read, [1, 1])
    with pytest.raises(FuseError, match="sum to 0"):
        fused_scores(read + read, [0, 0])
    with pytest.raises(FuseError, match="finite number >= 0"):
        fused_scores(read + read, [1, -1])
    with pytest.raises(FuseError, match="no such scores file"):
        read_scores(tmp_path / "missing.npz")


def test_fuse_command_line_errors_are_one_line(evaluated, tmp_path):
    joint = str(evaluated["joint"] / "scores.npz")
    cases = [
        (["--scores", joint, "--scores", joint, "--weights", "1", "--out-dir", str(tmp_path)],
         "--weights: 1 given for 2 --scores"),
        (["--scores", joint, "--scores", str(tmp_path / "nope.npz"), "--weights", "1",
          "--weights", "1", "--out-dir", str(tmp_path / "o")], "no such scores file"),
    ]  # fmt: skip
    for args, message in cases:
        proc = subprocess.run([sys.executable, "-m", "skelact", "fuse", *args],
                              capture_output=True, text=True)  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines


def test_bone_stream_onnx_takes_joints(evaluated, tmp_path):
    """The exported graph computes the bones itself: ONNX Runtime fed joints equals PyTorch fed
    the bones of the same joints."""
    from skelact.deploy.export import export_onnx
    from skelact.deploy.runtime import OnnxModel

    ckpt = evaluated["bone"].parent.parent / "runs" / "bone" / "best.pt"
    result = export_onnx(ckpt, tmp_path / "bone.onnx")
    assert result.parity_rel_error < 1e-4
    onnx_model = OnnxModel(tmp_path / "bone.onnx")
    assert onnx_model.info.stream == "bone"
    joints = np.random.default_rng(5).standard_normal((3, 3, 16, 25, 2)).astype(np.float32)
    model, _, _ = load_model(ckpt)
    with torch.no_grad():
        bones = stream_features(torch.from_numpy(joints), "bone", NTU25.parents, 3)
        expected = model.eval()(bones).numpy()
    got = onnx_model.logits(joints)
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 1e-4
