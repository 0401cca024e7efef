"""params.yaml parsing: defaults, recipe modes, per-model overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from skelact.config import (
    ConfigError,
    eval_dir,
    experiment_name,
    load_params,
    load_train_overrides,
    parse_params,
    run_dir,
    scale_steps,
    train_overrides,
)
from skelact.engine.recipes import TrainConfig, apply_overrides, resolve_config

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path, data) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_repository_params_file_is_valid():
    params = load_params(REPO / "params.yaml")
    assert params.data.source == "synthetic" and params.mode == "quick"
    assert set(params.models) == {"tscnn", "hcn", "hcnb", "tacnn", "dgcn"}
    for model in params.models:
        overrides = load_train_overrides(REPO / "params.yaml", model, "xsub")
        config = resolve_config(apply_overrides(TrainConfig(model=model), overrides))
        quick = {**params.quick.get("common", {}), **params.quick.get(model, {})}
        assert config.epochs == quick["epochs"]
        assert all(1 <= s <= config.epochs for s in config.lr_steps)
        assert config.experiment == "skelact/synthetic-xsub"


def test_ntu_source_uses_the_paper_recipe(tmp_path):
    path = _write(
        tmp_path, {"data": {"source": "ntu60", "raw_dir": "/x"}, "train": {"device": "cuda"}}
    )
    overrides = load_train_overrides(path, "hcn", "xview")
    assert "epochs" not in overrides and "lr_steps" not in overrides  # reference values stay
    config = resolve_config(apply_overrides(TrainConfig(model="hcn"), overrides))
    assert (config.epochs, config.lr_steps) == (500, [350, 430, 470])
    assert overrides["device"] == "cuda" and overrides["experiment"] == "skelact/ntu60-xview"


def test_quick_recipe_scales_the_schedule_and_model_overrides_win(tmp_path):
    path = _write(
        tmp_path,
        {
            "quick": {"common": {"epochs": 20, "batch_size": 16}, "tacnn": {"epochs": 7}},
            "train": {"batch_size": 32},
            "model": {"dgcn": {"epochs": 13, "lr": 0.05}, "hcn": {"lr_steps": [3]}},
        },
    )
    dgcn = load_train_overrides(path, "dgcn")
    assert dgcn["epochs"] == 13 and dgcn["lr"] == 0.05 and dgcn["batch_size"] == 32
    assert dgcn["lr_steps"] == [7, 9, 11]  # 35/45/55 of 65 epochs, scaled to 13
    assert dgcn["val_interval"] == 1
    hcn = load_train_overrides(path, "hcn")
    assert hcn["epochs"] == 20 and hcn["lr_steps"] == [3]  # explicit steps are kept
    assert hcn["val_interval"] == 2  # about 10 validations over the shortened run
    assert "experiment" not in hcn  # no benchmark given
    assert load_train_overrides(path, "tacnn")["epochs"] == 7  # quick.<model> over quick.common


def test_forced_recipe_and_tracking_settings(tmp_path):
    path = _write(
        tmp_path,
        {"recipe": "paper", "tracking": {"enabled": False, "uri": "sqlite:///x.db"}},
    )
    overrides = load_train_overrides(path, "tacnn")
    assert overrides == {"track": False, "tracking_uri": "sqlite:///x.db"}


def test_scale_steps():
    assert scale_steps([350, 430, 470], 500, 500) == [350, 430, 470]
    assert scale_steps([350, 430, 470], 500, 10) == [7, 9]
    assert scale_steps([650, 730, 770], 800, 1) == [1]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"dataa": {}}, "unknown section(s) ['dataa']; valid sections: ['benchmarks'"),
        (
            {"data": {"sorce": "ntu60"}},
            "unknown key(s) ['sorce']; valid keys: ['dataset',",
        ),
        (
            {"data": {"source": "kinetics"}},
            "'kinetics' is not one of ['synthetic', 'ntu60',",
        ),
        ({"data": {"source": "ntu120"}}, "data.dataset: is 'ntu60' but data.source is 'ntu120'"),
        ({"benchmarks": ["xset"]}, "unknown entry 'xset'; valid: ['xsub', 'xview']"),
        ({"models": ["hcn", "resnet"]}, "unknown entry 'resnet'"),
        ({"seeds": [0, 0]}, "distinct integers"),
        ({"train": {"epoch": 3}}, "unknown training option 'epoch'; valid options: ["),
        ({"model": {"hcn": {"lrr": 1}}}, "model.hcn: unknown training option 'lrr'"),
        ({"model": {"gcn": {}}}, "unknown model 'gcn'"),
        (
            {"train": {"seed": 3}},
            "train.seed: cannot be set here: seeds come from",
        ),
        ({"synth": {"num_classes": "ten"}}, "synth.num_classes: must be an integer"),
        ({"tracking": {"enabled": "yes"}}, "tracking.enabled: must be true or false"),
        ({"recipe": "fast"}, "'fast' is not one of ['auto', 'paper', 'quick']"),
    ],
)
def test_bad_params_name_the_key_and_the_valid_ones(data, message):
    with pytest.raises(ConfigError) as err:
        parse_params(data, "p.yaml")
    assert message in str(err.value)
    assert str(err.value).startswith("p.yaml")


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="no such params file"):
        load_params(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_params(bad)
    with pytest.raises(ConfigError, match="unknown model 'vit'"):
        train_overrides(parse_params({}), "vit")


def test_ntu120_and_layout_helpers():
    params = parse_params(
        {"data": {"source": "ntu120", "dataset": "ntu120"}, "benchmarks": ["xsub", "xset"]}
    )
    assert params.mode == "paper" and params.benchmarks == ("xsub", "xset")
    assert experiment_name(params, "xset") == "skelact/ntu120-xset"
    assert run_dir("hcn", "xsub", 3) == Path("runs/xsub/hcn/seed3")
    assert eval_dir("hcn", "xsub", 3, root="/p") == Path("/p/eval/xsub/hcn/seed3")
