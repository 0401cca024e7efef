"""Pieces shared by the CNN recognizers: input reshaping, the recognizer shell, initialisation.

All SkelAct models take a batch laid out as ``N x C x T x V x M`` (samples, coordinates, frames,
joints, persons). The CNN family treats every person as its own sample and merges the persons
again with a max after the convolutional trunk, so the reshaping lives here once.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


def persons_as_samples(x: torch.Tensor) -> torch.Tensor:
    """``N x C x T x V x M`` -> ``(N*M) x C x T x V``, person-major within each sample.

    The order (sample, then person) matters: :func:`max_over_persons` undoes it with a view.
    """
    n, c, t, v, m = x.shape
    return x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v)


def max_over_persons(features: torch.Tensor, num_persons: int) -> torch.Tensor:
    """``(N*M) x ...`` -> ``N x D``: element-wise max over the persons of each sample.

    ``max(...).values`` (not ``amax``) so that the gradient goes to one person on ties, as in the
    reference.
    """
    flat = features.reshape(-1, num_persons, features[0].numel())
    return flat.max(dim=1).values


def temporal_difference(x: torch.Tensor) -> torch.Tensor:
    """Frame-to-frame motion of an ``... x C x T x V`` tensor, zero at the first frame.

    The two-stream models feed this to their motion stream; padding keeps the frame count.
    """
    return F.pad(x[:, :, 1:] - x[:, :, :-1], (0, 0, 1, 0))


def init_cnn_weights(module: nn.Module) -> None:
    """The reference initialisation of the CNN family (mmcv ``xavier_init`` / ``normal_init``).

    Conv2d: Xavier-uniform (gain 1), bias 0. Linear: normal(0, 0.01), bias 0. BatchNorm: weight 1,
    bias 0. Other parameters (PReLU slopes, joint transforms) keep their constructor values.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def set_memory_format(module: nn.Module, channels_last: bool = True) -> nn.Module:
    """Store every 4-d weight channels-last (or contiguous) in place; returns ``module``.

    A channels-last conv weight makes PyTorch run the conv, and hand on its output, in NHWC.
    On CPU (oneDNN) that makes these narrow skeleton convs about 1.3-2x faster (see
    benchmarks/models.py), and on CUDA it is the layout tensor cores want under autocast.
    Semantics and state-dict values are unchanged; only strides differ.
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return module.to(memory_format=fmt)


class Dropout(nn.Dropout):
    """``nn.Dropout`` whose CPU training mask comes from ``torch.rand`` instead of ``bernoulli_``.

    Why: on the CPU, ATen's ``bernoulli_`` draws the mask about 3x slower than ``rand_like``
    plus a comparison (13 ms vs 4 ms for a 64 x 64 x 16 x 14 activation on a 2-core AVX2
    machine), which made dropout 14 % of a Two-Stream CNN train step. The mask has the same law
    (each element kept with probability ``1 - p``, kept ones scaled by ``1 / (1 - p)``) and comes
    from the same seeded generator, so seeded and ``--deterministic`` runs repeat exactly; only the
    particular draws differ from ``nn.Dropout``'s. Evaluation, ``p = 0``, ``p = 1`` and other
    devices (CUDA's ``bernoulli_`` is fast) take ``nn.Dropout``'s own path.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.device.type != "cpu" or not 0.0 < self.p < 1.0 or self.inplace:
            return super().forward(x)
        keep = 1.0 - self.p
        # rand < keep, written as 1.0 / 0.0 into the same buffer, then scaled: one float mask.
        mask = torch.rand_like(x).lt_(keep).mul_(1.0 / keep)
        return x * mask


class LinearAct(nn.Sequential):
    """Linear layer + activation (+ dropout) under one name.

    Keeping the activation inside the block keeps its parameters under the same name prefix
    (``backbone.fc5.*``), which the reference recipes use for a per-layer weight decay.
    """

    def __init__(
        self, in_features: int, out_features: int, act: nn.Module, dropout: float = 0.0
    ) -> None:
        layers: dict[str, nn.Module] = {
            "linear": nn.Linear(in_features, out_features),
            "act": act,
        }
        if dropout > 0:
            layers["drop"] = Dropout(dropout)
        super().__init__(OrderedDict(layers))


class SqueezeExcitation(nn.Module):
    """Channel attention: global average pool, two 1x1 convs (ReLU, sigmoid), rescale the input.

    Same structure and module types as torchvision's layer used by the reference Ta-CNN (so the
    parameter names, shapes and the complexity counts agree), with optional bias-free convs.
    """

    def __init__(self, channels: int, squeeze_channels: int, bias: bool = True) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1, bias=bias)
        self.activation = nn.ReLU()
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1, bias=bias)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.avgpool(x)
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(scale))))
        return x * scale


def cnn_recognizer(backbone: nn.Module, num_classes: int) -> Recognizer:
    """The CNN family's closing steps: reference initialisation, linear head, channels-last."""
    from skelact.models.heads import LinearHead

    init_cnn_weights(backbone)
    head = LinearHead(backbone.out_features, num_classes)
    return set_memory_format(Recognizer(backbone, head))


class Recognizer(nn.Module):
    """A backbone that maps ``N x C x T x V x M`` to features, then a head to class logits.

    ``skelact_spec`` (set by :func:`skelact.models.build_model`) records how to rebuild it.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.skelact_spec: dict = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))
