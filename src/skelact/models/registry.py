"""The model registry: each model file registers its builder, defaults and checkpoint key map.

timm's shape: a ``@register_model(...)`` decorator beside the builder says everything the rest
of the project needs to know about a model (its default clip length, its own options with their
defaults, how its weight names map to SkelAct/MMAction2's), so adding a model is one file and
nothing here lists them. Builders receive the shared :class:`Dims` plus every option resolved;
:func:`skelact.models.build_model` does the resolving and checking once for all of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from torch import nn

from skelact.errors import SkelactError
from skelact.layouts import NTU25, Layout, get_layout, layout_from_dict

#: ``(own key regex, reference replacement)`` pairs, tried in order; first match wins and keys
#: matching no rule are named the same in both layouts.
KeyRules = Sequence[tuple[str, str]]


class ModelError(SkelactError, ValueError):
    """An unknown model name or option (a ``ValueError`` too, for callers that validate input)."""


@dataclass(frozen=True)
class Dims:
    """What every recognizer is sized by: the data's shape, its joint layout and the class count.

    ``in_channels`` is 2 or 3 coordinates, plus one when a keypoint score is fed as a channel.
    ``layout`` is the :class:`~skelact.layouts.Layout` object (so a user's layout file need not be
    found again); the model's spec records its name (:func:`skelact.models.build_model`). Only
    DGCN wires its graph from it; the CNNs are sized by ``num_joints`` alone.
    """

    num_classes: int = 60
    clip_len: int = 64
    num_joints: int = NTU25.num_joints
    num_persons: int = 2
    in_channels: int = 3
    layout: Layout = NTU25


DIM_NAMES: tuple[str, ...] = tuple(Dims.__dataclass_fields__)

#: What ``build_model(layout=...)`` accepts: a built-in name or a layout file's path, a layout
#: mapping (:func:`skelact.layouts.layout_to_dict`, as checkpoints keep it), or a ``Layout``.
LayoutLike: TypeAlias = str | os.PathLike[str] | Mapping[str, Any] | Layout


def resolve_layout(layout: LayoutLike) -> Layout:
    """The :class:`~skelact.layouts.Layout` behind any :data:`LayoutLike` (errors name it)."""
    if isinstance(layout, Layout):
        return layout
    if isinstance(layout, Mapping):
        return layout_from_dict(dict(layout), where=f"model layout {layout.get('name')!r}")
    return get_layout(layout)


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: how to build it and what it defaults to."""

    name: str
    builder: Callable[..., nn.Module]
    clip_len: int
    options: Mapping[str, Any] = field(default_factory=dict)
    key_map: KeyRules | Callable[[Mapping[str, Any]], KeyRules] = ()

    def key_rules(self, options: Mapping[str, Any]) -> KeyRules:
        """The rename rules for a model built with ``options`` (some layouts depend on them)."""
        return self.key_map(options) if callable(self.key_map) else self.key_map


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    clip_len: int,
    options: Mapping[str, Any] | None = None,
    key_map: KeyRules | Callable[[Mapping[str, Any]], KeyRules] = (),
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``builder(dims, **options)`` under ``name``.

    ``clip_len`` is the frames per clip the reference trains and tests the model with;
    ``options`` are the model's own keyword options with their defaults (the builder gets all of
    them, always); ``key_map`` renames own state-dict keys to the reference's (or is a function
    of the resolved options, for models whose layout depends on them).
    """

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelEntry(name, builder, clip_len, dict(options or {}), key_map)
        return builder

    return decorator


def model_names() -> tuple[str, ...]:
    """Registered names, in registration order."""
    return tuple(_REGISTRY)


def entry(name: str) -> ModelEntry:
    """The registration of ``name``; :class:`ModelError` listing the valid names otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ModelError(f"unknown model {name!r}; choose one of {', '.join(_REGISTRY)}") from None
