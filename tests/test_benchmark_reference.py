"""The benchmark's reference transcriptions compute what the reference models compute.

benchmarks/models.py times skelact's models against plain transcriptions of the reference
recognizers; a speed-up means something only if those transcriptions are the reference
computation, which the parity logits (produced by the reference code itself) prove.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

#: The five SkelAct models with reference vectors in ../shared/reference (PYSKL's two are
#: tested in test_pyskl_models.py).
SKELACT_FIVE = ("tscnn", "hcn", "hcnb", "tacnn", "dgcn")


def _load_reference_models():
    spec = importlib.util.spec_from_file_location(
        "benchmark_reference_models", ROOT / "benchmarks" / "reference_models.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


reference_models = _load_reference_models()


@pytest.mark.parametrize("name", SKELACT_FIVE)
def test_transcription_reproduces_reference_logits(reference_dir: Path, name: str) -> None:
    model = reference_models.build_reference(name)
    ckpt = torch.load(reference_dir / "parity" / f"{name}_ckpt.pth", weights_only=True)
    model.load_state_dict(ckpt["state_dict"], strict=True)  # the reference's own key names
    io = torch.load(reference_dir / "parity" / f"{name}_io.pt", weights_only=True)
    with torch.no_grad():
        logits = model.eval()(io["input"])
    assert float((logits - io["logits"]).norm() / io["logits"].norm()) < 1e-4


def test_transcription_trains_in_nchw() -> None:
    """The baseline keeps the reference's contiguous layout (no channels-last weights)."""
    model = reference_models.build_reference("hcn")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous() for c in convs)
