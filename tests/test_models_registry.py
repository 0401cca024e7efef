"""The model registry, the key maps beside the models, exported metadata and finite checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from skelact.errors import SkelactError
from skelact.layouts import NTU25
from skelact.models import (
    MODEL_NAMES,
    CheckpointError,
    ModelError,
    build_from_checkpoint,
    build_model,
    check_finite_state_dict,
    default_clip_len,
    export_mmaction_checkpoint,
    load_checkpoint,
    model_options,
    reference_key_map,
    to_mmaction_state_dict,
)
from skelact.models.registry import entry, model_names, register_model

DEFAULTS = {
    "tscnn": (32, {"transformed_joints": 30, "dropout": 0.5}),
    "hcn": (64, {"with_bn": False, "reduce": "flatten", "dropout": 0.5}),
    "hcnb": (64, {"with_bn": True, "reduce": "mean", "dropout": 0.5}),
    "tacnn": (64, {"groups": (10, 6), "squeeze_factor": 1, "dropout": 0.5}),
    "dgcn": (64, {"alpha": 0.6, "lambda_": 1.0}),
    "stgcnpp": (100, {"tcn_dropout": 0.0, "graph": "pyskl"}),
    "ctrgcn": (100, {"tcn_dropout": 0.0, "graph": "pyskl"}),
}


def test_registry_order_and_names() -> None:
    assert MODEL_NAMES == (
        "tscnn", "hcn", "hcnb", "tacnn", "dgcn", "stgcnpp", "ctrgcn"
    ) == model_names()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_each_registered_model_builds_with_its_defaults(name: str) -> None:
    clip_len, options = DEFAULTS[name]
    assert default_clip_len(name) == clip_len
    assert model_options(name) == options
    spec = build_model(name).skelact_spec
    assert spec["name"] == name
    assert spec["options"]["clip_len"] == clip_len
    assert spec["options"]["num_joints"] == NTU25.num_joints
    assert {k: spec["options"][k] for k in options} == {
        k: list(v) if isinstance(v, tuple) else v for k, v in options.items()
    }


def test_unknown_name_lists_the_registered_names() -> None:
    for call in (lambda: build_model("resnet"), lambda: default_clip_len("resnet")):
        with pytest.raises(ModelError, match="unknown model 'resnet'; choose one of ") as err:
            call()
        assert all(name in str(err.value) for name in MODEL_NAMES)
        assert isinstance(err.value, SkelactError) and isinstance(err.value, ValueError)


def test_unknown_option_lists_the_accepted_ones() -> None:
    with pytest.raises(ModelError, match=r"lamda \(accepted: alpha, lambda_\)"):
        build_model("dgcn", lamda=0.5)


def test_registering_a_name_twice_is_refused() -> None:
    with pytest.raises(RuntimeError, match="registered twice"):
        register_model("hcn", clip_len=64)(lambda dims: torch.nn.Identity())
    assert entry("hcn").builder.__name__ == "build_hcn"


def _randomised(name: str, seed: int) -> torch.nn.Module:
    model = build_model(name)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=gen))
    return model


@pytest.mark.parametrize("name", MODEL_NAMES[:5])  # PYSKL's two: test_pyskl_models.py
def test_key_map_round_trips(reference_dir: Path, name: str) -> None:
    """Own -> reference keys is one to one, hits exactly the reference keys and comes back."""
    model = _randomised(name, seed=3)
    mapping = reference_key_map(model)
    assert len(set(mapping.values())) == len(mapping)
    rows = (reference_dir / "state_dicts" / f"{name}.tsv").read_text().splitlines()[1:]
    assert set(mapping.values()) == {row.split("\t")[0] for row in rows}
    exported = to_mmaction_state_dict(model)
    inverse = {ref: own for own, ref in mapping.items()}
    back = {inverse[k]: v for k, v in exported.items()}
    own = model.state_dict()
    assert back.keys() == own.keys()
    assert all(torch.equal(back[k], own[k]) for k in own)


def test_hcn_key_map_follows_the_batchnorm_switch() -> None:
    plain = reference_key_map(build_model("hcn"))
    with_bn = reference_key_map(build_model("hcn", with_bn=True, reduce="mean"))
    assert plain["backbone.position.conv1.weight"] == "backbone.net_l.0.weight"
    assert with_bn["backbone.position.conv1.weight"] == "backbone.net_l.0.0.weight"
    assert with_bn["backbone.position.bn1.running_var"] == "backbone.net_l.0.1.running_var"


@pytest.mark.parametrize("name", ["tscnn", "dgcn"])
def test_exported_checkpoint_names_its_model(tmp_path: Path, name: str) -> None:
    model = _randomised(name, seed=4).eval()
    path = export_mmaction_checkpoint(model, tmp_path / "exported.pth")
    meta = torch.load(path, weights_only=True)["meta"]
    assert meta["skelact_model"] == name
    rebuilt = build_from_checkpoint(path).eval()  # no name needed
    assert rebuilt.skelact_spec == model.skelact_spec
    weights = model.state_dict()
    assert all(torch.equal(v, weights[k]) for k, v in rebuilt.state_dict().items())
    with pytest.raises(CheckpointError, match="holds a"):
        load_checkpoint(build_model("hcn"), path)


def test_exported_options_survive(tmp_path: Path) -> None:
    model = build_model("tscnn", num_classes=9, clip_len=64)
    path = export_mmaction_checkpoint(model, tmp_path / "long.pth")
    assert build_from_checkpoint(path).skelact_spec == model.skelact_spec


def test_check_finite_names_the_first_bad_tensor() -> None:
    state = build_model("hcnb").state_dict()
    check_finite_state_dict(state, "good.pth")  # passes
    state["backbone.motion.conv3.weight"][0, 0, 0, 0] = float("nan")
    state["head.fc.weight"][0, 0] = float("inf")
    with pytest.raises(CheckpointError, match=r"bad\.pth: tensor 'backbone\.motion\.conv3\."):
        check_finite_state_dict(state, "bad.pth")
    assert issubclass(CheckpointError, SkelactError)


def test_dgcn_needs_the_skeleton_layout() -> None:
    with pytest.raises(ModelError, match=r"layout 'ntu25' \(25 joints\), so num_joints=24"):
        build_model("dgcn", num_joints=NTU25.num_joints - 1)


def test_checkpoint_complexity_counts_the_trained_input_at_the_recipe_clip(tmp_path: Path):
    """The report's params/GFLOPs: the checkpoint's layout, channels and head, at the recipe's
    clip length even when the run trained on shorter clips (DGCN's weights depend on it)."""
    from skelact.models.checkpoint import own_checkpoint
    from skelact.models.complexity import checkpoint_complexity, model_complexity

    dgcn = build_model("dgcn", num_classes=4, clip_len=32, layout="coco17", in_channels=2)
    torch.save(own_checkpoint(dgcn), tmp_path / "best.pt")
    counted = checkpoint_complexity(tmp_path / "best.pt")
    assert counted == model_complexity("dgcn", num_classes=4, layout="coco17", in_channels=2)
    assert counted["input_shape"] == [1, 2, 64, 17, 2]
