"""The five SkelAct recognizers, built by name.

``build_model('hcn', num_classes=120)`` returns an ``nn.Module`` mapping ``N x C x T x V x M``
float32 skeletons to ``N x num_classes`` logits. Each model file registers its builder with
:func:`~skelact.models.registry.register_model` (default clip length, own options, checkpoint
key map beside the model); importing this package imports them, in the registry's order.
"""

from __future__ import annotations

from typing import Any

from torch import nn

# isort: off
# Each model module registers itself on import; this order is the registry's (and every table's).
from skelact.models import tscnn, hcn, tacnn, dgcn  # noqa: F401

# isort: on
from skelact.models.checkpoint import (
    CheckpointError,
    build_from_checkpoint,
    check_finite_state_dict,
    export_mmaction_checkpoint,
    load_checkpoint,
    reference_key_map,
    to_mmaction_state_dict,
)
from skelact.models.registry import DIM_NAMES, Dims, ModelError, entry, model_names

__all__ = [
    "MODEL_NAMES",
    "CheckpointError",
    "ModelError",
    "build_from_checkpoint",
    "build_model",
    "check_finite_state_dict",
    "default_clip_len",
    "export_mmaction_checkpoint",
    "load_checkpoint",
    "model_options",
    "reference_key_map",
    "to_mmaction_state_dict",
]

#: Registered names, in registration order: tscnn, hcn, hcnb, tacnn, dgcn.
MODEL_NAMES: tuple[str, ...] = model_names()


def default_clip_len(name: str) -> int:
    """Frames per clip the reference trains and tests ``name`` with (32 tscnn, 64 others)."""
    return entry(name).clip_len


def model_options(name: str) -> dict[str, Any]:
    """The model-specific keyword options of ``name`` and their defaults (for help texts)."""
    return dict(entry(name).options)


def _plain(value: Any) -> Any:
    """Tuples -> lists so that specs survive ``weights_only`` loading, JSON and YAML alike."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def build_model(name: str, *, clip_len: int | None = None, **options: Any) -> nn.Module:
    """Build recognizer ``name`` with the reference initialisation.

    ``options`` are the shared sizes (``num_classes``, ``num_joints``, ``num_persons``,
    ``in_channels``; ``clip_len=None`` means :func:`default_clip_len`) and the model's own
    options (:func:`model_options`). An unknown option raises :class:`ModelError` (a typo must
    not silently train the default model). The result carries ``skelact_spec = {'name',
    'options'}`` with every option resolved, so checkpoints can rebuild it.
    """
    spec = entry(name)
    unknown = sorted(k for k in options if k not in DIM_NAMES and k not in spec.options)
    if unknown:
        accepted = ", ".join(spec.options) or "none"
        raise ModelError(
            f"unknown option(s) for model {name!r}: {', '.join(unknown)} (accepted: {accepted})"
        )
    dims = Dims(
        clip_len=spec.clip_len if clip_len is None else clip_len,
        **{k: v for k, v in options.items() if k in DIM_NAMES},
    )
    own = {**spec.options, **{k: v for k, v in options.items() if k in spec.options}}
    model = spec.builder(dims, **own)
    resolved = {k: getattr(dims, k) for k in DIM_NAMES}
    model.skelact_spec = {"name": name, "options": _plain({**resolved, **own})}
    return model
