"""The recognizers under the runtimes training uses: autocast, compile, channels-last, CUDA."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from skelact.layouts import NTU25
from skelact.models import build_model, default_clip_len, load_checkpoint
from skelact.models.common import set_memory_format

CNNS = ("tscnn", "hcn", "hcnb", "tacnn")


def _reference(reference_dir: Path, name: str) -> tuple[torch.nn.Module, dict]:
    model = load_checkpoint(build_model(name), reference_dir / "parity" / f"{name}_ckpt.pth")
    io = torch.load(reference_dir / "parity" / f"{name}_io.pt", weights_only=True)
    return model.eval(), io


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.mark.parametrize("name", CNNS)
def test_bf16_autocast_on_cpu_stays_close(reference_dir: Path, name: str) -> None:
    model, io = _reference(reference_dir, name)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(io["input"])
    assert logits.dtype == torch.bfloat16
    assert _rel(logits, io["logits"]) < 0.05


@pytest.mark.parametrize("name", ["hcnb", "tacnn"])
def test_compiles_without_graph_breaks_and_matches_eager(name: str) -> None:
    """fullgraph=True fails on any graph break; aot_eager traces forward and backward without the
    minutes of C++ code generation (inductor itself runs in benchmarks/models.py and on GPU)."""
    torch.manual_seed(0)
    model = build_model(name).train()
    x = torch.randn(4, 3, default_clip_len(name), NTU25.num_joints, 2)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    torch.manual_seed(1)
    eager_out = model(x)
    eager_out.sum().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # same dropout masks
    compiled_out = compiled(x)
    compiled_out.sum().backward()
    torch._dynamo.reset()
    assert torch.allclose(compiled_out, eager_out, rtol=1e-4, atol=1e-6)
    for p, g in zip(model.parameters(), eager_grads, strict=True):
        assert torch.allclose(p.grad, g, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("name", CNNS)
def test_channels_last_weights_change_nothing_but_layout(reference_dir: Path, name: str) -> None:
    model, io = _reference(reference_dir, name)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    with torch.no_grad():
        nhwc = model(io["input"])
        nchw = set_memory_format(model, channels_last=False)(io["input"])
    assert all(c.weight.is_contiguous() for c in convs)
    assert _rel(nhwc, nchw) < 1e-5


@pytest.mark.parametrize("name", CNNS)
def test_persons_are_merged_symmetrically_and_samples_independently(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = torch.randn(3, 3, default_clip_len(name), NTU25.num_joints, 2)
    with torch.no_grad():
        out = model(x)
        swapped = model(x.flip(-1))
        alone = model(x[1:2])
    assert torch.allclose(out, swapped, rtol=1e-5, atol=1e-6)
    assert torch.allclose(out[1:2], alone, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", [*CNNS, "dgcn"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_forward_and_autocast(reference_dir: Path, name: str, dtype: torch.dtype) -> None:
    model, io = _reference(reference_dir, name)
    model = model.cuda()
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
        logits = model(io["input"].cuda())
    assert _rel(logits.cpu(), io["logits"]) < (1e-3 if dtype == torch.float32 else 0.05)
