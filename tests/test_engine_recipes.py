"""Recipes as data: the reference table, overrides, LR scaling and the per-layer weight decay."""

from __future__ import annotations

import pytest

from skelact.engine.optim import effective_lr
from skelact.engine.recipes import TrainConfig, apply_overrides, recipe_for, resolve_config

# (clip_len, val ratio, rotate, optimizer, lr, wd, epochs, steps, val every) from TRAINING.md
TABLE = {
    "tscnn": (32, 0.9, 0.0, "adam", 1e-3, 1e-4, 500, [350, 430, 470], 5),
    "hcn": (64, 0.9, 0.0, "adam", 1e-3, 1e-4, 500, [350, 430, 470], 5),
    "hcnb": (64, 0.95, 0.1, "adam", 1e-3, 1e-4, 800, [650, 730, 770], 5),
    "tacnn": (64, 0.95, 0.1, "adam", 1e-3, 1e-4, 800, [650, 730, 770], 5),
    "dgcn": (64, 0.95, 0.1, "sgd", 0.1, 4e-4, 65, [35, 45, 55], 1),
}


@pytest.mark.parametrize("name", sorted(TABLE))
def test_recipe_matches_reference_table(name):
    r = recipe_for(name)
    got = (r["clip_len"], r["val_clip_ratio"], r["rotate"], r["optimizer"], r["lr"],
           r["weight_decay"], r["epochs"], r["lr_steps"], r["val_interval"])  # fmt: skip
    assert got == TABLE[name]
    assert (r["train_min_ratio"], r["train_max_ratio"], r["min_len"], r["lr_gamma"]) == (
        0.5, 1.0, 64, 0.1)  # fmt: skip
    if name == "dgcn":
        assert r["momentum"] == 0.9 and r["nesterov"] is True


def test_overrides_resolution_and_lr_scaling():
    cfg = resolve_config(apply_overrides(TrainConfig(model="hcn"), {"epochs": 7, "batch_size": 16}))
    assert cfg.epochs == 7 and cfg.clip_len == 64 and cfg.lr == 1e-3
    assert effective_lr(cfg) == pytest.approx(1e-3 * 16 / 64)
    cfg.scale_lr = False
    assert effective_lr(cfg) == 1e-3
    with pytest.raises(ValueError, match="unknown training option.*bogus"):
        apply_overrides(TrainConfig(), {"bogus": 1})
    with pytest.raises(ValueError, match="optimizer"):
        resolve_config(TrainConfig(model="hcn", optimizer="rmsprop"))
    with pytest.raises(ValueError, match="unknown model"):
        resolve_config(TrainConfig(model="resnet"))


def test_recipe_table_writes_shared_values_once():
    """hcnb/tacnn train identically; tscnn/hcn differ only in the boosted layer and clip length;
    the clip length is the model's own default (one source for train, test and export)."""
    from skelact.engine.recipes import RECIPES
    from skelact.models import default_clip_len

    assert RECIPES["hcnb"] == RECIPES["tacnn"]
    differ = {k for k in RECIPES["tscnn"] if RECIPES["tscnn"][k] != RECIPES["hcn"][k]}
    assert differ == {"decay_mult"}
    assert all("clip_len" not in recipe for recipe in RECIPES.values())
    assert all(recipe_for(m)["clip_len"] == default_clip_len(m) for m in RECIPES)


def test_trainable_models_are_the_registered_ones():
    from skelact.config import MODEL_NAMES
    from skelact.models import MODEL_NAMES as REGISTERED

    assert sorted(MODEL_NAMES) == sorted(REGISTERED)
