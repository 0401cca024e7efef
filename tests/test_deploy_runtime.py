"""Prediction through ONNX Runtime: no torch on that path, same answer as the torch path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deploy_support import Exports, shared_exports
from skelact.deploy.metadata import DeployError
from skelact.deploy.runtime import predict_any, predict_file_onnx
from skelact.engine.predict import predict_file

REPO_ROOT = Path(__file__).resolve().parents[1]
# leading empty frames and 4 bodies; a short file; a two-person file
SAMPLES = ["S001C001P001R001A001", "S006C003P036R002A006", "S007C003P002R002A024"]

TORCH_FREE = """
import json, sys
from skelact.cli import app
app(["predict", sys.argv[1], "--onnx", sys.argv[2], "--json", "--top-k", "60"],
    standalone_mode=False)
assert "torch" not in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))
print("TORCH-FREE")
"""


@pytest.fixture(scope="session")
def exported(reference_dir: Path, tmp_path_factory) -> Exports:
    return shared_exports(reference_dir, tmp_path_factory)


def raw(reference_dir: Path, sample: str) -> Path:
    return reference_dir / "ntu_prep" / "raw" / f"{sample}.skeleton"


def test_predict_onnx_never_imports_torch(exported, reference_dir: Path) -> None:
    entry = exported["own", "hcn"]
    path = raw(reference_dir, SAMPLES[0])
    done = subprocess.run(
        [sys.executable, "-c", TORCH_FREE, str(path), str(entry["onnx"])],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("TORCH-FREE")
    onnx_top = json.loads(done.stdout[: done.stdout.rindex("TORCH-FREE")])["top"]
    torch_top = predict_file(path, entry["checkpoint"], top_k=60, device="cpu").top
    assert [t["class"] for t in onnx_top] == [c for c, _, _ in torch_top]
    np.testing.assert_allclose(
        [t["probability"] for t in onnx_top], [p for _, _, p in torch_top], atol=1e-5
    )


@pytest.mark.parametrize("name", ["tscnn", "dgcn"])
@pytest.mark.parametrize("sample", SAMPLES)
def test_onnx_prediction_equals_torch_prediction(exported, reference_dir, name, sample) -> None:
    entry = exported["reference", name]
    path = raw(reference_dir, sample)
    ours = predict_file_onnx(path, entry["onnx"], top_k_classes=5)
    theirs = predict_file(path, entry["checkpoint"], model=name, top_k=5, device="cpu")
    assert (ours.sample, ours.model, ours.num_frames, ours.label, ours.label_name) == (
        theirs.sample, theirs.model, theirs.num_frames, theirs.label, theirs.label_name
    )  # fmt: skip
    assert [c for c, _, _ in ours.top] == [c for c, _, _ in theirs.top]
    np.testing.assert_allclose([p for *_, p in ours.top], [p for *_, p in theirs.top], atol=1e-5)


def test_predict_needs_exactly_one_model_source(exported, reference_dir: Path) -> None:
    path = raw(reference_dir, SAMPLES[0])
    with pytest.raises(DeployError, match="exactly one"):
        predict_any(path)
    entry = exported["reference", "tscnn"]
    with pytest.raises(DeployError, match="exactly one"):
        predict_any(path, checkpoint=entry["checkpoint"], onnx=entry["onnx"])
