"""HCN (Li et al., "Co-occurrence feature learning from skeleton data for action recognition and
detection with hierarchical aggregation", IJCAI 2018) and SkelAct's HCN-Baseline.

Per stream (position and motion): a point-level 1x1 conv, a temporal 3x1 conv, then the joint
axis is moved into the channels so that the next convs aggregate all joints at once
("co-occurrence"). HCN flattens the final map into a fully connected layer; HCN-Baseline adds a
BatchNorm after the first conv and averages over time instead. Ta-CNN (tacnn.py) reuses the trunk.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import nn

from skelact.layouts import NTU25
from skelact.models.common import (
    Dropout,
    LinearAct,
    Recognizer,
    cnn_recognizer,
    max_over_persons,
    persons_as_samples,
    temporal_difference,
)
from skelact.models.registry import Dims, KeyRules, register_model

Reduce = Literal["flatten", "mean"]


def stream_key_map(with_bn: bool) -> KeyRules:
    """Own stream keys -> the reference's numbered ``net_l``/``net_m`` Sequentials.

    With a BatchNorm the reference nests conv1 and its norm in a Sequential of their own
    (``net_l.0.0``, ``net_l.0.1``), which shifts nothing else; Ta-CNN shares this layout.
    """
    rules: list[tuple[str, str]] = []
    for ours, theirs in (("position", "net_l"), ("motion", "net_m")):
        conv1 = f"backbone.{theirs}.0.0." if with_bn else f"backbone.{theirs}.0."
        rules += [
            (rf"^backbone\.{ours}\.conv1\.", conv1),
            (rf"^backbone\.{ours}\.bn1\.", f"backbone.{theirs}.0.1."),
            (rf"^backbone\.{ours}\.conv2\.", f"backbone.{theirs}.2."),
            (rf"^backbone\.{ours}\.conv3\.", f"backbone.{theirs}.4."),
            (rf"^backbone\.{ours}\.conv4\.", f"backbone.{theirs}.6."),
        ]
    return rules


HEAD_KEY_MAP: KeyRules = ((r"^head\.fc\.", "cls_head.fc."),)


def hcn_key_map(options: Mapping[str, Any]) -> KeyRules:
    """The key map of an HCN built with ``options`` (the BN switch changes the layout)."""
    return (
        *stream_key_map(bool(options["with_bn"])),
        (r"^backbone\.fc7\.linear\.", "backbone.fc7.0."),
        *HEAD_KEY_MAP,
    )


class JointsToChannels(nn.Module):
    """``B x C x T x V`` -> ``B x V x T x C``: joints become channels, coordinates an axis."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 2, 1)


class HCNStream(nn.Module):
    """One HCN stream: ``B x C x T x V`` -> ``B x 64 x T/4 x 8``."""

    def __init__(
        self, in_channels: int, num_joints: int, with_bn: bool, dropout: float, out_channels=64
    ) -> None:
        super().__init__()
        inter = out_channels // 2
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1, bias=not with_bn)
        self.bn1 = nn.BatchNorm2d(out_channels) if with_bn else nn.Identity()
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, inter, (3, 1), padding=(1, 0))
        self.transpose = JointsToChannels()
        self.conv3 = nn.Conv2d(num_joints, inter, 3, padding=1)
        self.pool3 = nn.MaxPool2d(2, stride=2)
        self.conv4 = nn.Conv2d(inter, out_channels, 3, padding=1)
        self.pool4 = nn.MaxPool2d(2, stride=2)
        self.drop4 = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool3(self.conv3(self.transpose(x)))
        return self.drop4(self.pool4(self.conv4(x)))


class HCN(nn.Module):
    """HCN backbone: two streams, two joint convs, person max, optional fc7.

    Output: ``N x 256`` (``reduce='flatten'``, through fc7) or ``N x 512`` (``reduce='mean'``:
    time-averaged 256 x 2 map, no fc7).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_joints: int = NTU25.num_joints,
        clip_len: int = 64,
        num_persons: int = 2,
        with_bn: bool = False,
        reduce: Reduce = "flatten",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if reduce not in ("flatten", "mean"):
            raise ValueError(f"reduce must be 'flatten' or 'mean', got {reduce!r}")
        self.reduce = reduce
        self.num_persons = num_persons
        self.position = self._make_stream(in_channels, num_joints, with_bn, dropout)
        self.motion = self._make_stream(in_channels, num_joints, with_bn, dropout)
        self.conv5 = nn.Sequential(
            nn.Conv2d(128, 128, 3, padding=1), nn.MaxPool2d(2, stride=2), nn.ReLU(inplace=True)
        )
        self.drop5 = Dropout(dropout)
        self.conv6 = nn.Sequential(
            nn.Conv2d(128, 256, 3, padding=1), nn.MaxPool2d(2, stride=2), nn.ReLU(inplace=True)
        )
        self.drop6 = Dropout(dropout)
        # The coordinate axis is 32 wide after conv2 and halved by four pools: 2.
        width = 2
        if reduce == "flatten":
            frames = clip_len // 16
            if frames < 1:
                raise ValueError(f"hcn with reduce='flatten' needs clip_len >= 16, got {clip_len}")
            self.fc7: nn.Module | None = LinearAct(
                256 * width * frames, 256, nn.ReLU(inplace=True), dropout
            )
            self.out_features = 256
        else:
            self.fc7 = None
            self.out_features = 256 * width

    def _make_stream(
        self, in_channels: int, num_joints: int, with_bn: bool, dropout: float
    ) -> nn.Module:
        return HCNStream(in_channels, num_joints, with_bn, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = persons_as_samples(x)
        out = torch.cat((self.position(x), self.motion(temporal_difference(x))), dim=1)
        out = self.drop5(self.conv5(out))
        out = self.conv6(out)
        if self.reduce == "mean":
            out = out.mean(dim=2)
        out = self.drop6(max_over_persons(out, self.num_persons))
        if self.fc7 is not None:
            out = self.fc7(out)
        return out


def _build(dims: Dims, *, with_bn: bool, reduce: Reduce, dropout: float) -> Recognizer:
    backbone = HCN(
        dims.in_channels, dims.num_joints, dims.clip_len, dims.num_persons, with_bn, reduce,
        dropout,
    )  # fmt: skip
    return cnn_recognizer(backbone, dims.num_classes)


@register_model(
    "hcn",
    clip_len=64,
    options={"with_bn": False, "reduce": "flatten", "dropout": 0.5},
    key_map=hcn_key_map,
)
def build_hcn(dims: Dims, **options: Any) -> Recognizer:
    """HCN recognizer (defaults: the paper's HCN) with the reference initialisation."""
    return _build(dims, **options)


@register_model(
    "hcnb",
    clip_len=64,
    options={"with_bn": True, "reduce": "mean", "dropout": 0.5},
    key_map=hcn_key_map,
)
def build_hcnb(dims: Dims, **options: Any) -> Recognizer:
    """HCN-Baseline: HCN with a BatchNorm after conv1 and temporal averaging instead of fc7."""
    return _build(dims, **options)
