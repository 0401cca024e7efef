"""CTR-GCN (Chen et al., "Channel-wise Topology Refinement Graph Convolution for Skeleton-Based
Action Recognition", ICCV 2021) in PYSKL's form (its ``CTRGCN`` backbone and ``GCNHead``,
Apache-2.0; the authors' own repository is CC BY-NC 4.0, so PYSKL's is the one followed).

Shapes, for ``N x C x T x V x M`` input (T = 100 in PYSKL's recipe)::

    InputNorm           BatchNorm over M*V*C, persons as samples   -> (N*M) x C x T x V
    block 0             C -> 64, no residual
    blocks 1-9          64, 64, 64, 128/2, 128, 128, 256/2, 256, 256   (channels / time stride)
    GCNHead             mean over T', V, then M; linear 256 -> classes

The graph convolution (CTR-GC) refines each of the K = 3 learnable adjacencies per sample and
per channel: two 1x1 convs reduce the features to R channels, averaged over time; their pairwise
joint differences through tanh give an R x V x V relation that a 1x1 conv lifts to one V x V
topology per output channel, scaled by a learnable ``alpha`` (0 at start) and added to ``A_k``;
a third 1x1 conv's features are then mixed over joints by that topology. The K results are
summed, normalised (BN, initial weight 1e-6), added to a (projected) residual, ReLU. The
temporal module runs four branches on a quarter of the channels (5x1 convs with dilation 1 and
2, a 3x1 max-pool, a strided 1x1 conv), concatenated, then ReLU.

Module names follow PYSKL's state dict (``backbone.net.<i>.gcn1.convs.<k>.conv1``,
``.tcn1.branches.<j>...``, ``cls_head.fc_cls``) but for the input norm (:data:`KEY_MAP`).
Initialisation follows PYSKL's ``init_weights`` (Kaiming fan-out convs in the graph and temporal
modules; the blocks' strided residuals and the input norm keep PyTorch's defaults).
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
    constant_bn,
    kaiming_fan_out,
    layout_graph,
)
from skelact.models.registry import Dims, KeyRules, register_model

__all__ = ["KEY_MAP", "CTRGCN", "build_ctrgcn"]

#: Own key -> PYSKL key: the input norm's BatchNorm is PYSKL's ``backbone.data_bn``.
KEY_MAP: KeyRules = ((r"^backbone\.input_norm\.", "backbone."),)

TEMPORAL_KERNEL = 5
DILATIONS = (1, 2)
RELATION_REDUCTION = 8


def _init(module: nn.Module, bn_scale: float = 1.0) -> None:
    """PYSKL's ``init_weights`` of a graph or temporal module: every conv Kaiming fan-out, every
    BatchNorm weight 1 (``bn_scale`` is for callers that reset one norm afterwards)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            kaiming_fan_out(m)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            constant_bn(m, bn_scale)


class TopologyRefinement(nn.Module):
    """CTR-GC for one subset: ``z[n,c,t,v] = sum_u x3[n,c,t,u] (alpha R[n,c,u,v] + A[u,v])``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        rel = 8 if in_channels <= 16 else in_channels // RELATION_REDUCTION
        self.conv1 = nn.Conv2d(in_channels, rel, 1)
        self.conv2 = nn.Conv2d(in_channels, rel, 1)
        self.conv3 = nn.Conv2d(in_channels, out_channels, 1)
        self.conv4 = nn.Conv2d(rel, out_channels, 1)
        self.tanh = nn.Tanh()

    def forward(self, x: torch.Tensor, graph: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        # The reduction convs run on every frame before the mean over time (not after, which
        # is the same map in exact arithmetic): that is PYSKL's order and its counted cost.
        q = self.conv1(x).mean(dim=2)  # n R V
        k = self.conv2(x).mean(dim=2)
        relation = self.tanh(q.unsqueeze(-1) - k.unsqueeze(-2))  # n R V V
        topology = self.conv4(relation) * alpha + graph  # n C V V
        return torch.matmul(self.conv3(x), topology)  # (n C T U) @ (n C U V)


class GraphConv(nn.Module):
    """Sum of the K refined subsets, BN, plus a (projected) residual, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, graph: torch.Tensor) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            TopologyRefinement(in_channels, out_channels) for _ in range(graph.shape[0])
        )
        self.down: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.down = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels)
            )
        self.A = nn.Parameter(graph.clone())
        self.alpha = nn.Parameter(torch.zeros(1))
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        _init(self)
        constant_bn(self.bn, 1e-6)  # each block starts close to its residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.convs[0](x, self.A[0], self.alpha)
        for k in range(1, len(self.convs)):
            y = y + self.convs[k](x, self.A[k], self.alpha)
        return self.relu(self.bn(y) + self.down(x))


class MultiScaleTemporal(nn.Module):
    """Four temporal branches on channel slices (dilated 5x1 convs, max-pool, strided 1x1),
    concatenated, ReLU, dropout (PYSKL's ``MSTCN`` without its residual)."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        count = len(DILATIONS) + 2
        width = out_channels // count
        last = out_channels - width * (count - 1)  # the remainder goes to the 1x1 branch

        def squeeze() -> list[nn.Module]:
            return [nn.Conv2d(in_channels, width, 1), nn.BatchNorm2d(width), nn.ReLU()]

        branches: list[nn.Module] = [
            nn.Sequential(*squeeze(), TemporalConv(width, width, TEMPORAL_KERNEL, stride, d))
            for d in DILATIONS
        ]
        pool = nn.MaxPool2d((3, 1), (stride, 1), (1, 0))
        branches.append(nn.Sequential(*squeeze(), pool, nn.BatchNorm2d(width)))
        branches.append(
            nn.Sequential(nn.Conv2d(in_channels, last, 1, stride=(stride, 1)), nn.BatchNorm2d(last))
        )
        self.branches = nn.ModuleList(branches)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([branch(x) for branch in self.branches], dim=1)
        return self.drop(self.act(y))


class Block(nn.Module):
    """CTR-GC, multi-scale temporal conv, residual (none, identity or strided 1x1 + BN), ReLU."""

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
        self.gcn1 = GraphConv(in_channels, out_channels, graph)
        self.tcn1 = MultiScaleTemporal(out_channels, out_channels, stride, dropout)
        # Not in place: without a residual the sum is the temporal module's own ReLU output,
        # which that ReLU's backward still needs.
        self.relu = nn.ReLU()
        self.has_residual = residual
        self.residual: nn.Module = nn.Identity()
        if residual and (in_channels != out_channels or stride != 1):
            self.residual = TemporalConv(in_channels, out_channels, 1, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.tcn1(self.gcn1(x))
        if self.has_residual:
            y = y + self.residual(x)
        return self.relu(y)


class CTRGCN(nn.Module):
    """The backbone: ``N x C x T x V x M`` -> ``(N*M) x 256 x ceil(T/4) x V`` features."""

    def __init__(
        self, in_channels: int, graph: torch.Tensor, num_persons: int, tcn_dropout: float = 0.0
    ) -> None:
        super().__init__()
        # The layout's graph, kept as PYSKL keeps it (a buffer; each block learns its own copy).
        self.register_buffer("A", graph.clone())
        self.input_norm = InputNorm(in_channels, graph.shape[-1], num_persons, per_person=True)
        blocks = [Block(in_channels, BASE_CHANNELS, graph, residual=False)]
        channels = BASE_CHANNELS
        for out, stride in STAGE_CHANNELS:
            blocks.append(Block(channels, out, graph, stride, dropout=tcn_dropout))
            channels = out
        self.net = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_norm(x)
        for block in self.net:
            x = block(x)
        return x


@register_model(
    "ctrgcn", clip_len=100, options={"tcn_dropout": 0.0, "graph": "pyskl"}, key_map=KEY_MAP
)
def build_ctrgcn(dims: Dims, *, tcn_dropout: float, graph: str) -> GCNRecognizer:
    """CTR-GCN on the layout's graph (PYSKL's NTU-60 recipe: 3-D joints, T = 100, 60 classes).

    ``tcn_dropout`` is the dropout after each temporal module (not the first block's); PYSKL's
    configs leave it at 0. ``graph='pyskl'`` wires the layout's graph as PYSKL does (NTU's hand
    tips on the hand; :data:`~skelact.models.gcn_parts.PYSKL_WIRING`), ``'layout'`` uses the
    layout's own bones. The input norm keeps statistics per person slot, so ``num_persons`` is
    part of the weights.
    """
    adjacency = layout_graph(dims, "ctrgcn", graph)
    backbone = CTRGCN(dims.in_channels, adjacency, dims.num_persons, tcn_dropout)
    return GCNRecognizer(backbone, GCNHead(dims.num_classes, dims.num_persons, FEATURES))
