"""ST-GCN++ (Duan et al., "PYSKL: Towards Good Practices for Skeleton Action Recognition",
ACM MM 2022, arXiv:2205.09443), exact to PYSKL's ``STGCN`` backbone with its ++ settings
(``gcn_adaptive='init', gcn_with_res=True, tcn_type='mstcn'``) and ``GCNHead``.

Shapes, for ``N x C x T x V x M`` input (T = 100 in PYSKL's recipe)::

    InputNorm           BatchNorm over V*C, persons as samples   -> (N*M) x C x T x V
    block 0             C -> 64, no residual
    blocks 1-9          64, 64, 64, 128/2, 128, 128, 256/2, 256, 256   (channels / time stride)
    GCNHead             mean over T', V, then M; linear 256 -> classes

Each block is a graph convolution then a multi-scale temporal convolution, plus a residual.
The graph convolution projects the features to K = 3 subsets with one 1x1 conv, mixes joints
with the learnable K x V x V adjacency (initialised to the layout's spatial graph), adds its own
residual and applies BN + ReLU. The temporal module runs six branches on a sixth of the channels
each (3x1 convs with dilation 1-4, a 3x1 max-pool, a strided 1x1 conv), concatenates them and
fuses with BN, ReLU and a 1x1 conv, then a BN.

Module names follow PYSKL's state dict (``backbone.gcn.<i>.gcn.A``, ``.tcn.branches.<j>...``,
``cls_head.fc_cls``), but for the input norm (:data:`KEY_MAP`), so PYSKL checkpoints load and
export by that one rename.
Initialisation is PyTorch's default for every layer but the head, as PYSKL leaves it.
"""

from __future__ import annotations

import torch
from torch import nn

from skelact.models.gcn_parts import (
    BASE_CHANNELS,
    FEATURES,
    STAGE_CHANNELS,
    GCNHead,
    GCNRecognizer,
    InputNorm,
    TemporalConv,
    layout_graph,
)
from skelact.models.registry import Dims, KeyRules, register_model

__all__ = ["KEY_MAP", "STGCNPlusPlus", "build_stgcnpp"]

#: Own key -> PYSKL key: the input norm's BatchNorm is PYSKL's ``backbone.data_bn``; every
#: other module is named after PYSKL's tree.
KEY_MAP: KeyRules = ((r"^backbone\.input_norm\.", "backbone."),)

#: (kernel, dilation) of the four dilated temporal branches; a max-pool and a 1x1 branch follow.
DILATED_BRANCHES = ((3, 1), (3, 2), (3, 3), (3, 4))


class GraphConv(nn.Module):
    """``act(BN(sum_k A_k-mixed conv_k(x)) + down(x))`` with a learnable adjacency ``A``."""

    def __init__(self, in_channels: int, out_channels: int, graph: torch.Tensor) -> None:
        super().__init__()
        self.subsets = graph.shape[0]
        self.out_channels = out_channels
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU()
        self.A = nn.Parameter(graph.clone())
        self.conv = nn.Conv2d(in_channels, out_channels * self.subsets, 1)
        self.down: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.down = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        res = self.down(x)
        k, c = self.subsets, self.out_channels
        # (n, K, C, T, V) -> rows (n, C, T), columns (K, V): one GEMM with A stacked to K*V x V.
        y = self.conv(x).view(n, k, c, t, v).permute(0, 2, 3, 1, 4).reshape(n * c * t, k * v)
        y = torch.mm(y, self.A.reshape(k * v, v)).view(n, c, t, v)
        return self.act(self.bn(y) + res)


class MultiScaleTemporal(nn.Module):
    """Six temporal branches on channel slices, concatenated, fused by BN-ReLU-1x1, then BN.

    One ReLU module serves every branch and the fusion, as in PYSKL (a shared module is what
    mmcv/ptflops count once per call, so the complexity figures agree).
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        count = len(DILATED_BRANCHES) + 2
        width = out_channels // count
        first = out_channels - width * (count - 1)  # the remainder goes to branch 0
        self.act = nn.ReLU()

        def squeeze(channels: int) -> list[nn.Module]:
            return [nn.Conv2d(in_channels, channels, 1), nn.BatchNorm2d(channels), self.act]

        branches: list[nn.Module] = []
        for i, (kernel, dilation) in enumerate(DILATED_BRANCHES):
            c = first if i == 0 else width
            temporal = TemporalConv(c, c, kernel, stride, dilation, norm=False)
            branches.append(nn.Sequential(*squeeze(c), temporal))
        pool = nn.MaxPool2d((3, 1), (stride, 1), (1, 0))
        branches.append(nn.Sequential(*squeeze(width), pool))
        branches.append(nn.Conv2d(in_channels, width, 1, stride=(stride, 1)))
        self.branches = nn.ModuleList(branches)
        self.transform = nn.Sequential(
            nn.BatchNorm2d(out_channels), self.act, nn.Conv2d(out_channels, out_channels, 1)
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.drop = nn.Dropout(dropout, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([branch(x) for branch in self.branches], dim=1)
        return self.drop(self.bn(self.transform(y)))


class Block(nn.Module):
    """Graph conv, multi-scale temporal conv, residual (none, identity or strided 1x1 + BN)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        graph: torch.Tensor,
        stride: int = 1,
        residual: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.gcn = GraphConv(in_channels, out_channels, graph)
        self.tcn = MultiScaleTemporal(out_channels, out_channels, stride, dropout)
        self.relu = nn.ReLU()
        self.has_residual = residual
        self.residual: nn.Module = nn.Identity()
        if residual and (in_channels != out_channels or stride != 1):
            self.residual = TemporalConv(in_channels, out_channels, 1, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.tcn(self.gcn(x))
        if self.has_residual:
            y = y + self.residual(x)
        return self.relu(y)


class STGCNPlusPlus(nn.Module):
    """The backbone: ``N x C x T x V x M`` -> ``(N*M) x 256 x ceil(T/4) x V`` features."""

    def __init__(
        self, in_channels: int, graph: torch.Tensor, num_persons: int, tcn_dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.input_norm = InputNorm(in_channels, graph.shape[-1], num_persons, per_person=False)
        blocks = [Block(in_channels, BASE_CHANNELS, graph, residual=False)]
        channels = BASE_CHANNELS
        for out, stride in STAGE_CHANNELS:
            blocks.append(Block(channels, out, graph, stride, dropout=tcn_dropout))
            channels = out
        self.gcn = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_norm(x)
        for block in self.gcn:
            x = block(x)
        return x


@register_model(
    "stgcnpp", clip_len=100, options={"tcn_dropout": 0.0, "graph": "pyskl"}, key_map=KEY_MAP
)
def build_stgcnpp(dims: Dims, *, tcn_dropout: float, graph: str) -> GCNRecognizer:
    """ST-GCN++ on the layout's graph (PYSKL's NTU-60 recipe: 3-D joints, T = 100, 60 classes).

    ``tcn_dropout`` is PYSKL's dropout after each temporal module (not the first block's); its
    configs leave it at 0. ``graph='pyskl'`` wires the layout's graph as PYSKL does (NTU's hand
    tips on the hand; :data:`~skelact.models.gcn_parts.PYSKL_WIRING`), ``'layout'`` uses the
    layout's own bones.
    """
    adjacency = layout_graph(dims, "stgcnpp", graph)
    backbone = STGCNPlusPlus(dims.in_channels, adjacency, dims.num_persons, tcn_dropout)
    return GCNRecognizer(backbone, GCNHead(dims.num_classes, dims.num_persons, FEATURES))
