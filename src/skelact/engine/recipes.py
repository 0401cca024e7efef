"""The reference training recipes as data (the schedules of the SkelAct and PYSKL configs).

The five SkelAct recipes and PYSKL's two (ST-GCN++, CTR-GCN) differ only in numbers, so they
live in a table rather than in code paths; what several recipes share is written once. The
clip length is not here: it is the model's own default configuration
(``skelact.models.default_clip_len``), one source for training, evaluation and export. The
typed :class:`~skelact.config.TrainConfig` and the merge of ``params.yaml`` and the command
line over these recipes live in :mod:`skelact.config`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

# Global batch of the reference runs (2 GPUs x 32): the batch size the recipe LRs belong to.
REFERENCE_BATCH_SIZE = 64

# Shared by all five: random crop in [0.5, 1.0] of the frames (at least 64 frames), lr x0.1 steps.
_COMMON = {"train_min_ratio": 0.5, "train_max_ratio": 1.0, "min_len": 64, "lr_gamma": 0.1,
           "lr_schedule": "step"}  # fmt: skip
_ADAM = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-4, "momentum": 0.0, "nesterov": False}
_SGD = {"optimizer": "sgd", "lr": 0.1, "weight_decay": 4e-4, "momentum": 0.9, "nesterov": True}
_SCHEDULE = {"val_interval": 5, "decay_mult": {}}
# The two-stream CNNs (tscnn, hcn): 500 epochs, no rotation; they differ in the boosted layer.
_CNN = {**_COMMON, **_ADAM, **_SCHEDULE, "val_clip_ratio": 0.9, "rotate": 0.0, "epochs": 500,
        "lr_steps": [350, 430, 470]}  # fmt: skip
# HCN-Baseline and Ta-CNN train identically: 800 epochs with light rotation.
_LONG = {**_COMMON, **_ADAM, **_SCHEDULE, "val_clip_ratio": 0.95, "rotate": 0.1, "epochs": 800,
         "lr_steps": [650, 730, 770]}  # fmt: skip

RECIPES: dict[str, dict[str, Any]] = {
    "tscnn": {**_CNN, "decay_mult": {"backbone.fc5": 10.0}},
    "hcn": {**_CNN, "decay_mult": {"backbone.fc7": 10.0}},
    "hcnb": _LONG,
    "tacnn": _LONG,
    "dgcn": {
        **_COMMON,
        **_SGD,
        "val_clip_ratio": 0.95,
        "rotate": 0.1,
        "epochs": 65,
        "lr_steps": [35, 45, 55],
        "val_interval": 1,
        "decay_mult": {},
    },  # fmt: skip
}

# PYSKL's NTU-60 3-D joint configs of ST-GCN++ and CTR-GCN (configs/stgcn++/stgcn++_ntu60_xsub_3dkp/
# j.py, configs/ctrgcn/ctrgcn_pyskl_ntu60_xsub_3dkp/j.py): SGD 0.9 Nesterov, weight decay 5e-4,
# lr 0.1 for 8 GPUs x 16 = 128 clips (0.05 at the batch of 64 that `lr` here belongs to, by the
# linear scaling rule PYSKL's README prescribes), cosine annealing to 0 (PYSKL anneals per
# iteration, this per epoch), 16 epochs of a 5x repeated training set (80 passes), validation
# every 16th of the run (5 passes). UniformSample(clip_len=100): the whole clip, resampled to
# 100 frames (PYSKL draws one random frame per segment in training; here training and
# validation resample linearly, without that jitter), no rotation, one clip at validation.
_PYSKL = {
    "optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4, "momentum": 0.9, "nesterov": True,
    "lr_schedule": "cosine", "lr_steps": [], "lr_gamma": 0.1, "epochs": 80, "val_interval": 5,
    "train_min_ratio": 1.0, "train_max_ratio": 1.0, "min_len": 1, "val_clip_ratio": 1.0,
    "rotate": 0.0, "decay_mult": {},
}  # fmt: skip
RECIPES["stgcnpp"] = _PYSKL
RECIPES["ctrgcn"] = dict(_PYSKL)

# The TrainConfig fields a recipe provides (None in TrainConfig = "use the recipe").
RECIPE_FIELDS = (*RECIPES["hcn"], "clip_len")

# Moved to skelact.config (the typed settings); still importable from here.
_MOVED = ("TrainConfig", "apply_overrides", "resolve_config")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import skelact.config

        return getattr(skelact.config, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def recipe_for(model: str) -> dict[str, Any]:
    """A fresh copy of the reference defaults for ``model`` (mutating it changes nothing)."""
    if model not in RECIPES:
        raise ValueError(f"unknown model {model!r}; expected one of {', '.join(RECIPES)}")
    from skelact.models import default_clip_len

    recipe = {
        k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
        for k, v in RECIPES[model].items()
    }
    recipe["clip_len"] = default_clip_len(model)
    return recipe
