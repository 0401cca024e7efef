"""The five SkelAct recognizers and the PYSKL baselines (ST-GCN++, CTR-GCN), built by name.

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
from skelact.models import tscnn, hcn, tacnn, dgcn, stgcnpp, ctrgcn  # noqa: F401

# isort: on
from skelact.layouts import NTU25, is_builtin, layout_to_dict
from skelact.models.checkpoint import (
    CheckpointError,
    build_from_checkpoint,
    check_finite_state_dict,
    export_mmaction_checkpoint,
    load_checkpoint,
    reference_key_map,
    to_mmaction_state_dict,
)
from skelact.models.registry import (
    DIM_NAMES,
    Dims,
    LayoutLike,
    ModelError,
    entry,
    model_names,
    resolve_layout,
)

__all__ = [
    "MODEL_NAMES",
    "CheckpointError",
    "LayoutLike",
    "ModelError",
    "build_from_checkpoint",
    "build_model",
    "built_layout",
    "check_finite_state_dict",
    "default_clip_len",
    "export_mmaction_checkpoint",
    "load_checkpoint",
    "model_options",
    "reference_key_map",
    "resolve_layout",
    "to_mmaction_state_dict",
]

#: Registered names, in registration order: tscnn, hcn, hcnb, tacnn, dgcn, stgcnpp, ctrgcn.
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


def build_model(
    name: str,
    *,
    clip_len: int | None = None,
    layout: LayoutLike = NTU25.name,
    num_joints: int | None = None,
    **options: Any,
) -> nn.Module:
    """Build recognizer ``name`` with the reference initialisation.

    ``options`` are the shared sizes (``num_classes``, ``num_persons``, ``in_channels``: 2 or 3
    coordinates, plus one for a score channel) and the model's own options
    (:func:`model_options`). ``clip_len=None`` means :func:`default_clip_len`; ``layout`` is a
    built-in name, a layout YAML path, a layout mapping or a ``Layout``, and ``num_joints=None``
    means its joint count (DGCN refuses any other; the CNNs only need the count). An unknown
    option raises :class:`ModelError` (a typo must not silently train the default model).

    The result carries ``skelact_spec = {'name', 'options'}`` with every option resolved
    (``options['layout']`` is the layout's name), so checkpoints can rebuild it. A layout that is
    not exactly a built-in (a user's file) is also kept whole as ``skelact_spec['layout']``
    (:func:`skelact.layouts.layout_to_dict`), so the model rebuilds where that file is absent.
    """
    spec = entry(name)
    unknown = sorted(k for k in options if k not in DIM_NAMES and k not in spec.options)
    if unknown:
        accepted = ", ".join(spec.options) or "none"
        raise ModelError(
            f"unknown option(s) for model {name!r}: {', '.join(unknown)} (accepted: {accepted})"
        )
    skeleton = resolve_layout(layout)
    dims = Dims(
        clip_len=spec.clip_len if clip_len is None else clip_len,
        num_joints=skeleton.num_joints if num_joints is None else num_joints,
        layout=skeleton,
        **{k: v for k, v in options.items() if k in DIM_NAMES},
    )
    own = {**spec.options, **{k: v for k, v in options.items() if k in spec.options}}
    model = spec.builder(dims, **own)
    resolved = {k: getattr(dims, k) for k in DIM_NAMES} | {"layout": skeleton.name}
    model.skelact_spec = {"name": name, "options": _plain({**resolved, **own})}
    if not is_builtin(skeleton):
        model.skelact_spec["layout"] = layout_to_dict(skeleton)
    return model


def built_layout(model: nn.Module) -> Any:
    """The :class:`~skelact.layouts.Layout` a model from :func:`build_model` was built on
    (NTU's 25 joints for a model without a spec): what its input's joints are, and so what a
    bone stream subtracts."""
    spec = getattr(model, "skelact_spec", None) or {}
    stored = spec.get("layout") or (spec.get("options") or {}).get("layout")
    return NTU25 if stored is None else resolve_layout(stored)
