"""Loading and exporting weights: the project's own checkpoints and SkelAct/MMAction2 ones.

Our modules use their own attribute names; SkelAct checkpoints use MMAction2's
(``backbone.net_l.0.weight``, ``cls_head.fc.bias``...). :func:`reference_key_map` gives, for a
built model, the one-to-one map between the two, so loading and exporting are exact renames
checked strictly: every key used, none missing, every shape equal, with errors that name the
offending keys.

A model whose conversion is more than a rename (e.g. fused convolutions) may define
``to_reference_state_dict(state) -> state`` and ``from_reference_state_dict(state) -> state``
methods; they are used instead of the rename rules. Models without rules or hooks use their own
keys as reference keys.
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

OWN_FORMAT = "skelact"
OWN_FORMAT_VERSION = 1
_MAX_LISTED = 12


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model (message names the keys)."""


def _stream_rules(ours: str, theirs: str, with_bn: bool) -> list[tuple[str, str]]:
    conv1 = f"backbone.{theirs}.0.0." if with_bn else f"backbone.{theirs}.0."
    return [
        (rf"^backbone\.{ours}\.conv1\.", conv1),
        (rf"^backbone\.{ours}\.bn1\.", f"backbone.{theirs}.0.1."),
        (rf"^backbone\.{ours}\.conv2\.", f"backbone.{theirs}.2."),
        (rf"^backbone\.{ours}\.conv3\.", f"backbone.{theirs}.4."),
        (rf"^backbone\.{ours}\.conv4\.", f"backbone.{theirs}.6."),
    ]


_HEAD = [(r"^head\.fc\.", "cls_head.fc.")]

# Own key prefix (regex) -> reference prefix; keys matching no rule are the same in both.
_RENAME_RULES: dict[str, list[tuple[str, str]]] = {
    "tscnn": [
        (r"^backbone\.position\.transform\.weight$", "backbone.net_l.0.trans_mat"),
        (r"^backbone\.motion\.transform\.weight$", "backbone.net_m.0.trans_mat"),
        (r"^backbone\.position\.conv\.", "backbone.net_l.1."),
        (r"^backbone\.motion\.conv\.", "backbone.net_m.1."),
        (r"^backbone\.(fc\d)\.linear\.", r"backbone.\1.0."),
        (r"^backbone\.(fc\d)\.act\.", r"backbone.\1.1."),
        *_HEAD,
    ],
    "hcn": [
        *_stream_rules("position", "net_l", False),
        *_stream_rules("motion", "net_m", False),
        (r"^backbone\.fc7\.linear\.", "backbone.fc7.0."),
        *_HEAD,
    ],
    "hcnb": [
        *_stream_rules("position", "net_l", True),
        *_stream_rules("motion", "net_m", True),
        (r"^backbone\.fc7\.linear\.", "backbone.fc7.0."),
        *_HEAD,
    ],
    "tacnn": [
        *_stream_rules("position", "net_l", True),
        *_stream_rules("motion", "net_m", True),
        *_HEAD,
    ],
}


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


def _rules_for(model: nn.Module) -> list[tuple[str, str]]:
    name = _model_name(model)
    if name in ("hcn", "hcnb"):
        # The BN switch changes the reference layout, whichever name built the model.
        with_bn = bool(model.skelact_spec["options"].get("with_bn"))
        name = "hcnb" if with_bn else "hcn"
    if name == "dgcn":
        return _dgcn_rules()
    return _RENAME_RULES.get(name or "", [])


def _dgcn_rules() -> list[tuple[str, str]]:
    """DGCN's module publishes reference-prefix -> own-prefix pairs (empty: same names)."""
    from skelact.models import dgcn

    pairs = getattr(dgcn, "dgcn_key_map", dict)()
    return [(rf"^{re.escape(own)}", ref.replace("\\", "\\\\")) for ref, own in pairs.items()]


def _rename(key: str, rules: list[tuple[str, str]]) -> str:
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
    state = model.state_dict()
    hook = getattr(model, "to_reference_state_dict", None)
    if callable(hook):
        return dict(hook(state))
    mapping = reference_key_map(model)
    return {mapping[k]: v for k, v in state.items()}


def _from_reference(model: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    hook = getattr(model, "from_reference_state_dict", None)
    if callable(hook):
        return dict(hook(state))
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
    state = _state_of(ckpt, path)
    own_keys = unwrap(model).state_dict().keys()
    if set(state) == set(own_keys) and set(own_keys) != set(to_mmaction_state_dict(model)):
        return load_own_state_dict(model, state, str(path))  # a bare own state dict
    return load_mmaction_state_dict(model, state, str(path))


def _head_classes(state: Mapping[str, torch.Tensor], path: Path) -> int:
    weight = state.get("cls_head.fc.weight")
    if weight is None:
        raise CheckpointError(f"{path}: no 'cls_head.fc.weight' to infer num_classes from")
    return int(weight.shape[0])


def build_from_checkpoint(path: str | os.PathLike, **overrides: Any) -> nn.Module:
    """Rebuild a model from a checkpoint and load its weights.

    Own checkpoints carry the model name and options (``overrides`` replace options).
    SkelAct/MMAction2 checkpoints need ``name=``; ``num_classes`` comes from the head weight.
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
        spec = ckpt.get("model")
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise CheckpointError(f"{path}: skelact checkpoint without a 'model' spec")
        if name is not None and name != spec["name"]:
            raise CheckpointError(f"{path} holds a {spec['name']!r} model, not {name!r}")
        options = {**dict(spec.get("options") or {}), **overrides}
        model = build_model(spec["name"], **options)
    else:
        if name is None:
            raise CheckpointError(
                f"{path} is a SkelAct/MMAction2 checkpoint, which does not record its model name: "
                f"give it (--model on the command line, name=... in Python), one of "
                f"{', '.join(MODEL_NAMES)}"
            )
        state = _state_of(ckpt, path)
        overrides.setdefault("num_classes", _head_classes(state, path))
        model = build_model(name, **overrides)
    return load_into(model, ckpt, path)


def export_mmaction_checkpoint(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``{'meta', 'state_dict'}`` with reference keys (loadable by SkelAct/MMAction2)."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in to_mmaction_state_dict(model).items()}
    spec = getattr(unwrap(model), "skelact_spec", {})
    payload = {"meta": {"skelact_model": spec.get("name")}, "state_dict": state}
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
        "model": {"name": spec["name"], "options": dict(spec["options"])},
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
