"""Two-Stream CNN (Li et al., "Skeleton-based action recognition with convolutional neural
networks", ICMEW 2017), as configured in SkelAct.

Each person's sequence is mapped by a learned joint transform (25 -> 30 "virtual joints") and
convolved over (time, joint); a position stream sees coordinates, a motion stream their
frame-to-frame differences. The streams are concatenated, convolved twice more, merged over
persons with a max and classified by two fully connected layers.
"""

from __future__ import annotations

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
from skelact.models.registry import Dims, register_model

#: Own key -> SkelAct/MMAction2 key (the reference numbers its ``nn.Sequential`` children).
KEY_MAP = (
    (r"^backbone\.position\.transform\.weight$", "backbone.net_l.0.trans_mat"),
    (r"^backbone\.motion\.transform\.weight$", "backbone.net_m.0.trans_mat"),
    (r"^backbone\.position\.conv\.", "backbone.net_l.1."),
    (r"^backbone\.motion\.conv\.", "backbone.net_m.1."),
    (r"^backbone\.(fc\d)\.linear\.", r"backbone.\1.0."),
    (r"^backbone\.(fc\d)\.act\.", r"backbone.\1.1."),
    (r"^head\.fc\.", "cls_head.fc."),
)


class JointTransform(nn.Module):
    """Right-multiplies the joint axis by a learned ``V_in x V_out`` matrix (orthogonal init)."""

    def __init__(self, in_joints: int, out_joints: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_joints, out_joints))
        nn.init.orthogonal_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, self.weight)

    def extra_repr(self) -> str:
        return f"in_joints={self.weight.shape[0]}, out_joints={self.weight.shape[1]}"


class TwoStreamBranch(nn.Sequential):
    """Joint transform, 3x3 conv (no padding over joints), 2x2 max pool, dropout."""

    def __init__(
        self, in_channels: int, out_channels: int, in_joints: int, out_joints: int, dropout: float
    ) -> None:
        super().__init__()
        self.transform = JointTransform(in_joints, out_joints)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=(1, 0))
        self.pool = nn.MaxPool2d(2, stride=2)
        self.drop = Dropout(dropout)


def _conv_pool_prelu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=(1, 0)),
        nn.MaxPool2d(2, stride=2),
        nn.PReLU(init=0.1),
    )


class TSCNN(nn.Module):
    """Two-Stream CNN backbone: ``N x C x T x V x M`` -> ``N x 128`` features."""

    def __init__(
        self,
        in_channels: int = 3,
        num_joints: int = NTU25.num_joints,
        clip_len: int = 32,
        num_persons: int = 2,
        transformed_joints: int = 30,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_persons = num_persons
        self.position = TwoStreamBranch(in_channels, 64, num_joints, transformed_joints, dropout)
        self.motion = TwoStreamBranch(in_channels, 64, num_joints, transformed_joints, dropout)
        self.conv3 = _conv_pool_prelu(128, 128)
        self.drop3 = Dropout(dropout)
        self.conv4 = _conv_pool_prelu(128, 256)
        self.drop4 = Dropout(dropout)
        # Each unpadded 3-wide conv trims 2 joints and each pool halves (time and joints).
        width = transformed_joints
        for _ in range(3):
            width = (width - 2) // 2
        frames = clip_len // 8
        if width < 1 or frames < 1:
            raise ValueError(
                f"tscnn needs clip_len >= 8 and >= 18 transformed joints; got clip_len={clip_len}, "
                f"transformed_joints={transformed_joints}"
            )
        self.feature_dim = 256 * width * frames
        self.fc5 = LinearAct(self.feature_dim, 256, nn.PReLU(init=0.1), dropout)
        self.fc6 = LinearAct(256, 128, nn.PReLU(init=0.1))
        self.out_features = 128

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = persons_as_samples(x)
        out = torch.cat((self.position(x), self.motion(temporal_difference(x))), dim=1)
        out = self.drop3(self.conv3(out))
        out = self.conv4(out)
        out = self.drop4(max_over_persons(out, self.num_persons))
        return self.fc6(self.fc5(out))


@register_model(
    "tscnn", clip_len=32, options={"transformed_joints": 30, "dropout": 0.5}, key_map=KEY_MAP
)
def build_tscnn(dims: Dims, *, transformed_joints: int, dropout: float) -> Recognizer:
    """Two-Stream CNN recognizer with the reference initialisation."""
    backbone = TSCNN(
        dims.in_channels, dims.num_joints, dims.clip_len, dims.num_persons, transformed_joints,
        dropout,
    )  # fmt: skip
    return cnn_recognizer(backbone, dims.num_classes)
