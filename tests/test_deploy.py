"""ONNX export: parity with PyTorch and the reference logits, metadata, refusal to write."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from deploy_support import OWN_CLIP_RATIO, Exports, shared_exports
from skelact import __version__
from skelact.cli import app
from skelact.data.ntu import action_names
from skelact.deploy.export import ExportParityError, export_onnx, relative_error
from skelact.deploy.metadata import LAYOUT, DeployError, export_summary, read_export_metrics
from skelact.deploy.runtime import OnnxModel
from skelact.layouts import NTU25
from skelact.models import default_clip_len

NUM_JOINTS = NTU25.num_joints

RECIPE_RATIO = {"tscnn": 0.9, "hcn": 0.9, "hcnb": 0.95, "tacnn": 0.95, "dgcn": 0.95}

#: The five SkelAct models with reference vectors in ../shared/reference (PYSKL's two are
#: tested in test_pyskl_models.py).
SKELACT_FIVE = ("tscnn", "hcn", "hcnb", "tacnn", "dgcn")


@pytest.fixture(scope="session")
def exported(reference_dir: Path, tmp_path_factory) -> Exports:
    return shared_exports(reference_dir, tmp_path_factory)


@pytest.mark.parametrize("kind", ["reference", "own"])
@pytest.mark.parametrize("name", SKELACT_FIVE)
def test_onnx_reproduces_reference_logits(exported, reference_dir: Path, kind, name) -> None:
    entry = exported[kind, name]
    assert entry["result"].parity_rel_error < 1e-4
    io = torch.load(reference_dir / "parity" / f"{name}_io.pt", weights_only=True)
    x, ref = io["input"].numpy(), io["logits"].numpy()
    assert x.shape[0] > 1  # the batch axis is dynamic: exported with 1, checked with 2, run with N
    y = OnnxModel(entry["onnx"]).logits(x)
    assert relative_error(y, ref) < 1e-4


@pytest.mark.parametrize("name", SKELACT_FIVE)
def test_metadata_describes_the_model(exported, name) -> None:
    ref_info = OnnxModel(exported["reference", name]["onnx"]).info
    own_info = OnnxModel(exported["own", name]["onnx"]).info
    for info in (ref_info, own_info):
        assert info.model == name
        assert info.class_names == tuple(action_names(60))
        assert info.layout == LAYOUT == f"ntu{NUM_JOINTS}"
        assert info.num_joints == NUM_JOINTS
        assert info.clip_len == default_clip_len(name)
        assert info.skelact_version == __version__
    assert ref_info.val_clip_ratio == RECIPE_RATIO[name]  # foreign checkpoint: the recipe's
    assert own_info.val_clip_ratio == OWN_CLIP_RATIO  # own: the training run's config
    proto = onnx.load(exported["own", name]["onnx"], load_external_data=False)
    (inp,) = proto.graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, default_clip_len(name), NUM_JOINTS, 2]
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["skelact.num_classes"] == "60"
    assert json.loads(props["skelact.class_names"])[0] == "drink water"


def test_failing_export_writes_nothing(reference_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    out.write_bytes(b"previous export")
    ckpt = reference_dir / "parity" / "hcnb_ckpt.pth"
    # ORT and PyTorch never agree to the last bit through a conv net: tolerance 0 must fail
    with pytest.raises(ExportParityError, match="relative error .* not written"):
        export_onnx(ckpt, out, model="hcnb", tolerance=0.0)
    assert out.read_bytes() == b"previous export"
    with pytest.raises(DeployError, match="with opset 5"):  # opset 5 cannot express these nets
        export_onnx(ckpt, out, model="hcnb", opset=5)
    assert out.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no temp left


def test_export_cli_writes_metrics_and_reports_errors(reference_dir: Path, tmp_path: Path) -> None:
    ckpt = reference_dir / "parity" / "tscnn_ckpt.pth"
    runner = CliRunner()
    metrics_path = tmp_path / "runs" / "xsub" / "tscnn" / "seed0" / "export.json"
    args = ["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out",
            str(tmp_path / "m.onnx"), "--model", "tscnn", "--opset", "17",
            "--metrics", str(metrics_path)]  # fmt: skip
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    metrics = read_export_metrics(metrics_path)
    assert 0 <= metrics["parity_ppm"] < 100 and metrics["clip_len"] == 32
    # a DVC metrics file: numbers only (names and paths are in the command's own output)
    assert all(isinstance(v, (int, float)) for v in metrics.values()), metrics
    assert json.loads(done.stdout)["onnx"] == str(tmp_path / "m.onnx")
    assert read_export_metrics(tmp_path / "absent.json") is None
    summary = export_summary(tmp_path / "runs", "xsub", "tscnn", [0, 1])
    assert summary["seeds"] == [0] and summary["parity_rel_error_max"] < 1e-4
    assert export_summary(tmp_path / "runs", "xsub", "hcn", [0]) is None

    no_name = runner.invoke(
        app, ["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "x")]
    )
    assert no_name.exit_code == 1 and "--model" in no_name.output
    bad_format = runner.invoke(app, args[:4] + ["tflite"] + args[5:9])
    assert bad_format.exit_code == 2 and "'tflite' is not one of" in bad_format.output
    assert not (tmp_path / "x").exists()


def test_runtime_refuses_a_file_without_skelact_metadata(exported, tmp_path: Path) -> None:
    proto = onnx.load(exported["reference", "tscnn"]["onnx"])
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, bare)
    with pytest.raises(DeployError, match="no 'skelact.metadata_version'"):
        OnnxModel(bare)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(DeployError, match="cannot load the ONNX model"):
        OnnxModel(tmp_path / "junk.onnx")


def test_other_layout_is_refused(exported, tmp_path: Path) -> None:
    proto = onnx.load(exported["reference", "tscnn"]["onnx"])
    for prop in proto.metadata_props:
        if prop.key == "skelact.num_joints":
            prop.value = str(NUM_JOINTS + 1)
    other = tmp_path / "other.onnx"
    onnx.save(proto, other)
    with pytest.raises(DeployError, match="layout"):
        OnnxModel(other)
    assert np.isfinite(OnnxModel(exported["reference", "tscnn"]["onnx"]).logits(
        np.zeros((1, 3, 32, NUM_JOINTS, 2), np.float32))).all()  # fmt: skip
