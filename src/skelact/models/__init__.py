"""The five SkelAct recognizers, built by name.

``build_model('hcn', num_classes=120)`` returns an ``nn.Module`` mapping ``N x C x T x V x M``
float32 skeletons to ``N x num_classes`` logits. Builders are imported lazily so that one broken
or heavy model module never stops the others from loading.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from skelact.models.checkpoint import (
    CheckpointError,
    build_from_checkpoint,
    export_mmaction_checkpoint,
    load_checkpoint,
    reference_key_map,
    to_mmaction_state_dict,
)

__all__ = [
    "MODEL_NAMES",
    "CheckpointError",
    "build_from_checkpoint",
    "build_model",
    "default_clip_len",
    "export_mmaction_checkpoint",
    "load_checkpoint",
    "model_options",
    "reference_key_map",
    "to_mmaction_state_dict",
]

MODEL_NAMES: tuple[str, ...] = ("tscnn", "hcn", "hcnb", "tacnn", "dgcn")

_BUILDERS: dict[str, tuple[str, str]] = {
    "tscnn": ("skelact.models.tscnn", "build_tscnn"),
    "hcn": ("skelact.models.hcn", "build_hcn"),
    "hcnb": ("skelact.models.hcn", "build_hcnb"),
    "tacnn": ("skelact.models.tacnn", "build_tacnn"),
    "dgcn": ("skelact.models.dgcn", "build_dgcn"),
}

_DEFAULT_CLIP_LEN: dict[str, int] = {"tscnn": 32, "hcn": 64, "hcnb": 64, "tacnn": 64, "dgcn": 64}

_COMMON = ("num_classes", "clip_len", "num_joints", "num_persons", "in_channels")


def _check_name(name: str) -> None:
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")


def default_clip_len(name: str) -> int:
    """Frames per clip the reference trains and tests ``name`` with (32 tscnn, 64 others)."""
    _check_name(name)
    return _DEFAULT_CLIP_LEN[name]


def _builder(name: str) -> Callable[..., nn.Module]:
    module_name, func_name = _BUILDERS[name]
    return getattr(importlib.import_module(module_name), func_name)


def model_options(name: str) -> dict[str, Any]:
    """The model-specific keyword options of ``name`` and their defaults (for help texts)."""
    _check_name(name)
    sig = inspect.signature(_builder(name))
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.name not in _COMMON and p.kind is not p.VAR_KEYWORD
    }


def _plain(value: Any) -> Any:
    """Tuples -> lists so that specs survive ``weights_only`` loading, JSON and YAML alike."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def build_model(
    name: str,
    *,
    num_classes: int = 60,
    clip_len: int | None = None,
    num_joints: int = 25,
    num_persons: int = 2,
    in_channels: int = 3,
    **model_options: Any,
) -> nn.Module:
    """Build recognizer ``name`` with the reference initialisation.

    ``clip_len=None`` means :func:`default_clip_len`. Unknown options raise ``ValueError`` (a
    typo must not silently train the default model). The result carries
    ``skelact_spec = {'name', 'options'}`` with every option resolved, so checkpoints can
    rebuild it.
    """
    _check_name(name)
    builder = _builder(name)
    kwargs = dict(
        num_classes=num_classes,
        clip_len=default_clip_len(name) if clip_len is None else clip_len,
        num_joints=num_joints,
        num_persons=num_persons,
        in_channels=in_channels,
        **model_options,
    )
    sig = inspect.signature(builder)
    params = sig.parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    unknown = sorted(k for k in model_options if k not in params)
    if unknown and not takes_any:
        accepted = ", ".join(k for k in params if k not in _COMMON) or "none"
        raise ValueError(
            f"unknown option(s) for model {name!r}: {', '.join(unknown)} (accepted: {accepted})"
        )
    model = builder(**kwargs)
    bound = sig.bind(**kwargs)
    bound.apply_defaults()
    resolved: dict[str, Any] = {}
    for key, value in bound.arguments.items():
        if params[key].kind is params[key].VAR_KEYWORD:
            resolved.update(value)
        else:
            resolved[key] = value
    model.skelact_spec = {"name": name, "options": _plain(resolved)}
    return model
