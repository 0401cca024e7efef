"""The reference training recipes as data, and the one config object every run is described by.

The five SkelAct recipes (``../shared/reference/TRAINING.md``) differ only in numbers, so they
live in a table rather than in code paths. :class:`TrainConfig` holds every knob; a field left
at ``None`` means "take the recipe's value", which :func:`resolve_config` fills in so that the
resolved config saved next to the checkpoints is complete and self-describing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# Global batch of the reference runs (2 GPUs x 32): the batch size the recipe LRs belong to.
REFERENCE_BATCH_SIZE = 64

_ADAM = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-4, "momentum": 0.0, "nesterov": False}
_SGD = {"optimizer": "sgd", "lr": 0.1, "weight_decay": 4e-4, "momentum": 0.9, "nesterov": True}

# Shared by all five: random crop in [0.5, 1.0] of the frames (at least 64 frames), lr x0.1 steps.
_COMMON = {"train_min_ratio": 0.5, "train_max_ratio": 1.0, "min_len": 64, "lr_gamma": 0.1}

RECIPES: dict[str, dict[str, Any]] = {
    "tscnn": {
        **_COMMON,
        **_ADAM,
        "clip_len": 32,
        "val_clip_ratio": 0.9,
        "rotate": 0.0,
        "epochs": 500,
        "lr_steps": [350, 430, 470],
        "val_interval": 5,
        "decay_mult": {"backbone.fc5": 10.0},
    },
    "hcn": {
        **_COMMON,
        **_ADAM,
        "clip_len": 64,
        "val_clip_ratio": 0.9,
        "rotate": 0.0,
        "epochs": 500,
        "lr_steps": [350, 430, 470],
        "val_interval": 5,
        "decay_mult": {"backbone.fc7": 10.0},
    },
    "hcnb": {
        **_COMMON,
        **_ADAM,
        "clip_len": 64,
        "val_clip_ratio": 0.95,
        "rotate": 0.1,
        "epochs": 800,
        "lr_steps": [650, 730, 770],
        "val_interval": 5,
        "decay_mult": {},
    },
    "tacnn": {
        **_COMMON,
        **_ADAM,
        "clip_len": 64,
        "val_clip_ratio": 0.95,
        "rotate": 0.1,
        "epochs": 800,
        "lr_steps": [650, 730, 770],
        "val_interval": 5,
        "decay_mult": {},
    },
    "dgcn": {
        **_COMMON,
        **_SGD,
        "clip_len": 64,
        "val_clip_ratio": 0.95,
        "rotate": 0.1,
        "epochs": 65,
        "lr_steps": [35, 45, 55],
        "val_interval": 1,
        "decay_mult": {},
    },
}

# The TrainConfig fields a recipe provides (None in TrainConfig = "use the recipe").
RECIPE_FIELDS = tuple(RECIPES["hcn"].keys())


def recipe_for(model: str) -> dict[str, Any]:
    """A fresh copy of the reference defaults for ``model`` (mutating it changes nothing)."""
    if model not in RECIPES:
        raise ValueError(f"unknown model {model!r}; expected one of {', '.join(RECIPES)}")
    recipe = RECIPES[model]
    return {
        k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
        for k, v in recipe.items()
    }


@dataclass
class TrainConfig:
    """Everything that defines a training run. ``None`` = the recipe's value for ``model``.

    ``lr`` is the learning rate *at the reference global batch* (``base_batch_size``, 64); with
    ``scale_lr`` the run uses ``lr * batch_size / base_batch_size`` (linear scaling rule), so the
    same recipe can be trained on one CPU with a small batch or on many GPUs with a large one.
    """

    model: str = "hcn"
    train_path: str = ""
    val_path: str = ""
    out_dir: str = "runs/train"
    seed: int = 0
    # --- recipe (None = reference value) ---
    epochs: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    optimizer: str | None = None  # 'adam' | 'sgd'
    momentum: float | None = None
    nesterov: bool | None = None
    lr_steps: list[int] | None = None
    lr_gamma: float | None = None
    clip_len: int | None = None
    train_min_ratio: float | None = None
    train_max_ratio: float | None = None
    min_len: int | None = None
    val_clip_ratio: float | None = None
    rotate: float | None = None
    val_interval: int | None = None
    decay_mult: dict[str, float] | None = None  # parameter-name substring -> weight-decay factor
    # --- batch and scaling ---
    batch_size: int = REFERENCE_BATCH_SIZE  # global, over all ranks
    base_batch_size: int = REFERENCE_BATCH_SIZE  # the batch `lr` is meant for
    scale_lr: bool = True
    val_batch_size: int | None = None  # global; None = 2 x batch_size
    # --- model and data ---
    num_classes: int | None = None  # None = from the data (max label + 1 over train and val)
    model_options: dict[str, Any] = field(default_factory=dict)
    train_split: str | None = None  # pyskl files: e.g. 'xsub_train'
    val_split: str | None = None  # pyskl files: e.g. 'xsub_val'
    benchmark: str | None = None  # tag only; None = guessed from the pickle's folder name
    # --- execution ---
    device: str = "auto"  # 'auto' | 'cpu' | 'cuda' | 'cuda:N'
    deterministic: bool = False
    threads: int | None = None  # torch intra-op threads; None = torch default (1 if deterministic)
    amp: str = "none"  # 'none' | 'bf16' | 'fp16' (CUDA only)
    compile: bool = False  # torch.compile (CUDA only)
    resume: bool = False
    checkpoint_interval: int = 1  # write last.pt every k epochs (and always at the last one)
    stop_after_epoch: int | None = (
        None  # end the process early after this epoch (tests, time slicing)
    )
    # --- tracking and output ---
    track: bool = True
    tracking_uri: str | None = None
    experiment: str = "skelact"
    run_name: str | None = None
    quiet: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain data (str/int/float/bool/None/list/dict): safe for JSON and weights_only loads."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict, rejecting unknown keys with their names (typos must not pass)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**values)


def apply_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """A copy of ``config`` with ``overrides`` applied; unknown keys are an error naming them."""
    merged = config.to_dict()
    merged.update(overrides)
    return TrainConfig.from_dict(merged)


def resolve_config(config: TrainConfig) -> TrainConfig:
    """Fill every recipe field left at ``None`` from the model's recipe and validate the result."""
    recipe = recipe_for(config.model)
    values = config.to_dict()
    for key in RECIPE_FIELDS:
        if values.get(key) is None:
            values[key] = recipe[key]
    values["optimizer"] = str(values["optimizer"]).lower()
    values["lr_steps"] = [int(s) for s in values["lr_steps"]]
    resolved = TrainConfig(**values)
    _validate(resolved)
    return resolved


def _validate(c: TrainConfig) -> None:
    """Reject values that would fail later, or silently do something else, with a clear message."""
    problems = []
    if c.optimizer not in ("adam", "sgd"):
        problems.append(f"optimizer must be 'adam' or 'sgd', not {c.optimizer!r}")
    if c.epochs is not None and c.epochs < 1:
        problems.append(f"epochs must be >= 1, not {c.epochs}")
    if c.batch_size < 1 or c.base_batch_size < 1:
        problems.append("batch sizes must be >= 1")
    if c.lr is not None and c.lr <= 0:
        problems.append(f"lr must be > 0, not {c.lr}")
    if c.val_interval is not None and c.val_interval < 1:
        problems.append(f"val_interval must be >= 1, not {c.val_interval}")
    if c.checkpoint_interval < 1:
        problems.append(f"checkpoint_interval must be >= 1, not {c.checkpoint_interval}")
    if c.amp not in ("none", "bf16", "fp16"):
        problems.append(f"amp must be 'none', 'bf16' or 'fp16', not {c.amp!r}")
    if c.clip_len is not None and c.clip_len < 1:
        problems.append(f"clip_len must be >= 1, not {c.clip_len}")
    if c.val_clip_ratio is not None and not 0 < c.val_clip_ratio <= 1:
        problems.append(f"val_clip_ratio must be in (0, 1], not {c.val_clip_ratio}")
    if problems:
        raise ValueError("invalid training config: " + "; ".join(problems))


def effective_lr(config: TrainConfig) -> float:
    """The learning rate the optimizer actually uses (linear scaling to the global batch)."""
    lr = float(config.lr if config.lr is not None else recipe_for(config.model)["lr"])
    if config.scale_lr and config.batch_size != config.base_batch_size:
        lr *= config.batch_size / config.base_batch_size
    return lr


def param_groups(model: Any, weight_decay: float, decay_mult: dict[str, float]) -> list[dict]:
    """Optimizer parameter groups with the recipe's per-layer weight-decay multipliers.

    Like the reference (mmcv ``paramwise_cfg.custom_keys``), a parameter whose name contains a
    key gets ``weight_decay * mult`` (weights and biases alike). A key that matches no parameter
    is an error: a silently ignored multiplier would quietly change the recipe.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups: dict[float, list] = {}
    used = set()
    for name, param in named:
        mult = 1.0
        for key, value in decay_mult.items():
            if key in name:
                mult = float(value)
                used.add(key)
                break
        groups.setdefault(mult, []).append(param)
    missing = sorted(set(decay_mult) - used)
    if missing:
        raise ValueError(
            f"weight-decay multiplier key(s) {missing} match no parameter of the model "
            f"(names look like {[n for n, _ in named[:3]]})"
        )
    return [
        {"params": ps, "weight_decay": weight_decay * m, "decay_mult": m}
        for m, ps in sorted(groups.items())
    ]


def build_optimizer(model: Any, config: TrainConfig, lr: float):
    """Adam or SGD with classic L2 weight decay (not AdamW), as in the reference."""
    import torch

    groups = param_groups(model, float(config.weight_decay), dict(config.decay_mult or {}))
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.SGD(
        groups, lr=lr, momentum=float(config.momentum), nesterov=bool(config.nesterov)
    )


def build_scheduler(optimizer: Any, config: TrainConfig):
    """Step schedule stepped once per epoch: lr x gamma after each epoch in ``lr_steps``."""
    import torch

    return torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(config.lr_steps), gamma=float(config.lr_gamma)
    )
