"""Ta-CNN (Xu et al., "Topology-aware convolutional neural network for efficient skeleton-based
action recognition", AAAI 2022).

The HCN-Baseline trunk with its temporal conv (conv2) and joint co-occurrence conv (conv3)
replaced by cross-channel feature augmentation blocks: a 1x1 projection, squeeze-excitation,
a dual grouped conv (grouped k x k plus grouped 1x1 with half the groups) and a 1x1 projection
back. On the joint axis the groups act as the paper's virtual-part aggregation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from skelact.layouts import NTU25
from skelact.models.common import Recognizer, SqueezeExcitation, cnn_recognizer
from skelact.models.hcn import HCN, HEAD_KEY_MAP, HCNStream, stream_key_map
from skelact.models.registry import Dims, register_model

#: Own key -> reference key: the HCN-Baseline stream layout (BN on), no fc7.
KEY_MAP = (*stream_key_map(with_bn=True), *HEAD_KEY_MAP)


class DualGroupConv(nn.Module):
    """Sum of two ReLU'd grouped convs: k x k with ``groups`` and 1x1 with ``groups // 2``."""

    def __init__(
        self,
        channels: int,
        kernel_size: int | tuple[int, int],
        padding: int | tuple[int, int],
        groups: int,
    ) -> None:
        super().__init__()
        if groups % 2 or channels % groups:
            raise ValueError(
                f"groups must be even and divide the channels; got groups={groups}, "
                f"channels={channels}"
            )
        self.conv1 = nn.Conv2d(
            channels, channels, kernel_size, padding=padding, groups=groups, bias=False
        )
        self.conv2 = nn.Conv2d(channels, channels, 1, groups=groups // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv1(x), inplace=True) + F.relu(self.conv2(x), inplace=True)


class CrossChannelAugment(nn.Module):
    """1x1 in (ReLU) -> squeeze-excitation -> dual grouped conv -> 1x1 out (ReLU).

    The inner width is ``out_channels`` rounded down to a multiple of ``groups``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        padding: int | tuple[int, int],
        groups: int,
        squeeze_factor: int = 1,
    ) -> None:
        super().__init__()
        inter = (out_channels // groups) * groups
        if inter == 0:
            raise ValueError(f"groups={groups} exceeds the block width {out_channels}")
        self.map1 = nn.Conv2d(in_channels, inter, 1, bias=False)
        self.attend = SqueezeExcitation(inter, inter // squeeze_factor, bias=False)
        self.group = DualGroupConv(inter, kernel_size, padding, groups)
        self.map2 = nn.Conv2d(inter, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.attend(F.relu(self.map1(x), inplace=True))
        return F.relu(self.map2(self.group(out)), inplace=True)


class TaCNNStream(HCNStream):
    """One Ta-CNN stream: an HCN-Baseline stream (BN on) whose temporal conv (conv2) and joint
    conv (conv3) are cross-channel augmented group convolutions, the topology-aware part.
    ``B x C x T x V`` -> ``B x 64 x T/4 x 8``; weights are initialised by the backbone."""

    def __init__(
        self,
        in_channels: int,
        num_joints: int,
        groups: Sequence[int],
        squeeze_factor: int,
        dropout: float,
        out_channels: int = 64,
    ) -> None:
        super().__init__(in_channels, num_joints, True, dropout, out_channels)
        inter = out_channels // 2
        self.conv2 = CrossChannelAugment(
            out_channels, inter, (3, 1), (1, 0), groups[0], squeeze_factor
        )
        self.conv3 = CrossChannelAugment(num_joints, inter, 3, 1, groups[1], squeeze_factor)


class TaCNN(HCN):
    """Ta-CNN backbone: the HCN-Baseline trunk (BN, temporal mean) with Ta-CNN streams."""

    def __init__(
        self,
        in_channels: int = 3,
        num_joints: int = NTU25.num_joints,
        clip_len: int = 64,
        num_persons: int = 2,
        groups: Sequence[int] = (10, 6),
        squeeze_factor: int = 1,
        dropout: float = 0.5,
    ) -> None:
        if len(groups) != 2:
            raise ValueError(f"groups must be two numbers (conv2, conv3), got {groups!r}")
        self._groups = tuple(int(g) for g in groups)
        self._squeeze_factor = squeeze_factor
        super().__init__(
            in_channels, num_joints, clip_len, num_persons, with_bn=True, reduce="mean",
            dropout=dropout,
        )  # fmt: skip

    def _make_stream(
        self, in_channels: int, num_joints: int, with_bn: bool, dropout: float
    ) -> nn.Module:
        return TaCNNStream(in_channels, num_joints, self._groups, self._squeeze_factor, dropout)


@register_model(
    "tacnn",
    clip_len=64,
    options={"groups": (10, 6), "squeeze_factor": 1, "dropout": 0.5},
    key_map=KEY_MAP,
)
def build_tacnn(
    dims: Dims, *, groups: Sequence[int], squeeze_factor: int, dropout: float
) -> Recognizer:
    """Ta-CNN recognizer with the reference initialisation (SE convs included in Xavier init)."""
    backbone = TaCNN(
        dims.in_channels, dims.num_joints, dims.clip_len, dims.num_persons, groups,
        squeeze_factor, dropout,
    )  # fmt: skip
    return cnn_recognizer(backbone, dims.num_classes)
