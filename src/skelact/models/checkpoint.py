"""Loading and exporting weights: the project's own checkpoints and SkelAct/MMAction2 ones.

Our modules use their own attribute names; SkelAct checkpoints use MMAction2's
(``backbone.net_l.0.weight``, ``cls_head.fc.bias``...). Each model file registers its rename
rules beside the model (``register_model(..., key_map=...)``); :func:`reference_key_map` applies
them to a built model's keys, giving the one-to-one map between the two, so loading and exporting
are exact renames checked strictly: every key used, none missing, every shape equal, with errors
that name the offending keys.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from skelact.atomic import atomic_write
from skelact.errors import SkelactError
from skelact.models.registry import KeyRules, entry

OWN_FORMAT = "skelact"
OWN_FORMAT_VERSION = 1
#: Keys of an exported SkelAct/MMAction2 checkpoint's ``meta`` that let it load without a name.
META_MODEL = "skelact_model"
META_OPTIONS = "skelact_options"
#: The whole layout of a model whose layout is not a built-in (a user's file), in ``meta`` too.
META_LAYOUT = "skelact_layout"
_MAX_LISTED = 12


class CheckpointError(SkelactError, ValueError):
    """A checkpoint that cannot be read or does not fit the model (message names the keys)."""


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside ``torch.compile`` / DDP wrappers (their keys carry prefixes)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        else:
            return model


def _model_name(model: nn.Module) -> str | None:
    spec = getattr(model, "skelact_spec", None) or {}
    return spec.get("name")


def _rules_for(model: nn.Module) -> KeyRules:
    spec = getattr(model, "skelact_spec", None) or {}
    if not spec.get("name"):
        return ()  # a model built outside the registry: its own keys are the reference keys
    return entry(spec["name"]).key_rules(spec.get("options") or {})


def _rename(key: str, rules: KeyRules) -> str:
    for pattern, repl in rules:
        new, count = re.subn(pattern, repl, key)
        if count:
            return new
    return key


def reference_key_map(model: nn.Module) -> dict[str, str]:
    """Own state-dict key -> SkelAct/MMAction2 key for this model (one to one).

    Also useful for recipes written in reference names (e.g. "x10 weight decay on
    ``backbone.fc5``").
    """
    model = unwrap(model)
    rules = _rules_for(model)
    mapping = {key: _rename(key, rules) for key in model.state_dict()}
    if len(set(mapping.values())) != len(mapping):
        raise RuntimeError(f"key mapping of {type(model).__name__} is not one to one")
    return mapping


def to_mmaction_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state under SkelAct/MMAction2 key names (what a reference checkpoint holds)."""
    model = unwrap(model)
    mapping = reference_key_map(model)
    return {mapping[k]: v for k, v in model.state_dict().items()}


def _from_reference(model: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    inverse = {ref: own for own, ref in reference_key_map(model).items()}
    return {inverse[k]: v for k, v in state.items()}


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    more = len(keys) - _MAX_LISTED
    return shown + (f" (and {more} more)" if more > 0 else "")


def check_state(
    expected: Mapping[str, torch.Tensor], given: Mapping[str, Any], source: str
) -> None:
    """Raise :class:`CheckpointError` unless ``given`` matches ``expected``'s keys and shapes."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    mismatched = [
        f"{k} (checkpoint {tuple(given[k].shape)}, model {tuple(expected[k].shape)})"
        for k in expected
        if k in given
        and (not isinstance(given[k], torch.Tensor) or given[k].shape != expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches: {_listing(mismatched)}")
    if problems:
        raise CheckpointError(f"{source} does not fit the model: " + "; ".join(problems))


def check_finite_state_dict(state_dict: Mapping[str, Any], source: str) -> None:
    """Raise :class:`CheckpointError` naming the first floating tensor holding NaN or inf.

    Weights like that come from a diverged run; predicting with them gives constant or NaN
    scores that look like a data problem, so callers check before using a checkpoint.
    """
    for key, value in state_dict.items():
        if (
            isinstance(value, torch.Tensor)
            and (value.is_floating_point() or value.is_complex())
            and not bool(torch.isfinite(value).all())
        ):
            bad = int((~torch.isfinite(value)).sum())
            raise CheckpointError(
                f"{source}: tensor {key!r} has {bad} non-finite value(s) (NaN or inf); "
                "the run that wrote it diverged"
            )


def load_mmaction_state_dict(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "state dict"
) -> nn.Module:
    """Load a state dict with SkelAct/MMAction2 keys, strictly."""
    target = unwrap(model)
    check_state(to_mmaction_state_dict(target), state, source)
    target.load_state_dict(_from_reference(target, state), strict=True)
    return model


def load_own_state_dict(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "state dict"
) -> nn.Module:
    """Load a state dict with this project's keys, strictly."""
    target = unwrap(model)
    check_state(target.state_dict(), state, source)
    target.load_state_dict(state, strict=True)
    return model


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` on CPU, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a dict, found {type(ckpt).__name__}")
    return ckpt


def is_own_checkpoint(ckpt: Mapping[str, Any]) -> bool:
    return ckpt.get("format") == OWN_FORMAT


def _state_of(ckpt: Mapping[str, Any], path: Path) -> Mapping[str, torch.Tensor]:
    state = ckpt.get("state_dict")
    if state is None and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        state = ckpt  # a bare state dict
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: no 'state_dict' in checkpoint (keys: {list(ckpt)})")
    return state


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load an own (``format='skelact'``) or SkelAct/MMAction2 checkpoint into ``model``.

    Strict: a wrong model name, missing/unexpected keys or shape mismatches raise
    :class:`CheckpointError` naming the file and keys. Returns ``model``.
    """
    path = Path(path)
    return load_into(model, read_checkpoint(path), path)


def load_into(model: nn.Module, ckpt: Mapping[str, Any], path: str | os.PathLike) -> nn.Module:
    """:func:`load_checkpoint` for a checkpoint dict already read from ``path``."""
    path = Path(path)
    if is_own_checkpoint(ckpt):
        version = ckpt.get("format_version")
        if version != OWN_FORMAT_VERSION:
            raise CheckpointError(f"{path}: unsupported skelact format_version {version!r}")
        saved = (ckpt.get("model") or {}).get("name")
        name = _model_name(unwrap(model))
        if saved and name and saved != name:
            raise CheckpointError(f"{path} holds a {saved!r} model, not {name!r}")
        return load_own_state_dict(model, _state_of(ckpt, path), str(path))
    meta = ckpt.get("meta") if isinstance(ckpt.get("meta"), Mapping) else {}
    saved, name = meta.get(META_MODEL), _model_name(unwrap(model))
    if saved and name and saved != name:
        raise CheckpointError(f"{path} holds a {saved!r} model, not {name!r}")
    state = _state_of(ckpt, path)
    own_keys = unwrap(model).state_dict().keys()
    if set(state) == set(own_keys) and set(own_keys) != set(to_mmaction_state_dict(model)):
        return load_own_state_dict(model, state, str(path))  # a bare own state dict
    return load_mmaction_state_dict(model, state, str(path))


#: Where a reference checkpoint keeps its classifier: SkelAct/MMAction2's heads, PYSKL's GCNHead.
_HEAD_WEIGHTS = ("cls_head.fc.weight", "cls_head.fc_cls.weight")


def _head_classes(state: Mapping[str, torch.Tensor], path: Path) -> int:
    weight = next((state[k] for k in _HEAD_WEIGHTS if k in state), None)
    if weight is None:
        raise CheckpointError(
            f"{path}: no {' or '.join(map(repr, _HEAD_WEIGHTS))} to infer num_classes from"
        )
    return int(weight.shape[0])


def build_from_checkpoint(path: str | os.PathLike, **overrides: Any) -> nn.Module:
    """Rebuild a model from a checkpoint and load its weights.

    Own checkpoints carry the model name and options (``overrides`` replace options), and so do
    SkelAct/MMAction2 checkpoints written by :func:`export_mmaction_checkpoint` (in ``meta``).
    Other SkelAct/MMAction2 checkpoints need ``name=``; ``num_classes`` comes from the head.
    """
    path = Path(path)
    return build_from_loaded(read_checkpoint(path), path, **overrides)


def build_from_loaded(
    ckpt: Mapping[str, Any], path: str | os.PathLike, **overrides: Any
) -> nn.Module:
    """:func:`build_from_checkpoint` for a checkpoint dict already read from ``path`` (callers
    that also need its training config or run id read the file once)."""
    from skelact.models import MODEL_NAMES, build_model

    path = Path(path)
    overrides = dict(overrides)
    name = overrides.pop("name", None)
    if is_own_checkpoint(ckpt):
        saved, options = build_options(ckpt, path)
        if name is not None and name != saved:
            raise CheckpointError(f"{path} holds a {saved!r} model, not {name!r}")
        stored = ckpt["model"].get("layout")
        model = build_model(saved, **_with_layout({**options, **overrides}, stored, path))
    else:
        meta = ckpt.get("meta") if isinstance(ckpt.get("meta"), Mapping) else {}
        saved = meta.get(META_MODEL)
        name = name or saved  # a different name is reported by load_into
        if name is None:
            raise CheckpointError(
                f"{path} is a SkelAct/MMAction2 checkpoint, which does not record its model name: "
                f"give it (--model on the command line, name=... in Python), one of "
                f"{', '.join(MODEL_NAMES)}"
            )
        state = _state_of(ckpt, path)
        options = {**dict(meta.get(META_OPTIONS) or {}), **overrides} if saved else overrides
        options.setdefault("num_classes", _head_classes(state, path))
        model = build_model(name, **_with_layout(options, meta.get(META_LAYOUT), path))
    return load_into(model, ckpt, path)


def build_options(ckpt: Mapping[str, Any], path: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """``(name, build options)`` of the model a skelact checkpoint holds (its layout included),
    for callers that build it afresh, e.g. at another clip length, without its weights."""
    spec = ckpt.get("model")
    if not is_own_checkpoint(ckpt) or not isinstance(spec, Mapping) or "name" not in spec:
        raise CheckpointError(f"{path}: skelact checkpoint without a 'model' spec")
    options = _with_layout(dict(spec.get("options") or {}), spec.get("layout"), Path(path))
    return str(spec["name"]), options


def _with_layout(options: dict[str, Any], stored: Any, path: Path) -> dict[str, Any]:
    """``options`` with the layout the model is rebuilt on.

    ``options['layout']`` is a name (absent in checkpoints from before layouts: NTU's 25 joints).
    A built-in name rebuilds from the built-in; a user's layout from the copy the checkpoint keeps
    (``stored``, see :func:`skelact.models.build_model`), never from a file of the same name that
    may have changed since. An override of ``layout`` (a name, path or mapping) wins.
    """
    if stored is None:
        return options
    if not isinstance(stored, Mapping):
        raise CheckpointError(
            f"{path}: the stored layout is a {type(stored).__name__}, not a mapping"
        )
    name = options.get("layout")
    if name is not None and name != stored.get("name"):
        return options  # overridden by the caller
    return {**options, "layout": stored}


def export_mmaction_checkpoint(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``{'meta', 'state_dict'}`` with reference keys (loadable by SkelAct/MMAction2).

    ``meta`` also records the model's name and options (:data:`META_MODEL`,
    :data:`META_OPTIONS`; MMAction2 ignores them) and a user layout (:data:`META_LAYOUT`), so
    :func:`build_from_checkpoint` rebuilds the model from the file alone.
    """
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in to_mmaction_state_dict(model).items()}
    spec = getattr(unwrap(model), "skelact_spec", None) or {}
    meta = {META_MODEL: spec.get("name"), META_OPTIONS: dict(spec.get("options") or {})}
    if spec.get("layout") is not None:
        meta[META_LAYOUT] = spec["layout"]
    payload = {"meta": meta, "state_dict": state}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path


def own_checkpoint(model: nn.Module, **extra: Any) -> dict[str, Any]:
    """The minimal own-format checkpoint dict for ``model`` (training state goes in ``extra``)."""
    target = unwrap(model)
    spec = getattr(target, "skelact_spec", None)
    if not spec:
        raise ValueError("model has no skelact_spec; build it with skelact.models.build_model")
    return {
        "format": OWN_FORMAT,
        "format_version": OWN_FORMAT_VERSION,
        # a user layout is kept whole beside the options (see skelact.models.build_model)
        "model": {
            "name": spec["name"],
            "options": dict(spec["options"]),
            **({"layout": spec["layout"]} if spec.get("layout") is not None else {}),
        },
        # on the CPU, so that a checkpoint written during GPU training loads anywhere
        "state_dict": {k: v.detach().cpu() for k, v in target.state_dict().items()},
        **extra,
    }


def save_own_checkpoint(model: nn.Module, path: str | os.PathLike, **extra: Any) -> Path:
    """Write :func:`own_checkpoint` atomically (temp file + rename)."""
    path = Path(path)
    payload = own_checkpoint(model, **extra)
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path
