"""``params.yaml`` -> typed, validated settings: the one place that knows the file's layout.

Why one module: DVC decides what to rerun from the *values* in ``params.yaml``, and every stage
reads some of them. If each stage parsed the file on its own, a renamed key would silently fall
back to a default in one stage and not another. Here every section and key is known; an unknown
key is an error that names it and lists the valid ones (typos must not pass silently).

The training recipe a run gets is resolved in this order (later wins):

1. the model's reference recipe (``skelact.engine.recipes``; filled in by the engine for every
   field left unset),
2. the recipe *mode*: ``paper`` leaves the reference epochs and schedule alone; ``quick`` (the
   default for the synthetic source) applies ``quick.common`` and then ``quick.<name>`` (few
   epochs, a smaller batch) and scales the LR steps to them; these never touch an NTU run,
3. ``train:`` (common to all models),
4. ``model.<name>:`` (that model only; DVC tracks these per model, so changing one model's value
   reruns only that model's stages).

When the epochs change (steps 2-4) and no ``lr_steps`` are given, the reference LR steps are
scaled proportionally, so a shortened run keeps the shape of the reference schedule.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from skelact.data import ntu
from skelact.models import MODEL_NAMES

__all__ = [
    "ConfigError",
    "Params",
    "DataParams",
    "SynthParams",
    "PreprocessParams",
    "EvaluateParams",
    "TrackingParams",
    "ReportParams",
    "SOURCES",
    "MODEL_NAMES",
    "load_params",
    "parse_params",
    "load_train_overrides",
    "train_overrides",
    "recipe_mode",
    "experiment_name",
    "scale_steps",
]

SOURCES = ("synthetic", "ntu60", "ntu120")
# The single sources of these names are the NTU facts module and the model registry.
DATASETS = tuple(ntu.DATASETS)
BENCHMARKS = {name: spec.benchmarks for name, spec in ntu.DATASETS.items()}
RECIPE_MODES = ("auto", "paper", "quick")

# TrainConfig fields the pipeline sets itself from the matrix and the data paths: a value in
# params.yaml would contradict the stage command, so it is rejected with an explanation.
_PIPELINE_OWNED = {
    "model": "the model comes from the `models` list (one train stage per model)",
    "seed": "seeds come from the `seeds` list",
    "train_path": "data paths come from `data.prepared_dir` and the benchmark",
    "val_path": "data paths come from `data.prepared_dir` and the benchmark",
    "out_dir": "output folders are fixed by dvc.yaml (runs/<benchmark>/<model>/seed<N>)",
    "resume": "use `skelact train --resume` by hand, not in the pipeline",
    "stop_after_epoch": "a pipeline stage must run to the end",
}


class ConfigError(ValueError):
    """``params.yaml`` is missing, malformed, or holds an unknown/invalid value."""


# --------------------------------------------------------------------------------------------
# Typed sections
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataParams:
    """Where the data comes from and where prepared pickles go."""

    source: str = "synthetic"  # synthetic | ntu60 | ntu120
    dataset: str = "ntu60"  # naming/split rules preprocess applies; must equal an NTU source
    raw_dir: str = "data/synth"  # folder of .skeleton files (synth's output for synthetic)
    prepared_dir: str = "data/prepared"  # preprocess output: <prepared_dir>/<benchmark>/*.pkl


@dataclass(frozen=True)
class SynthParams:
    """Size of the synthetic data set (``skelact synth``)."""

    num_classes: int = 10
    samples_per_class: int = 30
    seed: int = 0
    frames_min: int = 40
    frames_max: int = 100
    noise: float = 0.004


@dataclass(frozen=True)
class PreprocessParams:
    """Options of ``skelact preprocess``."""

    workers: int = 0  # 0 = all cores
    on_error: str = "fail"  # fail | skip


@dataclass(frozen=True)
class EvaluateParams:
    """Options of ``skelact test`` in the evaluate stage."""

    batch_size: int = 128


@dataclass(frozen=True)
class TrackingParams:
    """MLflow: on/off, where (env ``MLFLOW_TRACKING_URI`` wins), experiment name prefix."""

    enabled: bool = True
    uri: str | None = None  # None: env MLFLOW_TRACKING_URI, else sqlite:///<project>/mlflow.db
    experiment_prefix: str = "skelact"


@dataclass(frozen=True)
class ReportParams:
    """Where ``skelact report`` writes."""

    out_dir: str = "reports"


@dataclass(frozen=True)
class Params:
    """The whole ``params.yaml``, validated."""

    data: DataParams = field(default_factory=DataParams)
    synth: SynthParams = field(default_factory=SynthParams)
    preprocess: PreprocessParams = field(default_factory=PreprocessParams)
    benchmarks: tuple[str, ...] = ("xsub",)
    models: tuple[str, ...] = MODEL_NAMES
    seeds: tuple[int, ...] = (0,)
    recipe: str = "auto"  # auto | paper | quick
    # {"common": {...}, "<model>": {...}}: used only in the quick recipe mode
    quick: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    model: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    tracking: TrackingParams = field(default_factory=TrackingParams)
    report: ReportParams = field(default_factory=ReportParams)
    path: str = "params.yaml"

    @property
    def mode(self) -> str:
        """The recipe mode in effect: ``paper`` or ``quick``."""
        return recipe_mode(self)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"{where}: {message}")


def _section(raw: Mapping[str, Any], cls: type, where: str) -> Any:
    """Build a frozen dataclass from a mapping; unknown keys and wrong types are errors."""
    if raw is None:
        return cls()
    if not isinstance(raw, Mapping):
        raise _fail(where, f"must be a mapping, not {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise _fail(where, f"unknown key(s) {unknown}; valid keys: {sorted(fields)}")
    values = {}
    defaults = cls()
    for key, value in raw.items():
        default = getattr(defaults, key)
        values[key] = _coerce(value, default, f"{where}.{key}")
    return cls(**values)


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Check ``value`` against the type of the default (None allowed where the default is None)."""
    if default is None:
        return None if value is None else str(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise _fail(where, f"must be true or false, not {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, f"must be an integer, not {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(where, f"must be a number, not {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str) or not value:
            raise _fail(where, f"must be a non-empty string, not {value!r}")
        return value
    return value


def _str_list(value: Any, where: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _fail(where, f"must be a non-empty list, not {value!r}")
    out = []
    for item in value:
        if not isinstance(item, str):
            raise _fail(where, f"entries must be strings, not {item!r}")
        if allowed is not None and item not in allowed:
            raise _fail(where, f"unknown entry {item!r}; valid: {list(allowed)}")
        if item in out:
            raise _fail(where, f"{item!r} is listed twice")
        out.append(item)
    return tuple(out)


def _train_fields() -> dict[str, Any]:
    """TrainConfig fields by name (the engine owns the list; this module validates against it)."""
    from skelact.engine.recipes import TrainConfig

    return {f.name: f for f in dataclasses.fields(TrainConfig)}


def _check_train_keys(values: Any, where: str) -> dict[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise _fail(where, f"must be a mapping of training options, not {type(values).__name__}")
    fields = _train_fields()
    valid = sorted(k for k in fields if k not in _PIPELINE_OWNED)
    for key in values:
        if key in _PIPELINE_OWNED:
            raise _fail(f"{where}.{key}", f"cannot be set here: {_PIPELINE_OWNED[key]}")
        if key not in fields:
            raise _fail(where, f"unknown training option {key!r}; valid options: {valid}")
    return dict(values)


def _parse_quick(values: Any, where: str) -> dict[str, dict[str, Any]]:
    """``quick: {common: {...}, <model>: {...}}``; split per model so DVC can track each part."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise _fail(where, "must map 'common' and model names to training options")
    valid = ["common", *MODEL_NAMES]
    for key in values:
        if key not in valid:
            raise _fail(where, f"unknown key {key!r}; valid keys: {valid}")
    return {key: _check_train_keys(opts, f"{where}.{key}") for key, opts in values.items()}


_TOP_KEYS = (
    "data",
    "synth",
    "preprocess",
    "benchmarks",
    "models",
    "seeds",
    "recipe",
    "quick",
    "train",
    "model",
    "evaluate",
    "tracking",
    "report",
)


def parse_params(raw: Any, path: str = "params.yaml") -> Params:
    """Validate the parsed YAML of ``params.yaml`` (see the module docstring for the layout)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise _fail(path, "the top level must be a mapping of sections")
    unknown = sorted(set(raw) - set(_TOP_KEYS))
    if unknown:
        raise _fail(path, f"unknown section(s) {unknown}; valid sections: {sorted(_TOP_KEYS)}")

    data = _section(raw.get("data"), DataParams, f"{path}: data")
    if data.source not in SOURCES:
        raise _fail(f"{path}: data.source", f"{data.source!r} is not one of {list(SOURCES)}")
    if data.dataset not in DATASETS:
        raise _fail(f"{path}: data.dataset", f"{data.dataset!r} is not one of {list(DATASETS)}")
    if data.source != "synthetic" and data.dataset != data.source:
        raise _fail(
            f"{path}: data.dataset",
            f"is {data.dataset!r} but data.source is {data.source!r}; they must agree for NTU data "
            f"(e.g. `-S data.source=ntu120 -S data.dataset=ntu120`)",
        )
    if data.source == "synthetic" and data.dataset != "ntu60":
        raise _fail(f"{path}: data.dataset", "synthetic data follows ntu60 naming; set it to ntu60")

    benchmarks = _str_list(
        raw.get("benchmarks", ["xsub"]), f"{path}: benchmarks", BENCHMARKS[data.dataset]
    )
    models = _str_list(raw.get("models", list(MODEL_NAMES)), f"{path}: models", MODEL_NAMES)
    seeds_raw = raw.get("seeds", [0])
    if isinstance(seeds_raw, int) and not isinstance(seeds_raw, bool):
        seeds_raw = [seeds_raw]
    if (
        not isinstance(seeds_raw, list)
        or not seeds_raw
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds_raw)
        or len(set(seeds_raw)) != len(seeds_raw)
    ):
        raise _fail(
            f"{path}: seeds", f"must be a list of distinct integers >= 0, not {seeds_raw!r}"
        )

    recipe = raw.get("recipe", "auto")
    if recipe not in RECIPE_MODES:
        raise _fail(f"{path}: recipe", f"{recipe!r} is not one of {list(RECIPE_MODES)}")

    model_section = raw.get("model") or {}
    if not isinstance(model_section, Mapping):
        raise _fail(f"{path}: model", "must map model names to training options")
    for name in model_section:
        if name not in MODEL_NAMES:
            raise _fail(f"{path}: model", f"unknown model {name!r}; valid: {list(MODEL_NAMES)}")
    per_model = {
        name: _check_train_keys(values, f"{path}: model.{name}")
        for name, values in model_section.items()
    }

    params = Params(
        data=data,
        synth=_section(raw.get("synth"), SynthParams, f"{path}: synth"),
        preprocess=_section(raw.get("preprocess"), PreprocessParams, f"{path}: preprocess"),
        benchmarks=benchmarks,
        models=models,
        seeds=tuple(seeds_raw),
        recipe=recipe,
        quick=_parse_quick(raw.get("quick"), f"{path}: quick"),
        train=_check_train_keys(raw.get("train"), f"{path}: train"),
        model=per_model,
        evaluate=_section(raw.get("evaluate"), EvaluateParams, f"{path}: evaluate"),
        tracking=_section(raw.get("tracking"), TrackingParams, f"{path}: tracking"),
        report=_section(raw.get("report"), ReportParams, f"{path}: report"),
        path=path,
    )
    if params.preprocess.on_error not in ("fail", "skip"):
        raise _fail(f"{path}: preprocess.on_error", "must be 'fail' or 'skip'")
    if params.synth.num_classes < 2 or params.synth.samples_per_class < 2:
        raise _fail(f"{path}: synth", "num_classes and samples_per_class must be >= 2")
    return params


def load_params(path: str | os.PathLike[str] = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; errors name the file and the offending key."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such params file") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    return parse_params(raw, str(p))


# --------------------------------------------------------------------------------------------
# Training overrides
# --------------------------------------------------------------------------------------------


def recipe_mode(params: Params) -> str:
    """``paper`` for NTU data (the reference schedules), ``quick`` for synthetic, unless forced."""
    if params.recipe != "auto":
        return params.recipe
    return "quick" if params.data.source == "synthetic" else "paper"


def scale_steps(steps: list[int], from_epochs: int, to_epochs: int) -> list[int]:
    """Scale LR milestones to a different number of epochs, keeping them inside (0, to_epochs].

    Rounded, de-duplicated and strictly increasing; with very few epochs some milestones merge.
    """
    if to_epochs == from_epochs:
        return list(steps)
    out: list[int] = []
    for step in steps:
        scaled = max(1, min(to_epochs, round(step * to_epochs / from_epochs)))
        if not out or scaled > out[-1]:
            out.append(scaled)
    return out


def experiment_name(params: Params, benchmark: str) -> str:
    """One MLflow experiment per data source and benchmark, e.g. ``skelact/ntu60-xsub``."""
    return f"{params.tracking.experiment_prefix}/{params.data.source}-{benchmark}"


def train_overrides(params: Params, model: str, benchmark: str | None = None) -> dict[str, Any]:
    """TrainConfig overrides for ``model`` (keys are TrainConfig field names)."""
    if model not in MODEL_NAMES:
        raise ConfigError(f"{params.path}: unknown model {model!r}; valid: {list(MODEL_NAMES)}")
    from skelact.engine.recipes import recipe_for

    reference = recipe_for(model)
    mode = recipe_mode(params)
    out: dict[str, Any] = {}
    if mode == "quick":
        out.update(params.quick.get("common", {}))
        out.update(params.quick.get(model, {}))
    out.update(params.train)
    out.update(params.model.get(model, {}))
    epochs = out.get("epochs")
    if epochs is not None and "lr_steps" not in out:
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ConfigError(f"{params.path}: epochs for {model} must be an integer >= 1")
        out["lr_steps"] = scale_steps(reference["lr_steps"], reference["epochs"], epochs)
    if epochs is not None and "val_interval" not in out:
        # Validate at least 10 times over a shortened run (and at the last epoch, always).
        out["val_interval"] = max(1, min(reference["val_interval"], epochs // 10 or 1))
    out["track"] = bool(out.get("track", params.tracking.enabled))
    if params.tracking.uri:
        out.setdefault("tracking_uri", params.tracking.uri)
    if benchmark is not None:
        out.setdefault("experiment", experiment_name(params, benchmark))
        out.setdefault("benchmark", benchmark)
    return out


def load_train_overrides(
    params_path: str | os.PathLike[str], model: str, benchmark: str | None = None
) -> dict[str, Any]:
    """``params.yaml`` -> overrides for one model's TrainConfig (the engine applies CLI on top).

    ``benchmark`` (optional) adds the MLflow experiment name for that data source and benchmark.
    """
    return train_overrides(load_params(params_path), model, benchmark)


# --------------------------------------------------------------------------------------------
# Folder layout shared by dvc.yaml, the report and the tests
# --------------------------------------------------------------------------------------------

RUNS_DIR = "runs"  # training outputs: runs/<benchmark>/<model>/seed<N>/
EVAL_DIR = "eval"  # evaluation outputs: eval/<benchmark>/<model>/seed<N>/


def run_dir(model: str, benchmark: str, seed: int, root: str | os.PathLike[str] = ".") -> Path:
    """Where the train stage of (model, benchmark, seed) writes its checkpoints and logs."""
    return Path(root) / RUNS_DIR / benchmark / model / f"seed{seed}"


def eval_dir(model: str, benchmark: str, seed: int, root: str | os.PathLike[str] = ".") -> Path:
    """Where the evaluate stage of (model, benchmark, seed) writes metrics.json and friends."""
    return Path(root) / EVAL_DIR / benchmark / model / f"seed{seed}"
