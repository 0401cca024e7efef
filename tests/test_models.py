"""The five recognizers against the reference: parity, key mapping, strict loading, complexity."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from skelact.layouts import NTU25
from skelact.models import (
    CheckpointError,
    build_from_checkpoint,
    build_model,
    default_clip_len,
    export_mmaction_checkpoint,
    load_checkpoint,
    to_mmaction_state_dict,
)
from skelact.models.checkpoint import save_own_checkpoint
from skelact.models.complexity import NOTE, complexity_table, format_table

V = NTU25.num_joints
EXPECTED = {  # params (exact), GFLOPs (mmcv-style MACs, 3 decimals)
    "tscnn": (1_013_020, 0.083),
    "hcn": (1_047_036, 0.196),
    "hcnb": (537_980, 0.196),
    "tacnn": (531_744, 0.147),
    "dgcn": (3_748_945, 2.395),
}

#: The five SkelAct models with reference vectors in ../shared/reference (PYSKL's two are
#: tested in test_pyskl_models.py).
SKELACT_FIVE = ("tscnn", "hcn", "hcnb", "tacnn", "dgcn")


def _reference_keys(reference_dir: Path, name: str) -> dict[str, tuple[int, ...]]:
    rows = (reference_dir / "state_dicts" / f"{name}.tsv").read_text().splitlines()[1:]
    keys = {}
    for row in rows:
        key, shape, _ = row.split("\t")
        keys[key] = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
    return keys


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fill every float tensor of the state with noise so that round trips are not trivial."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            else:
                tensor.fill_(int(torch.randint(1, 100, (), generator=gen)))
    return model


def _sample(name: str, n: int = 2, persons: int = 2, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, default_clip_len(name), V, persons, generator=gen)


@pytest.mark.parametrize("name", SKELACT_FIVE)
def test_parity_with_reference_logits(reference_dir: Path, name: str) -> None:
    model = load_checkpoint(build_model(name), reference_dir / "parity" / f"{name}_ckpt.pth")
    io = torch.load(reference_dir / "parity" / f"{name}_io.pt", weights_only=True)
    with torch.no_grad():
        logits = model.eval()(io["input"])
    ref = io["logits"]
    assert logits.shape == ref.shape
    assert float((logits - ref).norm() / ref.norm()) < 1e-4


@pytest.mark.parametrize("name", SKELACT_FIVE)
def test_export_uses_exactly_the_reference_keys_and_round_trips(
    reference_dir: Path, name: str, tmp_path: Path
) -> None:
    source = _randomise(build_model(name), seed=1)
    exported = to_mmaction_state_dict(source)
    expected = _reference_keys(reference_dir, name)
    assert {k: tuple(v.shape) for k, v in exported.items()} == expected

    path = export_mmaction_checkpoint(source, tmp_path / f"{name}.pth")
    target = load_checkpoint(build_model(name), path)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def _broken_checkpoint(reference_dir: Path, tmp_path: Path, edit) -> Path:
    ckpt = torch.load(reference_dir / "parity" / "hcnb_ckpt.pth", weights_only=True)
    edit(ckpt["state_dict"])
    path = tmp_path / "broken.pth"
    torch.save(ckpt, path)
    return path


def test_missing_key_is_named(reference_dir: Path, tmp_path: Path) -> None:
    path = _broken_checkpoint(
        reference_dir, tmp_path, lambda sd: sd.pop("backbone.net_m.0.1.running_var")
    )
    with pytest.raises(CheckpointError, match=r"missing keys: backbone\.net_m\.0\.1\.running_var"):
        load_checkpoint(build_model("hcnb"), path)


def test_unexpected_key_is_named(reference_dir: Path, tmp_path: Path) -> None:
    path = _broken_checkpoint(
        reference_dir, tmp_path, lambda sd: sd.update({"backbone.extra.weight": torch.zeros(3)})
    )
    with pytest.raises(CheckpointError, match=r"unexpected keys: backbone\.extra\.weight"):
        load_checkpoint(build_model("hcnb"), path)


def test_shape_mismatch_is_named(reference_dir: Path, tmp_path: Path) -> None:
    path = _broken_checkpoint(reference_dir, tmp_path, lambda sd: None)
    # A 120-class model cannot take the 60-class head.
    with pytest.raises(CheckpointError, match=r"cls_head\.fc\.weight \(checkpoint \(60, 512\)"):
        load_checkpoint(build_model("hcnb", num_classes=120), path)


def test_wrong_architecture_lists_keys(reference_dir: Path) -> None:
    # hcn has no BatchNorm and has fc7: both directions must be reported.
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(build_model("hcn"), reference_dir / "parity" / "hcnb_ckpt.pth")
    message = str(err.value)
    assert "hcnb_ckpt.pth" in message
    assert "missing keys: " in message and "backbone.fc7.0.weight" in message
    assert "unexpected keys: " in message and "backbone.net_l.0.1.running_mean" in message


def test_unreadable_and_absent_checkpoints(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pth"):
        load_checkpoint(build_model("hcn"), bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(build_model("hcn"), tmp_path / "absent.pth")


@pytest.mark.parametrize("name", ["tscnn", "tacnn"])
def test_own_checkpoint_round_trip(name: str, tmp_path: Path) -> None:
    model = _randomise(build_model(name, num_classes=11), seed=2).eval()
    path = save_own_checkpoint(model, tmp_path / "last.pt", epoch=3, best={"top1": 0.5})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "skelact" and raw["format_version"] == 1
    assert raw["model"]["name"] == name and raw["epoch"] == 3

    rebuilt = build_from_checkpoint(path).eval()
    assert rebuilt.skelact_spec == model.skelact_spec
    x = _sample(name)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))

    with pytest.raises(CheckpointError, match="holds a"):
        load_checkpoint(build_model("hcn", num_classes=11), path)


def test_build_from_reference_checkpoint_infers_classes(reference_dir: Path) -> None:
    path = reference_dir / "parity" / "tacnn_ckpt.pth"
    with pytest.raises(CheckpointError, match="name="):
        build_from_checkpoint(path)
    model = build_from_checkpoint(path, name="tacnn")
    assert model.skelact_spec["options"]["num_classes"] == 60


@pytest.mark.parametrize("name", SKELACT_FIVE)
def test_forward_shape_with_other_class_count(name: str) -> None:
    model = build_model(name, num_classes=7).train()
    out = model(_sample(name, n=3))
    assert out.shape == (3, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_spec_records_resolved_options() -> None:
    model = build_model("tacnn", num_classes=120, squeeze_factor=2)
    assert model.skelact_spec == {
        "name": "tacnn",
        "options": {
            "num_classes": 120,
            "clip_len": 64,
            "num_joints": 25,
            "num_persons": 2,
            "in_channels": 3,
            "layout": "ntu25",
            "groups": [10, 6],
            "squeeze_factor": 2,
            "dropout": 0.5,
        },
    }
    assert model.backbone.position.conv2.attend.fc1.weight.shape == (15, 30, 1, 1)


def test_build_options_change_the_architecture() -> None:
    hcn_bn = build_model("hcn", with_bn=True, reduce="mean")
    hcnb = build_model("hcnb")
    assert [(k, v.shape) for k, v in hcn_bn.state_dict().items()] == [
        (k, v.shape) for k, v in hcnb.state_dict().items()
    ]
    long_tscnn = build_model("tscnn", clip_len=64)
    assert long_tscnn.backbone.fc5.linear.in_features == 4096
    assert long_tscnn(torch.randn(2, 3, 64, V, 2)).shape == (2, 60)
    one_person = build_model("hcn", num_persons=1, num_joints=20, in_channels=2)
    assert one_person(torch.randn(2, 2, 64, 20, 1)).shape == (2, 60)
    grouped = build_model("tacnn", groups=(8, 4))
    assert grouped.backbone.position.conv3.group.conv1.weight.shape == (32, 8, 3, 3)


def test_bad_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet")
    with pytest.raises(ValueError, match="squeeze_facter"):
        build_model("tacnn", squeeze_facter=2)
    with pytest.raises(ValueError, match="reduce"):
        build_model("hcn", reduce="max")
    assert [default_clip_len(n) for n in SKELACT_FIVE] == [32, 64, 64, 64, 64]


def test_reference_initialisation() -> None:
    torch.manual_seed(0)
    model = build_model("tscnn").requires_grad_(False)
    backbone = model.backbone
    conv = backbone.conv3[0]
    fan_in = conv.in_channels * 9
    fan_out = conv.out_channels * 9
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    assert float(conv.weight.abs().max()) <= bound
    assert float(conv.weight.abs().max()) > 0.9 * bound
    assert float(conv.bias.abs().max()) == 0.0
    assert abs(float(backbone.fc5.linear.weight.std()) - 0.01) < 1e-3
    assert abs(float(model.head.fc.weight.std()) - 0.01) < 2e-3
    assert float(backbone.fc5.act.weight) == pytest.approx(0.1)
    w = backbone.position.transform.weight
    assert torch.allclose(w @ w.T, torch.eye(25), atol=1e-5)
    bn = build_model("hcnb").backbone.motion.bn1
    assert torch.equal(bn.weight, torch.ones(64)) and torch.equal(bn.bias, torch.zeros(64))


@pytest.mark.parametrize("name", SKELACT_FIVE)
def test_params_and_gflops_match_the_reference(name: str) -> None:
    (row,) = complexity_table([name])
    params, gflops = EXPECTED[name]
    assert row["params"] == params
    assert round(row["gflops"], 3) == gflops
    assert row["input_shape"] == [1, 3, default_clip_len(name), 25, 2]


def test_flops_table_text_has_the_note() -> None:
    rows = [{"model": "hcn", "params": 1_047_036, "gflops": 0.19636, "input_shape": [1, 3, 64]}]
    text = format_table(rows)
    assert "1,047,036" in text and "0.196" in text and "1 x 3 x 64" in text
    assert NOTE in text and "GMACs" in NOTE and "0.785 M" in NOTE


def test_flops_cli_json() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "skelact", "flops", "--model", "hcnb", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout) == [
        {
            "model": "hcnb",
            "params": 537_980,
            "gflops": pytest.approx(0.196266, abs=1e-6),
            "input_shape": [1, 3, 64, 25, 2],
        }
    ]
    cmd = [sys.executable, "-m", "skelact", "flops", "--model", "nope"]
    bad = subprocess.run(cmd, capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown model 'nope'" in bad.stderr
