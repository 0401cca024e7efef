"""params.yaml -> typed settings: the one merge, recipe modes, types, YAML traps, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from skelact.config import (
    ConfigError,
    EvaluateParams,
    SynthParams,
    TrainConfig,
    evaluate_options,
    experiment_name,
    import_options,
    load_params,
    parse_params,
    preprocess_options,
    report_options,
    scale_steps,
    stage_dir,
    synth_options,
    train_config,
)

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path, data) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def _error(tmp_path, text: str) -> str:
    with pytest.raises(ConfigError) as err:
        params = load_params(_write(tmp_path, text))
        train_config("hcn", params, "xsub")
    message = str(err.value)
    assert "\n" not in message
    return message


def test_the_repository_params_file_is_valid():
    params = load_params(REPO / "params.yaml")
    assert params.data.source == "synthetic" and params.mode == "quick"
    assert set(params.models) == {"tscnn", "hcn", "hcnb", "tacnn", "dgcn"}
    for model in params.models:
        config = train_config(model, params, "xsub")
        quick = {**params.quick.get("common", {}), **params.quick.get(model, {})}
        assert config.epochs == quick["epochs"]
        assert all(1 <= s <= config.epochs for s in config.lr_steps)
        assert config.experiment == "skelact/synthetic-xsub"
        assert config.num_classes == params.synth.num_classes  # from the data's definition
        assert None not in (config.clip_len, config.optimizer, config.val_interval)


def test_ntu_source_uses_the_paper_recipe_and_the_dataset_class_count(tmp_path):
    data = {"data": {"source": "ntu60", "raw_dir": "/x"}, "train": {"device": "cuda"}}
    config = train_config("hcn", load_params(_write(tmp_path, data)), "xview")
    assert (config.epochs, config.lr_steps, config.clip_len) == (500, [350, 430, 470], 64)
    assert config.device == "cuda" and config.experiment == "skelact/ntu60-xview"
    assert config.num_classes == 60
    ntu120 = {"data": {"source": "ntu120", "dataset": "ntu120"}, "benchmarks": ["xset"]}
    assert train_config("tscnn", parse_params(ntu120)).num_classes == 120
    explicit = {"data": {"source": "ntu60"}, "train": {"num_classes": 7}}
    assert train_config("tscnn", parse_params(explicit)).num_classes == 7


def test_the_merge_order_recipe_quick_train_model_command_line(tmp_path):
    path = _write(
        tmp_path,
        {
            "quick": {"common": {"epochs": 20, "batch_size": 16}, "tacnn": {"epochs": 7}},
            "train": {"batch_size": 32},
            "model": {"dgcn": {"epochs": 13, "lr": 0.05}, "hcn": {"lr_steps": [3]}},
        },
    )
    params = load_params(path)
    dgcn = train_config("dgcn", params)
    assert (dgcn.epochs, dgcn.lr, dgcn.batch_size, dgcn.optimizer) == (13, 0.05, 32, "sgd")
    assert dgcn.lr_steps == [7, 9, 11]  # 35/45/55 of 65 epochs, scaled to 13
    assert dgcn.val_interval == 1
    hcn = train_config("hcn", params)
    assert hcn.epochs == 20 and hcn.lr_steps == [3]  # explicit steps are kept
    assert hcn.val_interval == 2  # about 10 validations over the shortened run
    assert hcn.experiment == "skelact"  # no benchmark given
    assert train_config("tacnn", params).epochs == 7  # quick.<model> over quick.common
    cli = train_config("dgcn", params, epochs=5, lr=None, batch_size=8)
    assert (cli.epochs, cli.lr, cli.batch_size) == (5, 0.05, 8)  # None = not given
    assert cli.lr_steps == [7, 9, 11]  # the command line applies as given, like the Python API
    assert train_config("hcn", None, epochs=4).lr_steps == [350, 430, 470]


def test_forced_recipe_and_tracking_settings(tmp_path):
    path = _write(
        tmp_path,
        {"recipe": "paper", "tracking": {"enabled": False, "uri": "sqlite:///x.db"}},
    )
    config = train_config("tacnn", load_params(path))
    assert config.epochs == 800 and config.track is False
    assert config.tracking_uri == "sqlite:///x.db"


def test_scale_steps():
    assert scale_steps([350, 430, 470], 500, 500) == [350, 430, 470]
    assert scale_steps([350, 430, 470], 500, 10) == [7, 9]
    assert scale_steps([650, 730, 770], 800, 1) == [1]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"dataa": {}}, "unknown section(s) ['dataa']; valid sections: ['benchmarks'"),
        ({"data": {"sorce": "ntu60"}}, "data.sorce: unknown key; valid keys: ['dataset',"),
        ({"data": {"source": "kinetics"}}, "data.source: 'kinetics' is not valid: Input should"),
        ({"data": {"source": "ntu120"}}, "is 'ntu60' but data.source is 'ntu120'"),
        ({"benchmarks": ["xset"]}, "unknown entry 'xset'; valid: ['xsub', 'xview']"),
        ({"models": ["hcn", "resnet"]}, "unknown entry 'resnet'"),
        ({"seeds": [0, 0]}, "seeds: [0, 0] is not valid: listed twice: [0]"),
        ({"seeds": [-1]}, "seeds.0: -1 is not valid"),
        ({"train": {"epoch": 3}}, "unknown training option 'epoch'; valid options: ["),
        ({"model": {"hcn": {"lrr": 1}}}, "model.hcn: unknown training option 'lrr'"),
        ({"model": {"gcn": {}}}, "unknown model 'gcn'"),
        ({"train": {"seed": 3}}, "train.seed: cannot be set here: seeds come from"),
        ({"synth": {"num_classes": "ten"}}, "synth.num_classes: 'ten' is not valid"),
        ({"synth": {"num_classes": 500}}, "synth.num_classes: 500 is not valid"),
        ({"tracking": {"enabled": "yes"}}, "tracking.enabled: 'yes' is not valid"),
        ({"recipe": "fast"}, "recipe: 'fast' is not valid: Input should be 'auto', 'paper'"),
    ],
)
def test_bad_params_name_the_key_and_the_valid_ones(data, message):
    with pytest.raises(ConfigError) as err:
        parse_params(data, "p.yaml")
    assert message in str(err.value)
    assert str(err.value).startswith("p.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('train: {lr: "0.1"}', "train.lr: '0.1' is not valid: Input should be a valid number"),
        (
            'train: {batch_size: "16"}',
            "train.batch_size: '16' is not valid: Input should be a valid",
        ),
        (
            "train: {lr_steps: abc}",
            "train.lr_steps: 'abc' is not valid: Input should be a valid list",
        ),
        ("train: {threads: -1}", "train.threads: -1 is not valid: Input should be greater than"),
        ("train: {device: gpu}", "train.device: 'gpu' is not valid"),
        ("train: {lr: .inf}", "train.lr: inf is not valid: Input should be a finite number"),
        ("model: {hcn: {weight_decay: .nan}}", "model.hcn.weight_decay: nan is not valid"),
        ("quick: {hcn: {epochs: 0}}", "quick.hcn.epochs: 0 is not valid"),
        ("train: {optimizer: rmsprop}", "train.optimizer: 'rmsprop' is not valid"),
        ("evaluate: {batch_size: 0}", "evaluate.batch_size: 0 is not valid"),
    ],
)
def test_values_are_type_checked_in_one_line(tmp_path, text, message):
    assert message in _error(tmp_path, text)


def test_yaml11_exponent_floats_are_numbers(tmp_path):
    """PyYAML reads `1e-4` as a string (YAML 1.1); here it is the number it looks like."""
    assert yaml.safe_load("x: 1e-4")["x"] == "1e-4"  # the trap
    params = load_params(_write(tmp_path, "train: {weight_decay: 1e-4, lr: 3E-3}\n"))
    config = train_config("hcn", params)
    assert config.weight_decay == 1e-4 and isinstance(config.weight_decay, float)
    assert config.lr == 3e-3 and isinstance(config.to_dict()["lr"], float)


def test_duplicate_keys_and_sections_name_the_line(tmp_path):
    text = "train:\n  lr: 0.1\nseeds: [0]\ntrain:\n  epochs: 3\n"
    assert "params.yaml:4: not valid YAML: duplicate key 'train' (first on line 1)" in _error(
        tmp_path, text
    )
    text = "model:\n  hcn:\n    lr: 0.1\n    lr: 0.2\n"
    assert "params.yaml:4: not valid YAML: duplicate key 'lr' (first on line 3)" in _error(
        tmp_path, text
    )


def test_empty_params_file_is_an_error(tmp_path):
    assert "params.yaml: the file is empty" in _error(tmp_path, "")
    assert "params.yaml: the file is empty" in _error(tmp_path, "# only a comment\n")


def test_model_options_are_type_checked(tmp_path):
    message = _error(tmp_path, "model: {hcn: {model_options: {dropout: abc}}}")
    assert "model.hcn.model_options.dropout: 'abc' is not valid: expected a finite number" in (
        message
    )
    with pytest.raises(ConfigError, match=r"command line.model_options.dropout: 'abc'"):
        train_config("hcn", None, model_options={"dropout": "abc"})
    with pytest.raises(ConfigError, match="unknown option 'dropot' for model 'hcn'"):
        train_config("hcn", None, model_options={"dropot": 0.1})
    assert train_config("hcn", None, model_options={"dropout": 0.25}).model_options == {
        "dropout": 0.25
    }


def test_command_line_values_are_checked_too():
    with pytest.raises(ConfigError, match=r"training settings.threads: -1 is not valid"):
        train_config("hcn", None, threads=-1)
    with pytest.raises(ConfigError, match=r"unknown model 'vit'"):
        train_config("vit", None)


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="no such params file"):
        load_params(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: not valid YAML"):
        load_params(bad)


def test_each_stage_default_lives_in_one_place(tmp_path):
    """Without params.yaml the stage options are the settings models' defaults."""
    assert synth_options(None)["num_classes"] == SynthParams().num_classes == 10
    assert evaluate_options(None)["batch_size"] == EvaluateParams().batch_size == 128
    params = parse_params({"evaluate": {"batch_size": 32}, "synth": {"num_classes": 4}})
    assert evaluate_options(params)["batch_size"] == 32
    assert evaluate_options(params, batch_size=8)["batch_size"] == 8
    assert synth_options(params, seed=5)["num_classes"] == 4
    with pytest.raises(ConfigError, match=r"command line.num_classes: 500 is not valid"):
        synth_options(None, num_classes=500)
    pre = preprocess_options(params)
    assert (str(pre["raw_dir"]), str(pre["out_dir"]), pre["workers"]) == (
        "data/synth", "data/prepared", None)  # fmt: skip
    with pytest.raises(ConfigError, match="--raw-dir is required"):
        preprocess_options(None, out_dir=tmp_path)


def test_report_out_dir_takes_effect():
    params = parse_params({"report": {"out_dir": "elsewhere"}, "models": ["hcn"]})
    options = report_options(params)
    assert str(options["out_dir"]) == "elsewhere" and options["models"] == ("hcn",)
    assert str(report_options(params, out_dir=Path("cli"))["out_dir"]) == "cli"


def test_layout_helper_and_experiment_names():
    params = parse_params(
        {"data": {"source": "ntu120", "dataset": "ntu120"}, "benchmarks": ["xsub", "xset"]}
    )
    assert params.mode == "paper" and params.benchmarks == ("xsub", "xset")
    assert experiment_name(params, "xset") == "skelact/ntu120-xset"
    assert stage_dir("runs", "xsub", "hcn", "joint", 3) == Path("runs/xsub/hcn/joint/seed3")
    assert stage_dir("eval", "xsub", "hcn", "bone", 3, root="/p") == Path(
        "/p/eval/xsub/hcn/bone/seed3"
    )


def test_train_config_round_trips_and_rejects_unknown_keys():
    config = train_config("tscnn", None, epochs=3)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown training option.*bogus"):
        TrainConfig.from_dict({"bogus": 1})


def test_import_does_not_load_torch():
    code = "import sys, skelact.config; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["False"], done.stderr


# ------------------------------------------------------------------ custom data and import


CUSTOM = {"source": "custom", "format": "openpose", "layout": "coco17", "labels": "labels.csv",
          "raw_dir": "data/openpose"}  # fmt: skip


def test_custom_source_is_quick_and_counts_classes_from_the_import(tmp_path):
    params = parse_params({"data": CUSTOM, "benchmarks": ["custom"],
                           "quick": {"common": {"epochs": 3}}})  # fmt: skip
    assert params.mode == "quick" and params.num_classes is None
    config = train_config("hcn", params, "custom")
    assert config.epochs == 3 and config.num_classes is None  # train reads classes.txt
    assert config.experiment == "skelact/custom-custom"
    assert parse_params({"data": CUSTOM, "benchmarks": ["custom"], "recipe": "paper"}).mode == (
        "paper"
    )
    npz = parse_params({"data": {"source": "custom", "format": "npz"}, "benchmarks": "custom"})
    assert npz.data.layout == "ntu25" and npz.data.labels_file is None  # npz carries its labels
    unlabelled = parse_params({"data": {**CUSTOM, "labels": None}, "benchmarks": ["custom"]})
    assert unlabelled.data.labels_file == "data/openpose/labels.csv"  # where synth writes it
    assert import_options(unlabelled)["labels"] == Path("data/openpose/labels.csv")
    with pytest.raises(ConfigError, match=r"^--from is required \(or --params"):
        import_options(parse_params({}), src="x", layout="coco17", out_dir=tmp_path)


def test_import_options_come_from_data_and_the_import_section(tmp_path):
    params = parse_params({"data": CUSTOM, "benchmarks": ["custom"],
                           "import": {"split_by": "split", "on_error": "skip"}})  # fmt: skip
    options = import_options(params, seed=4)
    assert options == {
        "fmt": "openpose", "src": Path("data/openpose"), "layout": "coco17",
        "labels": Path("labels.csv"), "out_dir": Path("data/prepared"), "split_by": "split",
        "val_fraction": 0.2, "seed": 4, "on_error": "skip", "normalise": "body",
        "num_persons": 2,
    }  # fmt: skip
    assert import_options(params, layout="my_rig.yaml", fmt="csv")["layout"] == "my_rig.yaml"
    given = import_options(None, fmt="npz", src="x.npz", layout="ntu25", out_dir=tmp_path)
    assert given["labels"] is None and given["val_fraction"] == 0.2
    with pytest.raises(ConfigError, match=r"^--from is required"):
        import_options(None, src="x", layout="coco17", out_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"^--from: 'json' is not one of \['openpose'"):
        import_options(None, fmt="json", src="x", layout="coco17", out_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"^--labels is required for --from csv"):
        import_options(None, fmt="csv", src="x", layout="coco17", out_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"^command line.val_fraction: 0 is not valid"):
        import_options(params, val_fraction=0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"data": {"source": "custom"}, "benchmarks": ["custom"]},
         "data: data.source is 'custom': set data.format to the files' format (openpose | pyskl"),
        ({"data": {**CUSTOM, "format": "json"}, "benchmarks": ["custom"]},
         "data.format: 'json' is not valid"),
        ({"data": {**CUSTOM, "layout": "coco"}, "benchmarks": ["custom"]},
         "data.layout 'coco' is neither a built-in layout (ntu25, coco17, openpose25, mediapipe"),
        ({"data": CUSTOM}, "benchmarks: unknown entry 'xsub'; valid: ['custom']"),
        ({"data": {"source": "ntu60", "format": "npz", "labels": "l.csv"}},
         "data.format, data.labels set, but data.source is 'ntu60': format, layout and labels "
         "describe custom data (data.source: custom); leave them unset"),
        ({"data": {"layout": "coco17"}}, "data.layout set, but data.source is 'synthetic'"),
        ({"import": {"val_fraction": 1.0}}, "import.val_fraction: 1.0 is not valid"),
        ({"import": {"on_error": "ignore"}}, "import.on_error: 'ignore' is not valid"),
        ({"import": {"normalise": "pixels"}}, "import.normalise: 'pixels' is not valid"),
        ({"import": {"num_persons": 0}}, "import.num_persons: 0 is not valid"),
        ({"import": {"splitby": "x"}}, "import.splitby: unknown key; valid keys: ['normalise', "
         "'num_persons', 'on_error', 'seed', 'split_by', 'val_fraction']"),
        ({"train": {"scale_range": [1.1, 0.9]}}, "scale_range [1.1, 0.9] is not a [lo, hi] pair"),
        ({"train": {"scale_range": [0.9, 1.0, 1.1]}}, "is not a [lo, hi] pair with lo <= hi"),
        ({"train": {"scale_range": [0.0, 1.1]}}, "train.scale_range.0: 0.0 is not valid"),
        ({"train": {"with_score": "yes"}}, "train.with_score: 'yes' is not valid"),
    ],
)  # fmt: skip
def test_bad_custom_and_import_settings_name_the_key(data, message):
    with pytest.raises(ConfigError) as err:
        parse_params(data, "p.yaml")
    assert message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_a_custom_layout_file_reaches_training_only_through_data_layout():
    params = parse_params({"data": {**CUSTOM, "layout": "layouts/rig.yaml"},
                           "benchmarks": ["custom"]})  # fmt: skip
    assert train_config("hcn", params, "custom").layout_file == "layouts/rig.yaml"
    assert train_config("hcn", parse_params({"data": CUSTOM, "benchmarks": ["custom"]}),
                        "custom").layout_file is None  # coco17 is built in  # fmt: skip
    with pytest.raises(ConfigError, match="train.layout_file: cannot be set here: the layout file "
                       "comes from `data.layout`"):  # fmt: skip
        parse_params({"train": {"layout_file": "rig.yaml"}})


def test_score_and_scale_options_reach_the_training_config():
    params = parse_params({"data": CUSTOM, "benchmarks": ["custom"],
                           "train": {"with_score": True, "scale_range": [0.9, 1.1]}})  # fmt: skip
    config = train_config("dgcn", params, "custom")
    assert config.with_score is True and config.scale_range == [0.9, 1.1]
    default = train_config("dgcn", parse_params({"data": {"source": "ntu60"}}), "xsub")
    assert default.with_score is False and default.scale_range is None  # NTU runs unchanged
