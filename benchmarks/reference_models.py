"""The reference recognizers, transcribed in plain PyTorch for timing against skelact's models.

SkelAct's own model code (MMAction2 0.24 on mmcv 1.x) cannot run here, so this file restates
what it computes, layer by layer, in the reference's op order and memory layouts: NCHW
(contiguous) tensors, ``.contiguous()`` after every permute, the person loop-free
``N*M`` batching with motion built by ``cat``, DGCN's one matmul + one 1x1 conv per adjacency
subset, its attention as three successive rescalings, and a plain ``nn.Linear`` /
``nn.Conv2d`` head. Module names follow the reference state-dict keys (the TSVs in
``shared/reference/state_dicts``), so the parity checkpoints load as they are, and
``tests/test_benchmark_reference.py`` proves each transcription reproduces the reference's
logits (relative error < 1e-4). Nothing here is tuned: it is the baseline, not a model to use.

``build_reference(name)`` returns the recognizer with ``backbone`` and ``cls_head`` children.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from skelact.layouts import NTU25
from skelact.models.graph import ntu_adjacency

V = NTU25.num_joints


def _motion(x: torch.Tensor) -> torch.Tensor:
    """Frame differences with a zero first frame, built as the reference does (``x[:1] * 0``)."""
    return torch.cat((x[:, :, :1] * 0, x[:, :, 1:] - x[:, :, :-1]), dim=2)


def _persons_first(x: torch.Tensor) -> torch.Tensor:
    n, c, t, v, m = x.shape
    return x.permute(0, 4, 1, 2, 3).contiguous().view(-1, c, t, v)


class _Permute(nn.Module):
    def __init__(self, *dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(self.dims).contiguous()


class _JointMatmul(nn.Module):
    """Right-multiply the joint axis by ``trans_mat`` through a 2-d view (as the reference)."""

    def __init__(self, v_in: int, v_out: int) -> None:
        super().__init__()
        self.trans_mat = nn.Parameter(torch.empty(v_in, v_out))
        nn.init.orthogonal_(self.trans_mat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        return torch.matmul(x.reshape(-1, v), self.trans_mat).view(n, c, t, -1)


class _Recognizer(nn.Module):
    def __init__(self, backbone: nn.Module, cls_head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.cls_head = cls_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cls_head(self.backbone(x))


class _FcHead(nn.Module):
    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


# --- Two-Stream CNN ---------------------------------------------------------------------------


class _TSCNN(nn.Module):
    def __init__(self, clip_len: int) -> None:
        super().__init__()

        def stream() -> nn.Sequential:
            return nn.Sequential(
                _JointMatmul(V, 30), nn.Conv2d(3, 64, 3, padding=(1, 0)), nn.MaxPool2d(2, 2),
                nn.Dropout(0.5),
            )  # fmt: skip

        self.net_l, self.net_m = stream(), stream()
        self.conv3 = nn.Sequential(
            nn.Conv2d(128, 128, 3, padding=(1, 0)), nn.MaxPool2d(2, 2), nn.PReLU(init=0.1),
            nn.Dropout(0.5),
        )  # fmt: skip
        self.conv4 = nn.Sequential(
            nn.Conv2d(128, 256, 3, padding=(1, 0)), nn.MaxPool2d(2, 2), nn.PReLU(init=0.1)
        )
        self.drop4 = nn.Dropout(0.5)
        self.fc5 = nn.Sequential(
            nn.Linear(256 * 2 * clip_len // 8, 256), nn.PReLU(init=0.1), nn.Dropout(0.5)
        )
        self.fc6 = nn.Sequential(nn.Linear(256, 128), nn.PReLU(init=0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, m = x.shape[0], x.shape[-1]
        x = _persons_first(x)
        out = torch.cat((self.net_l(x), self.net_m(_motion(x))), dim=1)
        out = self.conv4(self.conv3(out))
        out = self.drop4(out.view(n, m, -1).max(dim=1)[0])
        return self.fc6(self.fc5(out))


# --- HCN, HCN-Baseline, Ta-CNN ----------------------------------------------------------------


def _conv1(with_bn: bool) -> nn.Module:
    if with_bn:
        return nn.Sequential(nn.Conv2d(3, 64, 1, bias=False), nn.BatchNorm2d(64))
    return nn.Conv2d(3, 64, 1)


def _hcn_stream(with_bn: bool) -> nn.Sequential:
    return nn.Sequential(
        _conv1(with_bn), nn.ReLU(), nn.Conv2d(64, 32, (3, 1), padding=(1, 0)),
        _Permute(0, 3, 2, 1), nn.Conv2d(V, 32, 3, padding=1), nn.MaxPool2d(2, 2),
        nn.Conv2d(32, 64, 3, padding=1), nn.MaxPool2d(2, 2), nn.Dropout(0.5),
    )  # fmt: skip


class _SE(nn.Module):
    """Squeeze-excitation as torchvision's layer computes it (bias-free convs here)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels, 1, bias=False)
        self.fc2 = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return scale * x


class _DualGroup(nn.Module):
    def __init__(self, channels: int, kernel, padding, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel, padding=padding, groups=groups,
                               bias=False)  # fmt: skip
        self.conv2 = nn.Conv2d(channels, channels, 1, groups=groups // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv1(x), inplace=True) + F.relu(self.conv2(x), inplace=True)


class _CrossChannel(nn.Module):
    def __init__(self, cin: int, cout: int, kernel, padding, groups: int) -> None:
        super().__init__()
        inter = cout // groups * groups
        self.map1 = nn.Conv2d(cin, inter, 1, bias=False)
        self.attend = _SE(inter)
        self.group = _DualGroup(inter, kernel, padding, groups)
        self.map2 = nn.Conv2d(inter, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.group(self.attend(F.relu(self.map1(x), inplace=True)))
        return F.relu(self.map2(out), inplace=True)


def _tacnn_stream() -> nn.Sequential:
    return nn.Sequential(
        _conv1(True), nn.ReLU(), _CrossChannel(64, 32, (3, 1), (1, 0), 10), _Permute(0, 3, 2, 1),
        _CrossChannel(V, 32, 3, 1, 6), nn.MaxPool2d(2, 2), nn.Conv2d(32, 64, 3, padding=1),
        nn.MaxPool2d(2, 2), nn.Dropout(0.5),
    )  # fmt: skip


class _HCN(nn.Module):
    def __init__(self, clip_len: int, with_bn: bool, reduce: str, tacnn: bool = False) -> None:
        super().__init__()
        self.reduce = reduce
        make = _tacnn_stream if tacnn else (lambda: _hcn_stream(with_bn))
        self.net_l, self.net_m = make(), make()
        self.conv5 = nn.Sequential(
            nn.Conv2d(128, 128, 3, padding=1), nn.MaxPool2d(2, 2), nn.ReLU(), nn.Dropout(0.5)
        )
        self.conv6 = nn.Sequential(nn.Conv2d(128, 256, 3, padding=1), nn.MaxPool2d(2, 2),
                                   nn.ReLU())  # fmt: skip
        self.drop6 = nn.Dropout(0.5)
        self.fc7 = (
            nn.Sequential(nn.Linear(256 * 2 * clip_len // 16, 256), nn.ReLU(), nn.Dropout(0.5))
            if reduce == "flatten"
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, m = x.shape[0], x.shape[-1]
        x = _persons_first(x)
        out = torch.cat((self.net_l(x), self.net_m(_motion(x))), dim=1)
        out = self.conv6(self.conv5(out))
        if self.reduce == "mean":
            out = out.mean(dim=2)
        out = self.drop6(out.view(n, m, -1).max(dim=1)[0])
        return self.fc7(out) if self.fc7 is not None else out


# --- Dynamic GCN -------------------------------------------------------------------------------


class _CeN(nn.Module):
    def __init__(self, cin: int, v: int, t: int) -> None:
        super().__init__()
        self.v = v
        self.conv_c = nn.Conv2d(cin, 1, 1)
        self.conv_t = nn.Conv2d(t, 1, 1)
        self.conv_v = nn.Conv2d(v, v * v, 1)
        self.bn = nn.BatchNorm2d(v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_t(self.conv_c(x).permute(0, 2, 3, 1).contiguous())  # N 1 V 1
        x = self.conv_v(self.bn(x.permute(0, 2, 3, 1).contiguous()))  # N V*V 1 1
        a = x.view(x.shape[0], self.v, self.v)
        return a / torch.sqrt(torch.sum(a**2, dim=1, keepdim=True))


class _STCAttention(nn.Module):
    def __init__(self, c: int, v: int) -> None:
        super().__init__()
        self.conv_ta = nn.Conv1d(c, 1, 9, padding=4)
        k = v - 1 if v % 2 == 0 else v
        self.conv_sa = nn.Conv1d(c, 1, k, padding=(k - 1) // 2)
        self.fc1c = nn.Linear(c, c // 2)
        self.fc2c = nn.Linear(c // 2, c)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        y = y * torch.sigmoid(self.conv_sa(y.mean(-2))).unsqueeze(-2) + y
        y = y * torch.sigmoid(self.conv_ta(y.mean(-1))).unsqueeze(-1) + y
        gate = torch.sigmoid(self.fc2c(F.relu(self.fc1c(y.mean(-1).mean(-1)))))
        return y * gate.unsqueeze(-1).unsqueeze(-1) + y


class _GraphConv(nn.Module):
    def __init__(self, cin: int, cout: int, a: torch.Tensor, v: int, t: int) -> None:
        super().__init__()
        self.lamb = nn.Parameter(torch.ones(1))
        self.PA = nn.Parameter(a.clone() if a.shape[1] == v else torch.full((3, v, v), 1e-6))
        self.cen = _CeN(cin, v, t)
        self.conv_cen = nn.Conv2d(cin, cout, 1)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout)) if cin != cout else None
        )
        self.conv_d = nn.ModuleList(nn.Conv2d(cin, cout, 1) for _ in range(3))
        for conv in self.conv_d:
            nn.init.normal_(conv.weight, 0, math.sqrt(2.0 / (cout * cin * 3)))
            nn.init.zeros_(conv.bias)
        self.bn = nn.BatchNorm2d(cout)
        self.attention = _STCAttention(cout, v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        flat = x.view(n, c * t, v)
        y = None
        for k in range(3):
            z = self.conv_d[k](torch.matmul(flat, self.PA[k]).view(n, c, t, v))
            y = z if y is None else z + y
        y = y + self.lamb * self.conv_cen(torch.matmul(flat, self.cen(x)).view(n, c, t, v))
        y = self.bn(y)
        y = y + (x if self.down is None else self.down(x))
        return self.attention(F.relu(y))


class _GCNBlock(nn.Module):
    def __init__(self, cin, cout, a, v, t, stride=1, residual=True) -> None:
        super().__init__()
        self.gcn = _GraphConv(cin, cout, a, v, t)
        self.tcn = nn.Sequential(nn.Conv2d(cout, cout, (9, 1), (stride, 1), (4, 0)),
                                 nn.BatchNorm2d(cout))  # fmt: skip
        self.mode = "zero" if not residual else ("id" if cin == cout and stride == 1 else "conv")
        if self.mode == "conv":
            self.residual = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=(stride, 1)),
                                          nn.BatchNorm2d(cout))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = 0 if self.mode == "zero" else (x if self.mode == "id" else self.residual(x))
        return F.relu(self.tcn(self.gcn(x)) + res, inplace=True)


class _JointProject(nn.Module):
    def __init__(self, c: int, v_in: int, v_out: int) -> None:
        super().__init__()
        self.proj_mat = nn.Parameter(torch.empty(v_in, v_out))
        nn.init.kaiming_normal_(self.proj_mat)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        return self.bn(torch.matmul(x.view(n, c * t, v), self.proj_mat).view(n, c, t, -1))


class _DGCN(nn.Module):
    def __init__(self, clip_len: int) -> None:
        super().__init__()
        a = torch.tensor(ntu_adjacency(), dtype=torch.float32)
        self.register_buffer("A", a)
        self.data_bn = nn.BatchNorm1d(3 * V)
        v1, t1 = V, clip_len
        v2, v3 = int(v1 * 0.6), int(int(v1 * 0.6) * 0.6)
        t2, t3 = t1 // 2, t1 // 4
        self.agcn_networks = nn.ModuleList((
            _GCNBlock(3, 64, a, v1, t1, residual=False), _GCNBlock(64, 64, a, v1, t1),
            _GCNBlock(64, 64, a, v1, t1), _GCNBlock(64, 64, a, v1, t1),
            _GCNBlock(64, 128, a, v1, t1, stride=2), _JointProject(128, v1, v2),
            _GCNBlock(128, 128, a, v2, t2), _GCNBlock(128, 128, a, v2, t2),
            _GCNBlock(128, 256, a, v2, t2, stride=2), _JointProject(256, v2, v3),
            _GCNBlock(256, 256, a, v3, t3), _GCNBlock(256, 256, a, v3, t3),
        ))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        x = self.data_bn(x.float().permute(0, 4, 3, 1, 2).contiguous().view(n * m, v * c, t))
        x = x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).contiguous().view(n * m, c, t, v)
        for layer in self.agcn_networks:
            x = layer(x)
        return x


class _GCNHead(nn.Module):
    def __init__(self, classes: int, persons: int = 2) -> None:
        super().__init__()
        self.persons = persons
        self.fc = nn.Conv2d(256, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, (1, 1))
        x = x.view(x.shape[0] // self.persons, self.persons, -1, 1, 1).mean(dim=1)
        return self.fc(x).view(x.shape[0], -1)


def build_reference(name: str, num_classes: int = 60) -> nn.Module:
    """The reference recognizer ``name`` at its default clip length (32 tscnn, 64 others)."""
    if name == "tscnn":
        return _Recognizer(_TSCNN(32), _FcHead(128, num_classes))
    if name == "hcn":
        return _Recognizer(_HCN(64, False, "flatten"), _FcHead(256, num_classes))
    if name == "hcnb":
        return _Recognizer(_HCN(64, True, "mean"), _FcHead(512, num_classes))
    if name == "tacnn":
        return _Recognizer(_HCN(64, True, "mean", tacnn=True), _FcHead(512, num_classes))
    if name == "dgcn":
        return _Recognizer(_DGCN(64), _GCNHead(num_classes))
    raise ValueError(f"no reference transcription for {name!r}")
