"""skelact's CPU dropout: the law of nn.Dropout, seeded repeatability, and where it is used."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from skelact.models import build_model
from skelact.models.common import Dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_keeps_each_element_with_probability_one_minus_p_and_rescales(p: float) -> None:
    torch.manual_seed(0)
    x = torch.rand(200_000) + 0.5  # no zeros, so a zero in the output is a dropped element
    out = Dropout(p).train()(x)
    kept = out != 0
    share, n = kept.float().mean().item(), x.numel()
    assert abs(share - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)  # a 5-sigma band
    assert torch.equal(out[kept], x[kept] * (1.0 / (1 - p)))


def test_gradient_is_the_scaled_mask() -> None:
    torch.manual_seed(1)
    x = (torch.rand(64, 8, 16, 14) + 0.5).requires_grad_()
    out = Dropout(0.5).train()(x)
    out.sum().backward()
    assert torch.equal(x.grad, (out != 0).float() * 2.0)


def test_same_seed_same_mask_other_seed_other_mask_and_layout_kept() -> None:
    x = torch.randn(4, 16, 8, 6).to(memory_format=torch.channels_last)
    drop = Dropout(0.5).train()
    masks = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        masks.append(drop(x) != 0)
    assert torch.equal(masks[0], masks[1]) and not torch.equal(masks[0], masks[2])
    torch.manual_seed(3)
    assert drop(x).is_contiguous(memory_format=torch.channels_last)


def test_evaluation_and_the_edge_probabilities_are_nn_dropouts() -> None:
    x = torch.randn(3, 5)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))
    with pytest.raises(ValueError):
        Dropout(1.5)


@pytest.mark.parametrize(("name", "count"), [("tscnn", 5), ("hcn", 5), ("hcnb", 4), ("tacnn", 4)])
def test_the_cnn_models_use_it_everywhere(name: str, count: int) -> None:
    drops = [m for m in build_model(name).modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == count and all(type(m) is Dropout for m in drops)
