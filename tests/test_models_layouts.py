"""Every model on every layout: 2-D and 3-D, with and without a score channel, DGCN's graph,
checkpoints that rebuild the layout (a user's file included) and ONNX export of a COCO model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import rig_yaml
from skelact.deploy.export import export_onnx
from skelact.deploy.metadata import DeployError, ModelInfo, check_layout, require_ntu_input
from skelact.deploy.runtime import OnnxModel, classify, predict_file_onnx
from skelact.deploy.stream import stream
from skelact.deploy.torch_backend import TorchModel
from skelact.layouts import (
    BUILTIN_LAYOUTS,
    NTU25,
    LayoutError,
    get_layout,
    is_builtin,
    layout_from_dict,
    layout_to_dict,
)
from skelact.models import (
    MODEL_NAMES,
    ModelError,
    build_from_checkpoint,
    build_model,
    export_mmaction_checkpoint,
    model_options,
)
from skelact.models.checkpoint import read_checkpoint, save_own_checkpoint
from skelact.models.complexity import model_complexity
from skelact.models.graph import layout_adjacency

CLIP_LEN = 16  # the shortest clip every model takes (HCN's flatten needs 16 frames)
NUM_CLASSES = 3
#: (layout, input channels): COCO 2-D, COCO 2-D + score, OpenPose 3-D, MediaPipe 2-D.
CASES = [("coco17", 2), ("coco17", 3), ("openpose25", 3), ("mediapipe33", 2)]
#: Adam steps on the fixed batch; DGCN's step costs about ten CNN steps and it fits in a few.
STEPS = {"dgcn": 4}

RIG = rig_yaml("rig6", extra=(("r_foot", "pelvis"),))  # six joints: a user layout of its own


def small(name: str, **options) -> torch.nn.Module:
    """``name`` without dropout, so a few steps on a fixed batch must lower the loss."""
    no_dropout = {"dropout": 0.0} if "dropout" in model_options(name) else {}
    return build_model(name, num_classes=NUM_CLASSES, clip_len=CLIP_LEN, **no_dropout, **options)


def batch(layout: str, channels: int, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    v = get_layout(layout).num_joints
    x = torch.randn(n, channels, CLIP_LEN, v, 2, generator=gen)
    return x, torch.arange(n) % NUM_CLASSES


@pytest.fixture
def rig_file(tmp_path: Path) -> Path:
    path = tmp_path / "rig.yaml"
    path.write_text(RIG)
    return path


@pytest.mark.parametrize(("layout", "channels"), CASES)
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_trains_on_layout(name: str, layout: str, channels: int) -> None:
    torch.manual_seed(0)
    model = small(name, layout=layout, in_channels=channels).train()
    options = model.skelact_spec["options"]
    assert options["layout"] == layout and options["in_channels"] == channels
    assert options["num_joints"] == get_layout(layout).num_joints
    x, y = batch(layout, channels)
    out = model(x)
    assert out.shape == (4, NUM_CLASSES)
    first = F.cross_entropy(out, y)
    first.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(STEPS.get(name, 15)):
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
    assert loss.item() < 0.9 * first.item(), (first.item(), loss.item())


@pytest.mark.parametrize("layout", BUILTIN_LAYOUTS)
def test_dgcn_graph_is_the_layouts(layout: str) -> None:
    model = small("dgcn", layout=layout, in_channels=2)
    expected = torch.tensor(layout_adjacency(get_layout(layout)), dtype=torch.float32)
    torch.testing.assert_close(model.backbone.A, expected, rtol=0, atol=0)
    first_block = model.backbone.agcn_networks[0].gcn
    torch.testing.assert_close(first_block.PA.detach(), expected, rtol=0, atol=0)


def test_dgcn_refuses_a_joint_count_its_layout_does_not_have() -> None:
    with pytest.raises(ModelError, match=r"layout 'coco17' \(17 joints\), so num_joints=25"):
        build_model("dgcn", layout="coco17", num_joints=25)
    with pytest.raises(LayoutError, match="unknown layout 'coco18'"):
        build_model("dgcn", layout="coco18")
    # the CNNs only need a count: a layout-less joint count still builds (as before layouts)
    assert build_model("hcn", num_joints=20, in_channels=2).skelact_spec["options"]["layout"] == (
        "ntu25"
    )


def test_layout_mapping_round_trip_and_builtin_check(rig_file: Path) -> None:
    for name in BUILTIN_LAYOUTS:
        layout = get_layout(name)
        assert layout_from_dict(layout_to_dict(layout)) == layout
        assert is_builtin(layout)
    rig = get_layout(str(rig_file))
    assert layout_from_dict(layout_to_dict(rig)) == rig and not is_builtin(rig)
    # a user file that reuses a built-in's name with other wiring is not that built-in
    impostor = layout_from_dict({**layout_to_dict(rig), "name": "coco17"})
    assert not is_builtin(impostor)


def test_checkpoint_round_trip_keeps_the_layout(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = small("dgcn", layout="coco17", in_channels=3).eval()
    assert "layout" not in model.skelact_spec  # a built-in: its name rebuilds it
    path = save_own_checkpoint(model, tmp_path / "coco.pt")
    rebuilt = build_from_checkpoint(path).eval()
    assert rebuilt.skelact_spec == model.skelact_spec
    x, _ = batch("coco17", 3, n=2)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)
    exported = export_mmaction_checkpoint(model, tmp_path / "coco_mm.pth")
    assert build_from_checkpoint(exported).skelact_spec == model.skelact_spec


def test_checkpoint_of_a_user_layout_rebuilds_without_its_file(
    rig_file: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = small("dgcn", layout=str(rig_file), in_channels=2).eval()
    rig = get_layout(str(rig_file))
    assert model.skelact_spec["options"]["layout"] == "rig6"  # the name, never the path
    assert model.skelact_spec["layout"] == layout_to_dict(rig)
    own = save_own_checkpoint(model, tmp_path / "rig.pt")
    mm = export_mmaction_checkpoint(model, tmp_path / "rig_mm.pth")
    rig_file.unlink()
    x, _ = batch("coco17", 2, n=2)
    x = x[:, :, :, : rig.num_joints]
    for path in (own, mm):
        rebuilt = build_from_checkpoint(path).eval()
        assert rebuilt.skelact_spec == model.skelact_spec
        torch.testing.assert_close(rebuilt.backbone.A, model.backbone.A, rtol=0, atol=0)
        with torch.no_grad():
            torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)
    # an explicit layout still overrides what the checkpoint keeps (and is checked)
    with pytest.raises(ModelError, match="layout 'coco17'"):
        build_from_checkpoint(own, layout="coco17")


def test_complexity_counts_the_layouts_input() -> None:
    row = model_complexity("hcn", layout="coco17", in_channels=2, num_classes=NUM_CLASSES)
    assert row["input_shape"] == [1, 2, 64, 17, 2]
    assert row["params"] < model_complexity("hcn", num_classes=NUM_CLASSES)["params"]


def test_checkpoint_from_before_layouts_is_ntu(tmp_path: Path) -> None:
    model = build_model("hcn", num_classes=NUM_CLASSES)
    path = save_own_checkpoint(model, tmp_path / "old.pt")
    ckpt = read_checkpoint(path)
    del ckpt["model"]["options"]["layout"]
    torch.save(ckpt, path)
    assert build_from_checkpoint(path).skelact_spec["options"]["layout"] == NTU25.name


@pytest.mark.parametrize("name", ["hcn", "dgcn"])  # a CNN and the model wired by the layout
def test_coco17_2d_model_exports_with_parity_and_is_refused_raw_ntu_input(
    name: str, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = small(name, layout="coco17", in_channels=2)
    ckpt = save_own_checkpoint(model, tmp_path / "coco.pt", config={"val_clip_ratio": 0.9})
    result = export_onnx(ckpt, tmp_path / "coco.onnx")
    assert result.parity_rel_error < 1e-4
    onnx_model = OnnxModel(tmp_path / "coco.onnx")
    info = onnx_model.info
    assert (info.layout, info.num_joints, info.in_channels) == ("coco17", 17, 2)
    assert info.class_names == ("class 0", "class 1", "class 2")  # not NTU's action names
    assert info == TorchModel(ckpt).info
    keypoint = np.random.default_rng(0).standard_normal((2, 40, 17, 2)).astype(np.float32)
    probs = classify(onnx_model, keypoint)
    np.testing.assert_allclose(probs, classify(TorchModel(ckpt), keypoint), rtol=1e-4, atol=1e-6)
    with pytest.raises(DeployError, match=r"raw NTU \.skeleton input is layout 'ntu25'.*'coco17'"):
        predict_file_onnx(tmp_path / "S001C001P001R001A001.skeleton", onnx_model)
    with pytest.raises(DeployError, match="expects layout 'coco17' with 2 input channels"):
        next(stream(iter([]), onnx_model, window=8, stride=8))


def test_metadata_checks_the_joint_count_of_built_in_layouts() -> None:
    check_layout("coco17", 17, "m.onnx")
    check_layout("rig6", 6, "m.onnx")  # a user layout: its count is all there is to record
    with pytest.raises(DeployError, match="m.onnx: model expects layout 'coco17' with 25 joints"):
        check_layout("coco17", 25, "m.onnx")
    require_ntu_input("ntu25", 3, "m.onnx")
    with pytest.raises(DeployError, match="m.onnx: raw NTU .* 'ntu25' with 4 input channels"):
        require_ntu_input("ntu25", 4, "m.onnx")
    props = ModelInfo("hcn", ("a", "b"), 64, 0.9, num_joints=6, layout="rig6").to_props()
    assert ModelInfo.from_props(props, "m.onnx").layout == "rig6"
