"""The optimizer and the learning-rate schedule of a training run, next to the loop that uses them.

The recipes (``engine.recipes``) are data; turning them into torch objects is the training loop's
business, so a reader of ``train.py`` finds every step of the optimisation within the engine.
"""

from __future__ import annotations

from typing import Any

import torch

from skelact.engine.safety import TrainingError


def effective_lr(config: Any) -> float:
    """The learning rate the optimizer uses: linear scaling of ``lr`` to the global batch.

    ``config.lr`` belongs to ``config.base_batch_size`` (the reference 2 GPUs x 32); with
    ``scale_lr`` a run at another global batch scales it proportionally.
    """
    lr = float(config.lr)
    if config.scale_lr and config.batch_size != config.base_batch_size:
        lr *= config.batch_size / config.base_batch_size
    return lr


def param_groups(
    model: torch.nn.Module, weight_decay: float, decay_mult: dict[str, float]
) -> list[dict]:
    """Parameter groups with the recipe's per-layer weight-decay multipliers.

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
        raise TrainingError(
            f"weight-decay multiplier key(s) {missing} match no parameter of the model "
            f"(names look like {[n for n, _ in named[:3]]})"
        )
    return [
        {"params": ps, "weight_decay": weight_decay * m, "decay_mult": m}
        for m, ps in sorted(groups.items())
    ]


def build_optimizer(model: torch.nn.Module, config: Any, lr: float) -> torch.optim.Optimizer:
    """Adam or SGD with classic L2 weight decay (not AdamW), as in the reference."""
    groups = param_groups(model, float(config.weight_decay), dict(config.decay_mult or {}))
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.SGD(
        groups, lr=lr, momentum=float(config.momentum), nesterov=bool(config.nesterov)
    )


def build_scheduler(optimizer: torch.optim.Optimizer, config: Any) -> Any:
    """Step schedule stepped once per epoch: lr x gamma after each epoch in ``lr_steps``."""
    return torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(config.lr_steps), gamma=float(config.lr_gamma)
    )
