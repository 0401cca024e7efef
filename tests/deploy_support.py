"""Shared fixtures of the deploy tests: each model exported once per session.

Imported by tests/test_deploy*.py and tests/test_stream.py (the conftest belongs to no single
area). Exports come from the reference parity checkpoints (SkelAct/MMAction2 format) and from
own-format checkpoints holding the same weights, so both kinds must reproduce the reference
logits.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skelact.deploy.export import export_onnx
from skelact.models import MODEL_NAMES, build_model, load_checkpoint
from skelact.models.checkpoint import save_own_checkpoint

#: val_clip_ratio stored in the own checkpoints' training config (not the recipe's 0.9 / 0.95),
#: so that the test sees it travel into the ONNX metadata.
OWN_CLIP_RATIO = 0.93


@pytest.fixture(scope="session")
def exported(reference_dir: Path, tmp_path_factory) -> dict[tuple[str, str], dict]:
    """``(kind, model) -> {'onnx', 'checkpoint', 'result'}`` for kind 'reference' and 'own'."""
    root = tmp_path_factory.mktemp("onnx")
    out: dict[tuple[str, str], dict] = {}
    for name in MODEL_NAMES:
        ref_ckpt = reference_dir / "parity" / f"{name}_ckpt.pth"
        own_ckpt = root / f"{name}_own.pt"
        net = load_checkpoint(build_model(name), ref_ckpt)
        save_own_checkpoint(net, own_ckpt, config={"val_clip_ratio": OWN_CLIP_RATIO})
        for kind, ckpt, model in (("reference", ref_ckpt, name), ("own", own_ckpt, None)):
            path = root / f"{name}_{kind}.onnx"
            result = export_onnx(ckpt, path, model=model)
            out[kind, name] = {"onnx": path, "checkpoint": ckpt, "result": result}
    return out
