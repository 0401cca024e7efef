"""ST-GCN++ and CTR-GCN learn the synthetic set well above chance in a short CPU run.

Also: a bone-stream run of each trains and exports taking joints.

Three synthetic NTU actions with distinct motions (drink water, throw, sitting down; labels 0,
6, 7 of ``skelact synth``), preprocessed like the pipeline's data; PYSKL's SGD + cosine recipe
at 8 epochs and clip 16. Chance is 1/3 among the present classes.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from skelact.data.preprocess import PreprocessSettings, preprocess
from skelact.data.synth.stage import SynthSettings, synthesize
from skelact.engine.recipes import TrainConfig
from skelact.engine.train import train

pytestmark = pytest.mark.slow
KEPT = {0, 6, 7}


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("synth3")
    synthesize(SynthSettings(out_dir=root / "raw", num_classes=10, samples_per_class=20,
                             frames_min=32, frames_max=48))  # fmt: skip
    preprocess(PreprocessSettings(dataset="ntu60", raw_dir=root / "raw", out_dir=root / "prep",
                                  workers=1))  # fmt: skip
    paths = []
    for split in ("train", "val"):
        with open(root / "prep" / "xsub" / f"{split}.pkl", "rb") as fh:
            anns = [a for a in pickle.load(fh) if a["label"] in KEPT]
        with open(root / f"{split}.pkl", "wb") as fh:
            pickle.dump(anns, fh)
        paths.append(root / f"{split}.pkl")
    return paths[0], paths[1]


@pytest.mark.parametrize("model", ["stgcnpp", "ctrgcn"])
def test_learns_the_synthetic_set(three_classes, model: str, tmp_path: Path) -> None:
    train_path, val_path = three_classes
    result = train(TrainConfig(
        model=model, train_path=str(train_path), val_path=str(val_path), out_dir=str(tmp_path),
        num_classes=10, epochs=8, batch_size=8, clip_len=16, val_interval=2, lr=0.05,
        scale_lr=False, track=False, quiet=True, deterministic=True, seed=0,
    ))  # fmt: skip
    assert result.best_top1 >= 0.6, f"{model}: {result.best_top1:.3f} (chance 0.333)"


@pytest.mark.parametrize("model", ["stgcnpp", "ctrgcn"])
def test_bone_stream_trains_and_exports_taking_joints(model: str, tmp_path: Path) -> None:
    """The stream is computed in the sampler, so the models see C channels of any stream: a
    bone run trains, records its stream, and its ONNX graph takes joints and computes the
    bones (ONNX Runtime fed joints equals PyTorch fed the bones of the same joints)."""
    import json

    import numpy as np
    import torch

    from helpers import make_pickles
    from skelact.data.streams import stream_features
    from skelact.deploy.export import export_onnx
    from skelact.deploy.runtime import OnnxModel
    from skelact.engine.evaluate import load_model
    from skelact.layouts import NTU25

    train_path, val_path = make_pickles(tmp_path / "data", num_train=8, num_val=4, num_classes=2)
    run = tmp_path / "run"
    result = train(TrainConfig(
        model=model, stream="bone", train_path=str(train_path), val_path=str(val_path),
        out_dir=str(run), epochs=1, batch_size=4, clip_len=16, val_interval=1, lr=0.05,
        scale_lr=False, track=False, quiet=True, deterministic=True, seed=0,
    ))  # fmt: skip
    assert result.stream == "bone"
    assert json.loads((run / "run_info.json").read_text())["stream"] == "bone"
    exported = export_onnx(run / "best.pt", tmp_path / "bone.onnx")
    assert exported.parity_rel_error < 1e-4
    onnx_model = OnnxModel(tmp_path / "bone.onnx")
    assert onnx_model.info.stream == "bone"
    clip = onnx_model.info.clip_len
    joints = np.random.default_rng(5).standard_normal((2, 3, clip, 25, 2)).astype(np.float32)
    net, _, _ = load_model(run / "best.pt")
    with torch.no_grad():
        bones = stream_features(torch.from_numpy(joints), "bone", NTU25.parents, 3)
        expected = net.eval()(bones).numpy()
        joints_fed = net(torch.from_numpy(joints)).numpy()
    got = onnx_model.logits(joints)
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 1e-4
    assert not np.allclose(got, joints_fed, atol=1e-4), "the graph computed the bones"
