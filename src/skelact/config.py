"""``params.yaml`` -> typed, validated settings for every stage, and the one training merge.

Why one module: DVC decides what to rerun from the *values* in ``params.yaml``, and every stage
reads some of them. Here every section and key is a pydantic model field with its type, range
and (single) default; a wrong key or value is a :class:`ConfigError` of one line naming the key,
the value and what is expected. The YAML is read with a loader that refuses duplicate keys and
reads ``1e-4`` as the number it looks like (PyYAML's YAML 1.1 rules make it a string).

A training run's settings are merged in exactly one place, :func:`train_config`, in this order
(later wins):

1. the model's reference recipe (``skelact.engine.recipes``),
2. ``quick.common`` and ``quick.<model>``, only in the ``quick`` recipe mode (the default for
   the synthetic and custom sources; an NTU run never sees them),
3. ``train:`` (common to all models),
4. ``model.<model>:`` (that model only; DVC tracks these per model),
5. the command line.

When a params.yaml layer changes ``epochs`` and none sets ``lr_steps`` (or ``val_interval``), the
reference steps are scaled to the new length (and validation happens about ten times): a
shortened run keeps the shape of the reference schedule. Command-line values apply as given.
Importing this module does not import torch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from skelact import yamlfile
from skelact.data import ntu
from skelact.data.streams import check_stream
from skelact.engine.recipes import RECIPES, REFERENCE_BATCH_SIZE, recipe_for
from skelact.errors import SkelactError, bounded

__all__ = [
    "ConfigError",
    "Params",
    "DataParams",
    "ImportParams",
    "SynthParams",
    "PreprocessParams",
    "EvaluateParams",
    "TrackingParams",
    "ReportParams",
    "FuseParams",
    "TrainConfig",
    "DATASET_SOURCES",
    "SOURCES",
    "MODEL_NAMES",
    "RUNS_DIR",
    "item_dir",
    "fused_dir",
    "FUSED_DIR",
    "EVAL_DIR",
    "import_options",
    "fuse_plan",
    "load_params",
    "parse_params",
    "read_yaml",
    "recipe_mode",
    "experiment_name",
    "scale_steps",
    "stage_dir",
    "synth_format",
    "train_config",
    "apply_overrides",
    "resolve_config",
]

SOURCES = ("synthetic", "ntu60", "ntu120", "custom", "kinetics", "nwucla")
NTU_SOURCES = ("ntu60", "ntu120")
#: The one benchmark of custom data: ``skelact import`` writes <prepared_dir>/custom/*.pkl.
CUSTOM_BENCHMARK = "custom"
#: Public data sets read by ``skelact import`` (docs/datasets-and-estimators.md): per
#: ``data.source``, its reader (data.format), layout, coordinate count and the one benchmark the
#: import writes (<prepared_dir>/<benchmark>/*.pkl): Kinetics' train/val, NW-UCLA's cross-view.
DATASET_SOURCES: dict[str, tuple[str, str, int, str]] = {
    "kinetics": ("kinetics", "openpose_coco18", 2, "kinetics"),
    "nwucla": ("nwucla", "kinect_v1_20", 3, "nwucla_xview"),
}
#: Sources whose preprocess stage is ``skelact import``.
IMPORT_SOURCES = ("custom", *DATASET_SOURCES)
#: ``data.format`` values: the outside formats ``skelact import`` reads (data.formats.FORMATS).
IMPORT_FORMATS = ("openpose", "pyskl", "npz", "csv", "mmpose", "yolo", "alphapose", "kinetics",
                  "nwucla")  # fmt: skip
#: Formats whose files carry no labels: a labels CSV names each clip's class (and split).
LABELLESS_FORMATS = ("openpose", "csv", "mmpose", "yolo", "alphapose")
# Trainable models are those with a reference recipe (the model registry imports torch).
MODEL_NAMES: tuple[str, ...] = tuple(RECIPES)
RECIPE_MODES = ("auto", "paper", "quick")

# TrainConfig fields the pipeline sets itself from the matrix and the data paths: a value in
# params.yaml would contradict the stage command, so it is rejected with an explanation.
_PIPELINE_OWNED = {
    "model": "the model comes from the `models` list (one train stage per model)",
    "seed": "seeds come from the `seeds` list",
    "train_path": "data paths come from `data.prepared_dir` and the benchmark",
    "val_path": "data paths come from `data.prepared_dir` and the benchmark",
    "out_dir": "output folders are fixed by dvc.yaml (runs/<benchmark>/<model>/<stream>/seed<N>)",
    "stream": "streams come from the `streams` list",
    "resume": "use `skelact train --resume` by hand, not in the pipeline",
    "stop_after_epoch": "a pipeline stage must run to the end",
    "quiet": "the stage command sets it",
    "layout_file": "the layout file comes from `data.layout`",
}


class ConfigError(SkelactError, ValueError):
    """``params.yaml`` or an option is missing, malformed, or holds an unknown/invalid value."""


# --------------------------------------------------------------------------------------------
# Typed settings
# --------------------------------------------------------------------------------------------


class Settings(BaseModel):
    """Base of every settings model: unknown keys, wrong types and inf/NaN are errors."""

    model_config = ConfigDict(
        extra="forbid", strict=True, allow_inf_nan=False, protected_namespaces=()
    )


PositiveInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(gt=0, le=1)]
NonNegFloat = Annotated[float, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Device = Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?)$")]
Name = Annotated[str, Field(min_length=1)]


class DataParams(Settings):
    """Where the data comes from and where prepared pickles go.

    ``custom``: the user's own data in an outside ``format``, read from ``raw_dir`` (a folder
    for openpose / csv, a file for npz / pyskl) by ``skelact import``, with joints in ``layout``
    (a built-in name or a layout YAML file) and, for the formats without labels, a ``labels``
    CSV (``clip,label[,split]``; default ``<raw_dir>/labels.csv``). These three keys describe
    custom data only: for the other sources they must stay unset (``layout`` at ``ntu25``), so a
    leftover value cannot look as if it applied. ``skelact synth`` with ``data.source: custom``
    writes its synthetic clips in ``format`` and ``layout`` (the no-data-needed demo).
    """

    source: Literal["synthetic", "ntu60", "ntu120", "custom", "kinetics", "nwucla"] = "synthetic"
    # naming/split rules preprocess applies; kinetics / nwucla: the source's own (or left ntu60)
    dataset: Literal["ntu60", "ntu120", "kinetics", "nwucla"] = "ntu60"
    raw_dir: Name = "data/synth"  # folder of .skeleton files (synth's output for synthetic)
    prepared_dir: Name = "data/prepared"  # preprocess output: <prepared_dir>/<benchmark>/*.pkl
    format: Literal["openpose", "pyskl", "npz", "csv", "mmpose", "yolo", "alphapose"] | None = (
        None  # custom only
    )
    layout: Name = "ntu25"  # custom only: built-in layout name or layout .yaml path
    labels: Name | None = None  # custom only: clip,label[,split] CSV (openpose, csv)

    @model_validator(mode="after")
    def _dataset_matches_source(self) -> DataParams:
        if self.source in NTU_SOURCES and self.dataset != self.source:
            raise ValueError(
                f"data.dataset is {self.dataset!r} but data.source is {self.source!r}; they must "
                f"agree for NTU data (e.g. `-S data.source=ntu120 -S data.dataset=ntu120`)"
            )
        if self.source == "synthetic" and self.dataset != "ntu60":
            raise ValueError("synthetic data follows ntu60 naming; set data.dataset to ntu60")
        if self.source in DATASET_SOURCES and self.dataset not in (self.source, "ntu60"):
            raise ValueError(
                f"data.dataset is {self.dataset!r} but data.source is {self.source!r}: leave "
                "data.dataset unset or give the same data set"
            )
        if self.source not in DATASET_SOURCES and self.dataset in DATASET_SOURCES:
            raise ValueError(
                f"data.dataset {self.dataset!r} is a data source: set data.source to it"
            )
        return self

    @model_validator(mode="after")
    def _custom_keys(self) -> DataParams:
        if self.source != "custom":
            stray = [k for k in ("format", "labels") if getattr(self, k) is not None]
            stray += ["layout"] if self.layout != "ntu25" else []
            if stray:
                names = ", ".join(f"data.{k}" for k in stray)
                raise ValueError(
                    f"{names} set, but data.source is {self.source!r}: format, layout and labels "
                    "describe custom data (data.source: custom); leave them unset"
                )
            return self
        if self.format is None:
            raise ValueError(
                f"data.source is 'custom': set data.format to the files' format "
                f"({' | '.join(IMPORT_FORMATS)})"
            )
        from skelact.layouts import BUILTIN_LAYOUTS  # only for custom data: NTU stages skip it

        if self.layout not in BUILTIN_LAYOUTS and not self.layout.endswith((".yaml", ".yml")):
            raise ValueError(
                f"data.layout {self.layout!r} is neither a built-in layout "
                f"({', '.join(BUILTIN_LAYOUTS)}) nor a layout .yaml file"
            )
        return self

    @property
    def labels_file(self) -> str | None:
        """The labels CSV of custom data in a format without labels: ``labels``, by default
        ``labels.csv`` in ``raw_dir`` (where ``skelact synth`` writes it); None otherwise."""
        if self.format not in LABELLESS_FORMATS:
            return self.labels
        return self.labels if self.labels is not None else f"{self.raw_dir}/labels.csv"


class ImportParams(Settings):
    """Options of ``skelact import`` (the import stage of ``data.source: custom``).

    The split: by the labels CSV's column ``split_by`` (values train / val) when set, else a
    random ``val_fraction`` of each class (drawn with ``seed``) goes to val; sources that carry
    their own split (npz, pyskl) keep it. ``normalise``: ``body`` centres on the layout's centre
    joint and scales by the body's size; ``image`` maps 2-D pixels through ``img_shape``.
    """

    split_by: Name | None = None
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    seed: NonNegInt = 0
    on_error: Literal["fail", "skip"] = "fail"  # skip: drop bad clips, listed in the report
    normalise: Literal["body", "image"] = "body"
    num_persons: PositiveInt = 2  # persons kept per clip (the most active)
    img_shape: Annotated[str, Field(pattern=r"^\d+x\d+$")] | None = None  # frame HxW (yolo)


class SynthParams(Settings):
    """Size and look of the synthetic data set (``skelact synth``)."""

    num_classes: Annotated[int, Field(ge=2, le=120)] = 10
    samples_per_class: Annotated[int, Field(ge=2)] = 30
    seed: NonNegInt = 0
    frames_min: PositiveInt = 40
    frames_max: PositiveInt = 100
    noise: NonNegFloat = 0.004  # std of the Gaussian joint noise, metres
    workers: NonNegInt = 1  # processes; 0 = all cores

    @model_validator(mode="after")
    def _frames_ordered(self) -> SynthParams:
        if self.frames_min > self.frames_max:
            raise ValueError(f"frames_min {self.frames_min} > frames_max {self.frames_max}")
        return self


class PreprocessParams(Settings):
    """Options of ``skelact preprocess``."""

    workers: NonNegInt = 0  # 0 = all cores
    on_error: Literal["fail", "skip"] = "fail"
    format: Literal["mmaction", "pyskl", "npz"] = "mmaction"


class EvaluateParams(Settings):
    """Options of ``skelact test`` in the evaluate stage."""

    batch_size: PositiveInt = 128
    device: Device = "auto"


class TrackingParams(Settings):
    """MLflow: on/off, where (env ``MLFLOW_TRACKING_URI`` wins), experiment name prefix."""

    enabled: bool = True
    uri: Name | None = None  # None: env MLFLOW_TRACKING_URI, else sqlite:///<project>/mlflow.db
    experiment_prefix: Name = "skelact"


class FuseParams(Settings):
    """``fuse:``: how the streams' class scores of one model are combined.

    The fused score is ``sum_s weights[s] * scores_s`` over the streams trained (``streams``),
    on the raw scores (logits, CTR-GCN's ``ensemble.py``) or, with ``softmax``, on each stream's
    class probabilities (MMAction2's option). The default weights are CTR-GCN's 0.6 / 0.6 / 0.4 /
    0.4; PYSKL and MMAction2 report 2 : 2 : 1 : 1 (docs/streams.md).
    """

    weights: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=lambda: {"joint": 0.6, "bone": 0.6, "joint_motion": 0.4,
                                 "bone_motion": 0.4}  # fmt: skip
    )
    softmax: bool = False

    @field_validator("weights")
    @classmethod
    def _known_streams(cls, value: dict[str, float]) -> dict[str, float]:
        for name in value:
            check_stream(name)
        return value


class ReportParams(Settings):
    """Where ``skelact report`` writes."""

    out_dir: Name = "reports"


class TrainConfig(Settings):
    """Everything that defines a training run. ``None`` = the recipe's value for ``model``.

    ``lr`` is the learning rate *at the reference global batch* (``base_batch_size``, 64); with
    ``scale_lr`` the run uses ``lr * batch_size / base_batch_size`` (linear scaling rule), so the
    same recipe can be trained on one CPU with a small batch or on many GPUs with a large one.
    """

    model: str = "hcn"
    train_path: str = ""
    val_path: str = ""
    out_dir: str = "runs/train"
    seed: NonNegInt = 0
    # --- recipe (None = reference value) ---
    epochs: PositiveInt | None = None
    lr: PositiveFloat | None = None
    weight_decay: NonNegFloat | None = None
    optimizer: Literal["adam", "sgd"] | None = None
    momentum: NonNegFloat | None = None
    nesterov: bool | None = None
    lr_steps: list[PositiveInt] | None = None
    lr_gamma: PositiveFloat | None = None
    # step: x lr_gamma at each of lr_steps; cosine: annealed to 0 over the epochs (PYSKL's)
    lr_schedule: Literal["step", "cosine"] | None = None
    clip_len: PositiveInt | None = None
    train_min_ratio: Fraction | None = None
    train_max_ratio: Fraction | None = None
    min_len: PositiveInt | None = None
    val_clip_ratio: Fraction | None = None
    rotate: NonNegFloat | None = None
    val_interval: PositiveInt | None = None
    decay_mult: dict[str, NonNegFloat] | None = None  # parameter-name substring -> factor
    # --- batch and scaling ---
    batch_size: PositiveInt = REFERENCE_BATCH_SIZE  # global, over all ranks
    base_batch_size: PositiveInt = REFERENCE_BATCH_SIZE  # the batch `lr` is meant for
    scale_lr: bool = True
    val_batch_size: PositiveInt | None = None  # global; None = 2 x batch_size
    # --- model and data ---
    with_score: bool = False  # feed keypoint_score as an extra last input channel (C + 1)
    # what the model sees of each clip: joints, bones, or their motion (skelact.data.streams)
    stream: str = "joint"
    # the YAML file of a user layout that the samples name (built-in layouts need none)
    layout_file: Name | None = None
    # 2-D augmentation: isotropic scale uniform in [lo, hi] after the in-plane rotation; None off
    scale_range: list[PositiveFloat] | None = None
    # Classes of the data's definition (60/120 for NTU, synth.num_classes for synthetic data);
    # the dataset refuses labels outside [0, num_classes). None only in direct Python use.
    num_classes: Annotated[int, Field(ge=2)] | None = None
    model_options: dict[str, Any] = Field(default_factory=dict)
    train_split: str | None = None  # pyskl files: e.g. 'xsub_train'
    val_split: str | None = None  # pyskl files: e.g. 'xsub_val'
    benchmark: str | None = None  # tag only; None = guessed from the pickle's folder name
    # --- execution ---
    device: Device = "auto"  # 'auto' | 'cpu' | 'cuda' | 'cuda:N'
    deterministic: bool = False
    threads: PositiveInt | None = None  # torch threads; None = torch default (1 if deterministic)
    amp: Literal["none", "bf16", "fp16"] = "none"  # CUDA only
    compile: bool = False  # torch.compile (CUDA only)
    # CUDA graphs of forward and backward (torch.compile mode="reduce-overhead"); CUDA only
    cuda_graphs: bool = False
    tf32: bool = False  # TF32 matmuls and convolutions (changes numerics); CUDA only
    drop_last: bool = False  # skip each epoch's last partial training batch (one static shape)
    resume: bool = False
    checkpoint_interval: PositiveInt = 1  # write last.pt every k epochs (and at the last one)
    stop_after_epoch: PositiveInt | None = None  # end early after this epoch (tests, slicing)
    # --- tracking and output ---
    track: bool = True
    tracking_uri: Name | None = None
    experiment: Name = "skelact"
    run_name: str | None = None
    quiet: bool = False

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in RECIPES:
            raise ValueError(f"unknown model {value!r}; expected one of {', '.join(RECIPES)}")
        return value

    @field_validator("stream")
    @classmethod
    def _known_stream(cls, value: str) -> str:
        return check_stream(value)

    @model_validator(mode="after")
    def _ratios_ordered(self) -> TrainConfig:
        lo, hi = self.train_min_ratio, self.train_max_ratio
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"train_min_ratio {lo} > train_max_ratio {hi}")
        scale = self.scale_range
        if scale is not None and (len(scale) != 2 or scale[0] > scale[1]):
            raise ValueError(f"scale_range {scale} is not a [lo, hi] pair with lo <= hi")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain data (str/int/float/bool/None/list/dict): safe for JSON and weights_only loads."""
        return self.model_dump()

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "training options") -> TrainConfig:
        """Build from a dict; unknown keys and invalid values are a :class:`ConfigError`."""
        unknown = sorted(set(values) - set(cls.model_fields))
        if unknown:
            raise ConfigError(f"{where}: unknown training option(s): {', '.join(unknown)}")
        return _validated(cls, values, where)


class Params(Settings):
    """The whole ``params.yaml``, validated."""

    data: DataParams = Field(default_factory=DataParams)
    import_: ImportParams = Field(default_factory=ImportParams, alias="import")
    synth: SynthParams = Field(default_factory=SynthParams)
    preprocess: PreprocessParams = Field(default_factory=PreprocessParams)
    benchmarks: tuple[str, ...] = Field(("xsub",), strict=False, min_length=1)
    models: tuple[str, ...] = Field(MODEL_NAMES, strict=False, min_length=1)
    seeds: tuple[Annotated[int, Field(ge=0, strict=True)], ...] = Field(
        (0,), strict=False, min_length=1
    )
    streams: tuple[str, ...] = Field(("joint",), strict=False, min_length=1)
    recipe: Literal["auto", "paper", "quick"] = "auto"
    # {"common": {...}, "<model>": {...}}: used only in the quick recipe mode
    quick: dict[str, dict[str, Any]] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    model: dict[str, dict[str, Any]] = Field(default_factory=dict)
    evaluate: EvaluateParams = Field(default_factory=EvaluateParams)
    fuse: FuseParams = Field(default_factory=FuseParams)
    tracking: TrackingParams = Field(default_factory=TrackingParams)
    report: ReportParams = Field(default_factory=ReportParams)
    path: str = Field("params.yaml", exclude=True)  # the file it was read from (not a key)

    @field_validator("models", "benchmarks", "seeds", "streams", mode="before")
    @classmethod
    def _one_or_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | int) and not isinstance(value, bool) else value

    @field_validator("models", "benchmarks", "seeds", "streams")
    @classmethod
    def _distinct(cls, value: tuple) -> tuple:
        twice = sorted({v for v in value if value.count(v) > 1})
        if twice:
            raise ValueError(f"listed twice: {twice}; entries must be distinct")
        return value

    @field_validator("models")
    @classmethod
    def _known_models(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name not in MODEL_NAMES:
                raise ValueError(f"unknown entry {name!r}; valid: {list(MODEL_NAMES)}")
        return value

    @field_validator("streams")
    @classmethod
    def _known_streams(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            check_stream(name)
        return value

    @model_validator(mode="after")
    def _fuse_weights_cover_streams(self) -> Params:
        missing = [s for s in self.streams if s not in self.fuse.weights]
        if len(self.streams) > 1 and missing:
            raise ValueError(f"fuse.weights: no weight for the stream(s) {missing} in `streams`")
        return self

    @model_validator(mode="after")
    def _benchmarks_of_dataset(self) -> Params:
        if self.data.source == "custom":
            valid: tuple[str, ...] = (CUSTOM_BENCHMARK,)
        elif self.data.source in DATASET_SOURCES:
            valid = (DATASET_SOURCES[self.data.source][3],)
        else:
            valid = ntu.DATASETS[self.data.dataset].benchmarks
        for name in self.benchmarks:
            if name not in valid:
                raise ValueError(f"benchmarks: unknown entry {name!r}; valid: {list(valid)}")
        return self

    @property
    def mode(self) -> str:
        """The recipe mode in effect: ``paper`` or ``quick``."""
        return recipe_mode(self)

    @property
    def num_classes(self) -> int | None:
        """Classes of the data's definition: 60/120 for NTU, ``synth.num_classes`` for synthetic
        data; None for custom data (training counts the lines of the import's classes.txt)."""
        if self.data.source == "synthetic":
            return self.synth.num_classes
        if self.data.source in IMPORT_SOURCES:
            return None
        return ntu.DATASETS[self.data.source].num_classes


# --------------------------------------------------------------------------------------------
# Reading and validating
# --------------------------------------------------------------------------------------------


def _validated(cls: type[BaseModel], values: Any, where: str, sep: str = ".") -> Any:
    """``cls.model_validate(values)`` with the first problem as one line naming key and value."""
    try:
        return cls.model_validate(values)
    except ValidationError as exc:
        raise _config_error(cls, where, sep, exc) from None


def _keys(cls: type[BaseModel]) -> dict[str, Any]:
    """The keys of a settings model as the YAML spells them (``import``, not ``import_``)."""
    return {f.alias or name: f for name, f in cls.model_fields.items() if name != "path"}


def _fields_at(cls: type[BaseModel], loc: tuple) -> list[str]:
    """The valid keys of the (nested) settings model at ``loc``."""
    for part in loc:
        field = _keys(cls).get(part)
        sub = field.annotation if field is not None else None
        if not (isinstance(sub, type) and issubclass(sub, BaseModel)):
            break
        cls = sub
    return sorted(_keys(cls))


def _config_error(cls: type[BaseModel], where: str, sep: str, exc: ValidationError) -> ConfigError:
    first = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in first["loc"])
    key = f"{where}{sep}{loc}" if loc else where
    more = exc.error_count() - 1
    tail = f" (and {more} more problem(s))" if more else ""
    if first["type"] == "extra_forbidden":
        valid = _fields_at(cls, first["loc"][:-1])
        return ConfigError(f"{key}: unknown key; valid keys: {valid}{tail}")
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "value_error" and isinstance(first["input"], Mapping):
        return ConfigError(f"{key}: {message}{tail}")  # a check across fields names them
    return ConfigError(f"{key}: {bounded(first['input'])} is not valid: {message}{tail}")


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML settings file; problems are a :class:`ConfigError` naming ``file:line``."""
    return yamlfile.read_yaml(path, ConfigError, what="params file")


_SECTIONS = tuple(_keys(Params))


def _train_layer(values: Any, where: str) -> dict[str, Any]:
    """One section of training options (``train``, ``quick.x``, ``model.x``), type-checked."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: must be a mapping of training options, not {bounded(values)}")
    valid = sorted(k for k in TrainConfig.model_fields if k not in _PIPELINE_OWNED)
    for key in values:
        if key in _PIPELINE_OWNED:
            raise ConfigError(f"{where}.{key}: cannot be set here: {_PIPELINE_OWNED[key]}")
        if key not in TrainConfig.model_fields:
            raise ConfigError(f"{where}: unknown training option {key!r}; valid options: {valid}")
    checked = _validated(TrainConfig, dict(values), where)
    return {key: getattr(checked, key) for key in values}


def _per_model(values: Any, where: str, extra: tuple[str, ...] = ()) -> dict[str, dict]:
    if values is None:
        return {}
    valid = [*extra, *MODEL_NAMES]
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: must map {valid} to training options")
    for key in values:
        if key not in valid:
            raise ConfigError(f"{where}: unknown model {key!r}; valid: {valid}")
    return {key: _train_layer(opts, f"{where}.{key}") for key, opts in values.items()}


def parse_params(raw: Any, path: str = "params.yaml") -> Params:
    """Validate the parsed YAML of ``params.yaml`` (see the module docstring for the layout)."""
    if raw is None:
        raise ConfigError(
            f"{path}: the file is empty; it must hold the pipeline's sections "
            f"({', '.join(_SECTIONS)})"
        )
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown section(s) {unknown}; valid sections: {sorted(_SECTIONS)}"
        )
    values = dict(raw)
    values["quick"] = _per_model(values.get("quick"), f"{path}: quick", ("common",))
    values["train"] = _train_layer(values.get("train"), f"{path}: train")
    values["model"] = _per_model(values.get("model"), f"{path}: model")
    for section in ("data", "import", "synth", "preprocess", "evaluate", "tracking", "report"):
        if values.get(section) is None:
            values.pop(section, None)
    return _validated(Params, {**values, "path": path}, path, ": ")


def load_params(path: str | os.PathLike[str] = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; errors name the file and the offending key."""
    return parse_params(read_yaml(path), str(path))


# --------------------------------------------------------------------------------------------
# The training merge
# --------------------------------------------------------------------------------------------


def recipe_mode(params: Params) -> str:
    """``paper`` for NTU data (the reference schedules), ``quick`` for synthetic and custom data
    (the paper's schedules belong to NTU's size), unless forced."""
    if params.recipe != "auto":
        return params.recipe
    return "paper" if params.data.source in NTU_SOURCES else "quick"


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


def _check_model_options(model: str, options: Mapping[str, Any], where: str) -> None:
    """Each option must be one the model's builder takes, of the type of its default."""
    from skelact.models import model_options

    defaults = model_options(model)
    for key, value in options.items():
        if key not in defaults:
            raise ConfigError(
                f"{where}: unknown option {key!r} for model {model!r} "
                f"(accepted: {', '.join(defaults) or 'none'})"
            )
        default = defaults[key]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if isinstance(default, bool):
            ok, expected = isinstance(value, bool), "true or false"
        elif isinstance(default, int):
            ok, expected = number and isinstance(value, int), "an integer"
        elif isinstance(default, float):
            ok, expected = number and math.isfinite(value), "a finite number"
        elif isinstance(default, str):
            ok, expected = isinstance(value, str), "a string"
        else:
            ok, expected = True, ""
        if not ok:
            raise ConfigError(f"{where}.{key}: {bounded(value)} is not valid: expected {expected}")


def train_config(
    model: str,
    params: Params | None = None,
    benchmark: str | None = None,
    **command_line: Any,
) -> TrainConfig:
    """The one merge: recipe -> quick.common -> quick.<model> -> train -> model.<model> -> CLI.

    ``command_line`` holds the options given on the command line (None = not given); the result
    is complete (every recipe field set), so ``config.json`` describes the run on its own.
    """
    if model not in MODEL_NAMES:
        where = params.path if params is not None else "--model"
        raise ConfigError(f"{where}: unknown model {model!r}; valid: {list(MODEL_NAMES)}")
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if params is not None:
        if recipe_mode(params) == "quick":
            layers += [
                (f"{params.path}: quick.common", params.quick.get("common", {})),
                (f"{params.path}: quick.{model}", params.quick.get(model, {})),
            ]
        layers += [
            (f"{params.path}: train", params.train),
            (f"{params.path}: model.{model}", params.model.get(model, {})),
        ]
    tuned: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for where, layer in layers:
        _check_model_options(model, layer.get("model_options") or {}, f"{where}.model_options")
        options.update(layer.get("model_options") or {})
        tuned.update(layer)

    reference = recipe_for(model)
    epochs = tuned.get("epochs")
    if epochs is not None and "lr_steps" not in tuned:
        tuned["lr_steps"] = scale_steps(reference["lr_steps"], reference["epochs"], epochs)
    if epochs is not None and "val_interval" not in tuned:
        # Validate at least 10 times over a shortened run (and at the last epoch, always).
        tuned["val_interval"] = max(1, min(reference["val_interval"], epochs // 10 or 1))
    # The command line wins as given: `--epochs` alone keeps the recipe's LR steps, exactly as
    # the Python API does (a scripted run and its CLI twin must follow the same trajectory).
    given = {k: v for k, v in command_line.items() if v is not None}
    _check_model_options(model, given.get("model_options") or {}, "command line.model_options")
    tuned.update(given)
    tuned["model_options"] = {**options, **(given.get("model_options") or {})}
    if params is not None:
        tuned.setdefault("track", params.tracking.enabled)
        if params.tracking.uri:
            tuned.setdefault("tracking_uri", params.tracking.uri)
        if params.num_classes is not None:
            tuned.setdefault("num_classes", params.num_classes)
        if params.data.source == "custom" and params.data.layout.endswith((".yaml", ".yml")):
            tuned.setdefault("layout_file", params.data.layout)
        if benchmark is not None:
            tuned.setdefault("experiment", experiment_name(params, benchmark))
    if benchmark is not None:
        tuned.setdefault("benchmark", benchmark)
    return TrainConfig.from_dict({**reference, **tuned, "model": model}, "training settings")


def apply_overrides(config: TrainConfig, overrides: Mapping[str, Any]) -> TrainConfig:
    """A copy of ``config`` with ``overrides`` applied; unknown keys are an error naming them."""
    return TrainConfig.from_dict({**config.to_dict(), **overrides})


def resolve_config(config: TrainConfig) -> TrainConfig:
    """Fill every recipe field left at ``None`` from the model's recipe (a complete config)."""
    values = config.to_dict()
    for key, value in recipe_for(config.model).items():
        if values.get(key) is None:
            values[key] = value
    return TrainConfig.from_dict(values)


# --------------------------------------------------------------------------------------------
# The other stages: command line over params.yaml over the defaults above
# --------------------------------------------------------------------------------------------


def _given(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _override(section: Settings, **command_line: Any) -> dict[str, Any]:
    """``section`` with the options given on the command line, re-validated as one section."""
    values = {**section.model_dump(), **_given(command_line)}
    return _validated(type(section), values, "command line").model_dump()


def check_model(name: str) -> str:
    """``name`` if it is a known model, else a ConfigError listing them."""
    if name not in MODEL_NAMES:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return name


def parse_model_options(items: list[str] | None) -> dict[str, Any] | None:
    """``--model-option KEY=VALUE`` pairs; values read as YAML scalars (1, 0.5, true, abc)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--model-option expects KEY=VALUE, got {bounded(item)}")
        out[key] = yamlfile.parse_scalar(value)
    return out or None


def synth_options(params: Params | None, **command_line: Any) -> dict[str, Any]:
    """``skelact synth``'s settings (SynthSettings keywords besides out_dir and clean)."""
    return _override(params.synth if params is not None else SynthParams(), **command_line)


def synth_format(
    params: Params | None, fmt: str | None, layout: str | None, dims: int | None
) -> tuple[str, str, int] | None:
    """What ``skelact synth`` writes besides NTU files: ``(format, layout, dims)``, or None for
    ``.skeleton`` files. ``--format`` picks it; without it, ``data.source: custom`` in
    ``params.yaml`` picks ``data.format`` and ``data.layout`` (2-D: what pose estimators give),
    so that the pipeline's demo of custom data needs no data of one's own."""
    if fmt is None and (layout is not None or dims is not None):
        raise ConfigError("--layout and --dims need --format (without it synth writes NTU files)")
    if fmt is None and params is not None and params.data.source == "custom":
        fmt, layout = params.data.format, params.data.layout
    if fmt is None and params is not None and params.data.source in DATASET_SOURCES:
        fmt, layout, dims, _ = DATASET_SOURCES[params.data.source]
    if fmt is None:
        return None
    return fmt, layout or "coco17", 2 if dims is None else dims


def preprocess_options(params: Params | None, **command_line: Any) -> dict[str, Any]:
    """``skelact preprocess``'s settings: dataset, raw_dir, out_dir, format, workers, on_error."""
    data = params.data if params is not None else DataParams()
    section = params.preprocess if params is not None else PreprocessParams()
    given = _given(command_line)
    paths = {"raw_dir": data.raw_dir, "out_dir": data.prepared_dir} if params is not None else {}
    paths.update({k: given.pop(k) for k in ("raw_dir", "out_dir") if k in given})
    for key in ("raw_dir", "out_dir"):
        if key not in paths:
            raise ConfigError(f"--{key.replace('_', '-')} is required (or --params params.yaml)")
    dataset = given.pop("dataset", data.dataset)
    if dataset not in ntu.DATASETS:
        raise ConfigError(f"--dataset: {bounded(dataset)} is not one of {list(ntu.DATASETS)}")
    options = _override(section, **given)
    return {
        "dataset": dataset,
        "raw_dir": Path(paths["raw_dir"]),
        "out_dir": Path(paths["out_dir"]),
        **options,
        "workers": options["workers"] or None,  # PreprocessSettings: None = all cores
    }


def import_options(params: Params | None, **command_line: Any) -> dict[str, Any]:
    """``skelact import``'s settings: fmt, src, layout, labels, out_dir and the ``import``
    section (split_by, val_fraction, seed, on_error, normalise, num_persons).

    From ``params.yaml``: ``data.format`` (fmt), ``data.raw_dir`` (the source), ``data.layout``,
    ``data.labels`` and ``data.prepared_dir`` (the output) when ``data.source`` is ``custom``;
    for a data set source (kinetics, nwucla) its format, layout and benchmark ``name`` instead;
    the command line wins. ``classes`` and ``benchmark`` are command-line only; ``img_shape``
    defaults to ``import.img_shape``.
    """
    section = params.import_ if params is not None else ImportParams()
    given = _given(command_line)
    extra = {k: given.pop(k) for k in ("classes", "img_shape", "benchmark") if k in given}
    values: dict[str, Any] = {}
    if params is not None and params.data.source == "custom":
        data = params.data
        values = {"fmt": data.format, "src": data.raw_dir, "layout": data.layout,
                  "labels": data.labels_file, "out_dir": data.prepared_dir}  # fmt: skip
    elif params is not None and params.data.source in DATASET_SOURCES:
        fmt, layout, _, bench = DATASET_SOURCES[params.data.source]
        values = {"fmt": fmt, "src": params.data.raw_dir, "layout": layout,
                  "out_dir": params.data.prepared_dir}  # fmt: skip
        extra.setdefault("name", bench)
    values.update({k: given.pop(k) for k in ("fmt", "src", "layout", "labels", "out_dir")
                   if k in given})  # fmt: skip
    for key, flag in (("fmt", "--from"), ("src", "SRC"), ("layout", "--layout"),
                      ("out_dir", "--out-dir")):  # fmt: skip
        if values.get(key) is None:
            raise ConfigError(f"{flag} is required (or --params params.yaml with data.source: "
                              "custom)")  # fmt: skip
    fmt = values["fmt"]
    if fmt not in IMPORT_FORMATS:
        raise ConfigError(f"--from: {bounded(fmt)} is not one of {list(IMPORT_FORMATS)}")
    if fmt in LABELLESS_FORMATS and values.get("labels") is None:
        raise ConfigError(f"--labels is required for --from {fmt} (a CSV of clip,label[,split])")
    return {
        "fmt": fmt,
        "src": Path(values["src"]),
        "layout": str(values["layout"]),
        "labels": None if values.get("labels") is None else Path(values["labels"]),
        "out_dir": Path(values["out_dir"]),
        **_override(section, **given),
        **extra,
    }


def evaluate_options(params: Params | None, **command_line: Any) -> dict[str, Any]:
    """``skelact test``'s settings from ``evaluate`` and ``tracking``: batch_size, device,
    track, tracking_uri (EvalConfig keywords)."""
    section = params.evaluate if params is not None else EvaluateParams()
    tracking = params.tracking if params is not None else TrackingParams()
    given = _given(command_line)
    out = {"track": given.pop("track", tracking.enabled)}
    out["tracking_uri"] = given.pop("tracking_uri", tracking.uri)
    return {**_override(section, **given), **out}


def report_options(params: Params | None, **command_line: Any) -> dict[str, Any]:
    """``skelact report``'s settings (make_report keywords besides the input folders)."""
    report = params.report if params is not None else ReportParams()
    given = _given(command_line)
    out = {
        "out_dir": Path(given.get("out_dir", report.out_dir)),
        "source": given.get("source", params.data.source if params is not None else "synthetic"),
    }
    if params is not None:
        out.update(models=params.models, benchmarks=params.benchmarks, seeds=params.seeds,
                   streams=params.streams)  # fmt: skip
    return out


def fuse_plan(
    params: Params, eval_root: str | os.PathLike[str], out_root: str | os.PathLike[str]
) -> list[dict[str, Any]]:
    """The pipeline's fusions (FuseConfig keywords): per benchmark x model x seed, the streams
    in ``streams`` weighted by ``fuse.weights``; none when only one stream is trained."""
    if len(params.streams) < 2:
        return []
    plan = []
    for benchmark in params.benchmarks:
        for model in params.models:
            for seed in params.seeds:
                plan.append({
                    "scores": [str(item_dir(eval_root, benchmark, model, s, seed) / "scores.npz")
                               for s in params.streams],
                    "weights": [params.fuse.weights[s] for s in params.streams],
                    "names": list(params.streams),
                    "softmax": params.fuse.softmax,
                    "out_dir": str(fused_dir(out_root, benchmark, model, seed)),
                    "info": {"model": model, "benchmark": benchmark, "seed": seed},
                    "track": params.tracking.enabled,
                    "tracking_uri": params.tracking.uri,
                    "experiment": experiment_name(params, benchmark),
                    "run_name": f"{model}-fused-{benchmark}-seed{seed}",
                })  # fmt: skip
    return plan


# --------------------------------------------------------------------------------------------
# Folder layout shared by dvc.yaml, the report and the tests
# --------------------------------------------------------------------------------------------

RUNS_DIR = "runs"  # training outputs: runs/<benchmark>/<model>/<stream>/seed<N>/
EVAL_DIR = "eval"  # evaluation outputs: eval/<benchmark>/<model>/<stream>/seed<N>/
FUSED_DIR = "fused"  # stream fusions: fused/results/<benchmark>/<model>/seed<N>/, metrics.json


def item_dir(
    root: str | os.PathLike[str], benchmark: str, model: str, stream: str, seed: int
) -> Path:
    """``<root>/<benchmark>/<model>/<stream>/seed<N>``: the folder of one matrix item under
    ``runs`` or ``eval`` (dvc.yaml spells the same layout; the report reads it back here)."""
    return Path(root) / benchmark / model / stream / f"seed{seed}"


def fused_dir(root: str | os.PathLike[str], benchmark: str, model: str, seed: int) -> Path:
    """``<root>/results/<benchmark>/<model>/seed<N>``: where the fusion of one model's streams
    goes (beside ``<root>/metrics.json``, the DVC metrics of all fusions)."""
    return Path(root) / "results" / benchmark / model / f"seed{seed}"


def stage_dir(
    kind: Literal["runs", "eval"],
    benchmark: str,
    model: str,
    stream: str,
    seed: int,
    root: str | os.PathLike[str] = ".",
) -> Path:
    """Where train (``runs``) or evaluate (``eval``) of one matrix item writes."""
    return item_dir(Path(root) / kind, benchmark, model, stream, seed)
