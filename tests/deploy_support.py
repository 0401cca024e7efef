"""Shared fixtures of the deploy tests: each model exported once per session.

Used by tests/test_deploy*.py and tests/test_stream.py through `shared_exports` (the conftest
belongs to no single area). Exports come from the reference parity checkpoints
(SkelAct/MMAction2 format) and from own-format checkpoints holding the same weights, so both
kinds must reproduce the reference logits.
"""

from __future__ import annotations

from pathlib import Path

from skelact.deploy.export import export_onnx
from skelact.models import build_model, load_checkpoint
from skelact.models.checkpoint import save_own_checkpoint

#: val_clip_ratio stored in the own checkpoints' training config (not the recipe's 0.9 / 0.95),
#: so that the test sees it travel into the ONNX metadata.
OWN_CLIP_RATIO = 0.93


class Exports:
    """``exports[kind, model] -> {'onnx', 'checkpoint', 'result'}``, kind 'reference' or 'own';
    each exported on first use, once per session."""

    def __init__(self, reference_dir: Path, root: Path) -> None:
        self.reference_dir = reference_dir
        self.root = root
        self.cache: dict[tuple[str, str], dict] = {}

    def checkpoint(self, kind: str, name: str) -> Path:
        ref_ckpt = self.reference_dir / "parity" / f"{name}_ckpt.pth"
        if kind == "reference":
            return ref_ckpt
        own_ckpt = self.root / f"{name}_own.pt"
        if not own_ckpt.exists():
            net = load_checkpoint(build_model(name), ref_ckpt)
            save_own_checkpoint(net, own_ckpt, config={"val_clip_ratio": OWN_CLIP_RATIO})
        return own_ckpt

    def __getitem__(self, key: tuple[str, str]) -> dict:
        if key not in self.cache:
            kind, name = key
            ckpt = self.checkpoint(kind, name)
            path = self.root / f"{name}_{kind}.onnx"
            result = export_onnx(ckpt, path, model=name if kind == "reference" else None)
            self.cache[key] = {"onnx": path, "checkpoint": ckpt, "result": result}
        return self.cache[key]


_SESSION: dict[str, Exports] = {}


def shared_exports(reference_dir: Path, tmp_path_factory) -> Exports:
    """The session's one `Exports` (each test file wraps it in its own session fixture)."""
    if "exports" not in _SESSION:
        _SESSION["exports"] = Exports(reference_dir, tmp_path_factory.mktemp("onnx"))
    return _SESSION["exports"]
