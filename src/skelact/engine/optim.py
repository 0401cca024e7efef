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
    """Adam or SGD with classic L2 weight decay (not AdamW), as in the reference.

    The update runs in the fastest implementation that keeps the results: see `implementation`.
    """
    groups = param_groups(model, float(config.weight_decay), dict(config.decay_mult or {}))
    impl = implementation(model)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr, **impl)
    return torch.optim.SGD(
        groups, lr=lr, momentum=float(config.momentum), nesterov=bool(config.nesterov), **impl
    )


def implementation(model: torch.nn.Module) -> dict[str, bool]:
    """``fused`` on CUDA (one kernel for the whole update instead of several per parameter:
    the small models are launch-bound there), ``foreach`` on the CPU.

    On the CPU the foreach update is bit-identical to the per-parameter loop (checked in
    ``tests/test_train_fastpath.py``), while the fused CPU Adam rounds differently, so it is not
    used: ``--deterministic`` CPU runs keep their results. Parameters on several devices (not a
    case the training loop creates) keep torch's default.
    """
    kinds = {p.device.type for p in model.parameters()}
    if kinds == {"cuda"}:
        return {"fused": True}
    if kinds == {"cpu"}:
        return {"foreach": True}
    return {}


def use_implementation(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> None:
    """Re-select the update's implementation after ``load_state_dict``.

    A checkpoint's param groups carry the flags of the device that wrote it (``fused`` from a
    GPU run); resuming elsewhere must use this device's implementation, not that one.
    """
    impl = {"fused": None, "foreach": None, **implementation(model)}
    for group in optimizer.param_groups:
        group.update(impl)
        if not impl["fused"]:
            continue
        for param in group["params"]:  # the fused kernels keep the step count on the device
            state = optimizer.state.get(param, {})
            if torch.is_tensor(state.get("step")):
                state["step"] = state["step"].to(param.device, torch.float32)


def build_scheduler(optimizer: torch.optim.Optimizer, config: Any) -> Any:
    """The recipe's schedule, stepped once per epoch.

    ``step``: lr x gamma after each epoch in ``lr_steps`` (the SkelAct recipes). ``cosine``:
    half a cosine from the initial lr down to 0 over ``epochs`` (PYSKL's ``CosineAnnealing``
    with ``min_lr=0``, which PYSKL steps per iteration and this per epoch).
    """
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=int(config.epochs), eta_min=0.0
        )
    return torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(config.lr_steps), gamma=float(config.lr_gamma)
    )
