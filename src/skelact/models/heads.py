"""Classification heads."""

from __future__ import annotations

import torch
from torch import nn


class LinearHead(nn.Module):
    """A single linear classifier over the backbone features (SkelAct's ``CNNHead``).

    Initialised normal(0, ``init_std``) with zero bias, as in the reference.
    """

    def __init__(self, in_features: int, num_classes: int, init_std: float = 0.01) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)
        nn.init.normal_(self.fc.weight, 0.0, init_std)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)
